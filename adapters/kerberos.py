"""Kerberos for HTTP Negotiate (RFC 4559): accept a SPNEGO token with the service's
keytab, and turn the client's Kerberos principal into a site user name.

Public API: :class:`SPNEGOAcceptor` (``accept(token) -> AcceptedContext``) and
:class:`PrincipalMapper` (``map(principal) -> str``); both raise :class:`KerberosError`
whose ``reason`` a person can act on. Users of another realm arrive with that realm in
their principal (cross-realm trust is the KDCs' business); whether they are welcome is
the mapper's: a realm without a rule is refused.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import kerberos

from backends.contracts.model import HealthReport

MAX_TOKEN_BYTES = 64 * 1024  # a Kerberos AP-REQ with a big PAC is a few KiB
NOISE = ("Unknown error", "Unspecified GSS failure.  Minor code may provide more information")


class KerberosError(Exception):
    """A token or a principal is refused; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def gss_reason(exc: kerberos.GSSError) -> str:
    """pykerberos' ((major text, code), (minor text, code)) as the informative part."""
    parts = [
        str(text)
        for text, _code in (a for a in exc.args if isinstance(a, tuple) and len(a) == 2)
        if text and str(text) not in NOISE
    ]
    return ": ".join(parts) or "the GSS-API refused the token"


@dataclass(frozen=True)
class AcceptedContext:
    """An established security context: who the client is, and the token that proves
    to the client who we are (RFC 4559 §5; absent when the client asked for none)."""

    principal: str  # e.g. alice@XG.TEST
    mutual_token: str | None = None

    @property
    def realm(self) -> str:
        return self.principal.rpartition("@")[2]


class SPNEGOAcceptor:
    """The server side of one-round-trip SPNEGO/Kerberos, keyed from a keytab.

    ``service`` is a GSS host-based name (``HTTP@gw.example.org``), or "" to accept a
    ticket for any service key in the keytab. The keytab is handed to the Kerberos
    library through ``KRB5_KTNAME``, which is process-wide: one keytab per process.
    """

    def __init__(self, service: str, keytab: str = "") -> None:
        self.service = service
        self.keytab = keytab
        if keytab:
            os.environ["KRB5_KTNAME"] = keytab if ":" in keytab else f"FILE:{keytab}"

    def accept(self, token: str) -> AcceptedContext:
        try:
            raw = base64.b64decode(token, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise KerberosError("the Negotiate token is not base64") from exc
        if not raw:
            raise KerberosError("the Negotiate token is empty")
        if len(raw) > MAX_TOKEN_BYTES:
            raise KerberosError(f"the Negotiate token is larger than {MAX_TOKEN_BYTES} bytes")
        context: Any = None
        try:
            _, context = kerberos.authGSSServerInit(self.service)
            step = kerberos.authGSSServerStep(context, token)
            if step != kerberos.AUTH_GSS_COMPLETE:
                raise KerberosError(
                    "the Negotiate exchange needs another round trip; only Kerberos "
                    "(one round trip) is accepted, not NTLM"
                )
            principal = kerberos.authGSSServerUserName(context) or ""
            mutual = kerberos.authGSSServerResponse(context)
        except kerberos.GSSError as exc:
            raise KerberosError(gss_reason(exc)) from exc
        except kerberos.KrbError as exc:
            raise KerberosError(f"Kerberos error: {exc}") from exc
        finally:
            if context is not None:
                kerberos.authGSSServerClean(context)
        if "@" not in principal:
            raise KerberosError(f"the client principal {principal!r} names no realm")
        return AcceptedContext(principal, mutual or None)

    def health(self) -> HealthReport:
        """Whether the keytab holds a key for the service: acquire acceptor credentials."""
        where = self.keytab or os.environ.get("KRB5_KTNAME", "the default keytab")
        if self.keytab and not os.path.exists(self.keytab.split(":", 1)[-1]):
            return HealthReport(False, f"keytab {self.keytab} does not exist")
        context: Any = None
        try:
            # The acceptor credential is acquired in init when a service is named.
            _, context = kerberos.authGSSServerInit(self.service)
        except kerberos.GSSError as exc:
            return HealthReport(
                False, f"no key for {self.service or 'any service'} in {where}: {gss_reason(exc)}"
            )
        finally:
            if context is not None:
                kerberos.authGSSServerClean(context)
        return HealthReport(True, f"keys for {self.service or 'any service'} in {where}")


# -- principal -> user ------------------------------------------------------------------


@dataclass(frozen=True)
class RegexRule:
    """The whole principal must match ``pattern``; the user is ``replacement`` expanded."""

    pattern: re.Pattern[str]
    replacement: str

    def apply(self, principal: str) -> str | None:
        match = self.pattern.fullmatch(principal)
        return match.expand(self.replacement) if match else None


Rule = str | RegexRule  # "strip" | "keep" | RegexRule


def make_rule(rule: str | Mapping[str, str] | Any) -> Rule:
    """From config: "strip", "keep", or a table {match = regex, replace = template}."""
    if isinstance(rule, str):
        if rule not in ("strip", "keep"):
            raise ValueError(f"rule {rule!r} is not 'strip', 'keep' or {{match, replace}}")
        return rule
    match = rule["match"] if isinstance(rule, Mapping) else rule.match
    replace = rule["replace"] if isinstance(rule, Mapping) else rule.replace
    try:
        pattern = re.compile(match)
    except re.error as exc:
        raise ValueError(f"match {match!r} is not a regex: {exc}") from exc
    for ref in re.findall(r"\\g<([^>]*)>|\\(\d+)", replace):
        named, numbered = ref
        group = named or numbered
        known = group in pattern.groupindex or (group.isdigit() and int(group) <= pattern.groups)
        if not known:
            raise ValueError(f"replace {replace!r} names group {group!r} that match lacks")
    return RegexRule(pattern, replace)


class PrincipalMapper:
    """Per realm, how a principal becomes a user name: ``strip`` the realm
    (alice@XG.TEST -> alice; alice/admin@XG.TEST is refused), ``keep`` it whole, or a
    regex with a replacement."""

    def __init__(self, rules: Mapping[str, Rule]) -> None:
        self.rules = dict(rules)

    @classmethod
    def from_config(cls, realms: Mapping[str, Any]) -> PrincipalMapper:
        return cls({realm: make_rule(rule) for realm, rule in realms.items()})

    def map(self, principal: str) -> str:
        name, _, realm = principal.rpartition("@")
        rule = self.rules.get(realm)
        if rule is None:
            known = ", ".join(sorted(self.rules)) or "none"
            raise KerberosError(
                f"{principal}: realm {realm} is not accepted here (realms with a mapping "
                f"rule: {known})"
            )
        if rule == "strip":
            if "/" in name:  # as krb5's default auth_to_local: alice/admin is not alice
                raise KerberosError(
                    f"{principal}: 'strip' maps only one-component principals of {realm} "
                    "(a {match, replace} rule can map instances such as alice/admin)"
                )
            user = name
        elif rule == "keep":
            user = principal
        else:
            assert isinstance(rule, RegexRule)
            mapped = rule.apply(principal)
            if mapped is None:
                raise KerberosError(
                    f"{principal} does not match the mapping rule of realm {realm} "
                    f"({rule.pattern.pattern})"
                )
            user = mapped
        if not user or any(ord(c) < 32 or ord(c) == 127 for c in user) or len(user) > 255:
            raise KerberosError(f"{principal} maps to no usable user name ({user!r})")
        return user
