"""Directory groups -> VO memberships, by configuration (no group name is hard-coded).

A target is written ``vo[/group[/subgroup…]][:role]``: ``atlas`` is the VO's root group,
``atlas/prod`` a group of it, ``atlas:manager`` the role manager in the root group. The
explicit table (group cn or full DN -> target) wins over the pattern, a regex on the
group cn whose named groups ``vo`` (required), ``group`` and ``role`` fill a target.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import ldap.dn

from adapters.ldap.entries import DirectoryGroup
from backends.contracts.model import VOMembership

NAME = r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}"
TARGET = re.compile(rf"^(?P<vo>{NAME})(?P<group>(?:/{NAME})*)(?::(?P<role>{NAME}))?$")


class MappingError(ValueError):
    """A mapping in the configuration is not usable; the message says which and why."""


def parse_membership(target: str) -> VOMembership:
    """``"atlas/prod:admin"`` -> VOMembership("atlas", "prod", ("admin",))."""
    match = TARGET.match(target.strip())
    if not match:
        raise MappingError(
            f"{target!r} is not 'vo[/group][:role]' (names of letters, digits, . _ -)"
        )
    role = match["role"]
    return VOMembership(match["vo"], match["group"].lstrip("/"), (role,) if role else ())


def normalize_dn(dn: str) -> str:
    """A DN in one spelling: no extra spaces, attribute types and values lower case."""
    try:
        return ldap.dn.dn2str(
            [[(t.lower(), v.lower(), f) for t, v, f in rdn] for rdn in ldap.dn.str2dn(dn)]
        )
    except ldap.DECODING_ERROR as exc:
        raise MappingError(f"{dn!r} is not a valid DN") from exc


def compile_pattern(pattern: str) -> re.Pattern[str] | None:
    if not pattern:
        return None
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        raise MappingError(f"vo_group_pattern {pattern!r} is not a regex: {exc}") from exc
    if "vo" not in compiled.groupindex:
        raise MappingError(f"vo_group_pattern {pattern!r} has no named group (?P<vo>…)")
    return compiled


@dataclass(frozen=True)
class GroupMapping:
    by_dn: Mapping[str, VOMembership] = field(default_factory=dict)
    by_cn: Mapping[str, VOMembership] = field(default_factory=dict)
    pattern: re.Pattern[str] | None = None

    @classmethod
    def from_config(cls, vo_groups: Mapping[str, str], vo_group_pattern: str) -> GroupMapping:
        """Checks every entry now, so a typo stops the start instead of a login."""
        by_dn: dict[str, VOMembership] = {}
        by_cn: dict[str, VOMembership] = {}
        for group, target in vo_groups.items():
            membership = parse_membership(target)
            if "=" in group:
                by_dn[normalize_dn(group)] = membership
            else:
                by_cn[group.lower()] = membership
        return cls(by_dn, by_cn, compile_pattern(vo_group_pattern))

    def membership(self, group: DirectoryGroup) -> VOMembership | None:
        explicit = self.by_dn.get(normalize_dn(group.dn)) or self.by_cn.get(group.cn.lower())
        if explicit or self.pattern is None:
            return explicit
        match = self.pattern.fullmatch(group.cn)
        if not match:
            return None
        parts = match.groupdict()
        target = parts["vo"] + (f"/{parts['group']}" if parts.get("group") else "")
        target += f":{parts['role']}" if parts.get("role") else ""
        try:
            return parse_membership(target)
        except MappingError:
            return None  # the cn matched but names nothing usable: not a VO group

    def memberships(self, groups: Iterable[DirectoryGroup]) -> tuple[VOMembership, ...]:
        """One membership per (vo, group), roles merged, in a stable order."""
        roles: dict[tuple[str, str], set[str]] = {}
        for group in groups:
            membership = self.membership(group)
            if membership is not None:
                roles.setdefault((membership.vo, membership.group), set()).update(membership.roles)
        return tuple(
            VOMembership(vo, group, tuple(sorted(r))) for (vo, group), r in sorted(roles.items())
        )
