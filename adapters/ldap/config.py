"""Settings of the directory adapter, independent of how the gateway reads its config.

``gateway.config.LdapSettings`` has the same field names; :meth:`DirectoryConfig.of`
copies any object with those attributes, so a backend can build a :class:`Directory`
without importing the gateway.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any


@dataclass(frozen=True)
class DirectoryConfig:
    # One or more LDAP URLs, space separated (libldap tries them in order):
    # ldap://host[:389] (plain, or StartTLS with start_tls) or ldaps://host[:636].
    url: str = ""
    bind_dn: str = ""  # "" binds anonymously
    bind_password: str = ""
    start_tls: bool = False  # upgrade ldap:// with StartTLS; refused means no connection
    ca_file: str = ""  # PEM bundle that verifies the server certificate ("" = system)
    network_timeout: float = 5.0  # seconds to open the TCP connection
    timeout: float = 10.0  # seconds one operation (bind, search) may take
    pool_size: int = 4  # connections kept open and reused

    user_base: str = ""
    user_filter: str = "(objectClass=posixAccount)"
    eppn_attribute: str = "eduPersonPrincipalName"

    group_base: str = ""
    group_filter: str = (
        "(|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames)(objectClass=posixGroup))"
    )
    # Groups -> VO memberships: explicit entries (group cn or full DN -> "vo[/group][:role]")
    # win over the pattern, a regex on the group cn with named groups vo, group, role.
    vo_groups: Mapping[str, str] = field(default_factory=dict)
    vo_group_pattern: str = ""

    # Pool accounts of a VO: posixAccount entries under this DN; {vo} is replaced by the
    # VO name (escaped as a DN value). "" = no pool accounts in the directory.
    pool_base: str = ""
    pool_filter: str = "(objectClass=posixAccount)"

    @property
    def enabled(self) -> bool:
        return bool(self.url.strip())

    @classmethod
    def of(cls, settings: Any) -> DirectoryConfig:
        """Copy the fields this adapter knows from a settings object or a mapping."""
        if isinstance(settings, Mapping):
            values = {f.name: settings.get(f.name) for f in fields(cls)}
        else:
            values = {f.name: getattr(settings, f.name, None) for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if v is not None})
