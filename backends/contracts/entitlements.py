"""AARC-G002 entitlements: how VO membership travels between services.

Neutral (beside backends.contracts.model): the VO backend writes them into VO tokens, the token
verifier and the SAML service provider read them, all with this one parser.

    <namespace>:group:<vo>[:<subgroup>]*[:role=<role>]#<group-authority>

``namespace`` is a URN such as ``urn:geant:example.org`` or ``urn:mace:egi.eu``; each
part is URN text (RFC 8141), where ``:`` and ``#`` and ``/`` are not allowed inside a
name and any other reserved octet is percent-encoded. Nested groups become the path
``a/b`` of :class:`~backends.contracts.model.VOMembership`.
"""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass

from backends.contracts.model import VOMembership

# RFC 8141 pchar minus ":" (our separator) and "/" (our group path separator).
_PART = re.compile(r"^(?:[A-Za-z0-9\-._~!$&'()*+,;=@]|%[0-9A-Fa-f]{2})+$")
_NAMESPACE = re.compile(
    r"^urn:[A-Za-z0-9][A-Za-z0-9-]{0,31}(?::(?:[A-Za-z0-9\-._~!$&'()*+,;=@]|%[0-9A-Fa-f]{2})+)*$",
    re.IGNORECASE,
)
_SAFE = "-._~!$&'()*+,;=@"


class EntitlementError(ValueError):
    """Not an AARC-G002 group entitlement; the message says which part is wrong."""


@dataclass(frozen=True)
class Entitlement:
    namespace: str
    vo: str
    group: str = ""  # "a/b" for nested groups
    role: str = ""
    authority: str = ""

    def membership(self) -> VOMembership:
        return VOMembership(self.vo, self.group, (self.role,) if self.role else ())

    def __str__(self) -> str:
        return format_entitlement(self.namespace, self.vo, self.group, self.role, self.authority)


def _decode(part: str, what: str, text: str) -> str:
    if not _PART.match(part):
        raise EntitlementError(
            f"{what} {part!r} in {text!r} is empty or has a character that must be percent-encoded"
        )
    return urllib.parse.unquote(part)


def parse_entitlement(text: str) -> Entitlement:
    """Read one entitlement; raise :class:`EntitlementError` saying what is wrong."""
    if not isinstance(text, str) or not text:
        raise EntitlementError("an entitlement must be a non-empty string")
    body, sep, authority = text.partition("#")
    if not sep or not authority:
        raise EntitlementError(f"{text!r} lacks the '#<group-authority>' at its end")
    authority = _decode(authority, "group authority", text)
    namespace, sep, rest = body.partition(":group:")
    if not sep:
        raise EntitlementError(f"{text!r} has no ':group:' after its namespace")
    if not _NAMESPACE.match(namespace):
        raise EntitlementError(f"namespace {namespace!r} in {text!r} is not a URN (urn:<nid>:…)")
    parts = rest.split(":")
    role = ""
    if parts and parts[-1].startswith("role="):
        role = _decode(parts.pop()[len("role=") :], "role", text)
    if not parts:
        raise EntitlementError(f"{text!r} names no group after ':group:'")
    if any(p.startswith("role=") for p in parts):
        raise EntitlementError(f"{text!r} has 'role=' before its last part")
    names = [_decode(p, "group", text) for p in parts]
    return Entitlement(namespace, names[0], "/".join(names[1:]), role, authority)


def format_entitlement(
    namespace: str, vo: str, group: str = "", role: str = "", authority: str = ""
) -> str:
    """Write one entitlement (names percent-encoded where the URN syntax needs it)."""
    if not authority:
        raise EntitlementError("an AARC-G002 entitlement needs a group authority")
    if not _NAMESPACE.match(namespace):
        raise EntitlementError(f"namespace {namespace!r} is not a URN (urn:<nid>:…)")
    names = [vo, *(g for g in group.split("/") if g)]
    text = namespace + ":group:" + ":".join(urllib.parse.quote(n, safe=_SAFE) for n in names)
    if role:
        text += ":role=" + urllib.parse.quote(role, safe=_SAFE)
    return text + "#" + urllib.parse.quote(authority, safe=_SAFE)


def entitlements_of(
    memberships: tuple[VOMembership, ...] | list[VOMembership], namespace: str, authority: str
) -> list[str]:
    """One entitlement for each membership, and one more for each of its roles."""
    out: list[str] = []
    for m in memberships:
        out.append(format_entitlement(namespace, m.vo, m.group, "", authority))
        out.extend(format_entitlement(namespace, m.vo, m.group, r, authority) for r in m.roles)
    return out


def memberships_from(entitlements: list[str]) -> tuple[list[VOMembership], list[str]]:
    """Memberships (roles merged per VO group) from entitlements, and the ones refused."""
    merged: dict[tuple[str, str], set[str]] = {}
    refused: list[str] = []
    for text in entitlements:
        try:
            e = parse_entitlement(text)
        except EntitlementError:
            refused.append(text)
            continue
        roles = merged.setdefault((e.vo, e.group), set())
        if e.role:
            roles.add(e.role)
    return [VOMembership(vo, group, tuple(sorted(r))) for (vo, group), r in merged.items()], refused
