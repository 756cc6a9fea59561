"""Which SAML attributes become VO memberships, and from whom.

The entitlement text is read by the one AARC-G002 parser (backends/entitlements.py);
this module only decides trust. An IdP asserts ``…:group:<vo>…#<authority>``: the
membership counts when ``saml.entitlement_authorities`` lists that authority for that
IdP, and the VO is one the entry allows. ``"*"`` allows every VO the gateway does not
manage itself, so an IdP can never grant membership of a local VO unless the site
names that VO. ``eduPersonScopedAffiliation`` (``member@example.org``, its scope already
checked against the IdP's shibmd:Scope) gives the VO named by the scope, never a local one.
Everything refused is logged with the reason.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from backends.contracts.entitlements import EntitlementError, parse_entitlement
from backends.contracts.model import VOMembership

log = logging.getLogger("xtreemgate.saml")

# name -> whether this gateway's VO backend manages a VO of that name
LocalVO = Callable[[str], bool]


@dataclass(frozen=True)
class TrustedAuthority:
    authority: str
    idps: tuple[str, ...] = ("*",)
    vos: tuple[str, ...] = ("*",)

    def asserted_by(self, idp: str) -> bool:
        return "*" in self.idps or idp in self.idps

    def allows(self, vo: str, local: bool) -> bool:
        return vo in self.vos or ("*" in self.vos and not local)


class EntitlementPolicy:
    def __init__(
        self,
        authorities: Sequence[TrustedAuthority],
        local_vo: LocalVO = lambda _name: False,
        *,
        affiliations: bool = True,
    ) -> None:
        self.authorities = tuple(authorities)
        self.local_vo = local_vo
        self.affiliations = affiliations

    @classmethod
    def of(cls, settings: object, local_vo: LocalVO) -> EntitlementPolicy:
        """From ``[saml]`` (entitlement_authorities, affiliation_memberships)."""
        return cls(
            [
                TrustedAuthority(a.authority, tuple(a.idps), tuple(a.vos))
                for a in settings.entitlement_authorities  # type: ignore[attr-defined]
            ],
            local_vo,
            affiliations=settings.affiliation_memberships,  # type: ignore[attr-defined]
        )

    def _refuse(self, idp: str, value: str, why: str) -> None:
        log.warning("SAML entitlement %r from %s ignored: %s", value, idp, why)

    def _trusted(self, idp: str, value: str) -> VOMembership | None:
        try:
            entitlement = parse_entitlement(value)
        except EntitlementError as exc:
            self._refuse(idp, value, str(exc))
            return None
        rules = [r for r in self.authorities if r.authority == entitlement.authority]
        if not rules:
            self._refuse(idp, value, f"authority {entitlement.authority!r} is not trusted")
            return None
        rules = [r for r in rules if r.asserted_by(idp)]
        if not rules:
            self._refuse(idp, value, f"this IdP may not assert {entitlement.authority!r}")
            return None
        local = self.local_vo(entitlement.vo)
        if not any(r.allows(entitlement.vo, local) for r in rules):
            kind = "local VO" if local else "VO"
            self._refuse(
                idp, value, f"{entitlement.authority!r} may not grant the {kind} {entitlement.vo!r}"
            )
            return None
        return entitlement.membership()

    def memberships(
        self, idp: str, attributes: Mapping[str, Iterable[str]]
    ) -> tuple[VOMembership, ...]:
        """Trusted memberships; the same (vo, group) from several values merges roles."""
        merged: dict[tuple[str, str], set[str]] = {}
        for value in attributes.get("eduPersonEntitlement", ()):
            if ":group:" not in value:
                continue  # an entitlement that is not about groups (e.g. a service URN)
            membership = self._trusted(idp, value)
            if membership is not None:
                merged.setdefault((membership.vo, membership.group), set()).update(membership.roles)
        if self.affiliations:
            for value in attributes.get("eduPersonScopedAffiliation", ()):
                affiliation, at, scope = value.partition("@")
                if not (at and affiliation and scope):
                    continue
                if self.local_vo(scope):
                    self._refuse(idp, value, f"the scope names the local VO {scope!r}")
                    continue
                merged.setdefault((scope, ""), set()).add(affiliation)
        return tuple(
            VOMembership(vo=vo, group=group, roles=tuple(sorted(roles)))
            for (vo, group), roles in sorted(merged.items())
        )
