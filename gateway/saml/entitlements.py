"""AARC-G002 entitlements and eduPersonScopedAffiliation as VO memberships.

This is the one place SAML attributes become :class:`VOMembership`; the VO backend's
own AARC-G002 parser will replace :func:`memberships_from_attributes` behind the same
signature.

AARC-G002: ``urn:<namespace>:group:<vo>[:<subgroup>…][:role=<role>]#<authority>``,
e.g. ``urn:geant:example.org:group:fusion:ws1:role=admin#aai.example.org``.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterable, Mapping

from backends.model import VOMembership


def parse_aarc_g002(value: str) -> VOMembership | None:
    """One entitlement as a membership, or None if it is not an AARC-G002 group."""
    urn, _, _authority = value.partition("#")
    parts = urn.split(":")
    if len(parts) < 4 or parts[0].lower() != "urn" or "group" not in parts[2:]:
        return None
    rest = parts[parts.index("group", 2) + 1 :]
    roles: tuple[str, ...] = ()
    if rest and rest[-1].startswith("role="):
        roles = (urllib.parse.unquote(rest.pop()[len("role=") :]),)
    rest = [urllib.parse.unquote(p) for p in rest]
    if not rest or not all(rest):
        return None
    return VOMembership(vo=rest[0], group="/".join(rest[1:]), roles=roles)


def memberships_from_attributes(
    attributes: Mapping[str, Iterable[str]],
) -> tuple[VOMembership, ...]:
    """VO memberships from ``eduPersonEntitlement`` (AARC-G002 groups and roles) and
    ``eduPersonScopedAffiliation`` (``member@example.org`` -> VO ``example.org``, role
    ``member``); the same (vo, group) from several values merges its roles."""
    merged: dict[tuple[str, str], set[str]] = {}
    for value in attributes.get("eduPersonEntitlement", ()):
        membership = parse_aarc_g002(value)
        if membership is not None:
            merged.setdefault((membership.vo, membership.group), set()).update(membership.roles)
    for value in attributes.get("eduPersonScopedAffiliation", ()):
        affiliation, at, scope = value.partition("@")
        if at and affiliation and scope:
            merged.setdefault((scope, ""), set()).add(affiliation)
    return tuple(
        VOMembership(vo=vo, group=group, roles=tuple(sorted(roles)))
        for (vo, group), roles in sorted(merged.items())
    )
