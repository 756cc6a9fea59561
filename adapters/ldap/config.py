"""Settings of the directory adapter: the gateway's ``[ldap]`` section, validated once.

The gateway's configuration holds this model as ``ldap``; :meth:`DirectoryConfig.of`
validates a mapping or any object with these attributes, so anything can build a
:class:`~adapters.ldap.directory.Directory` without the gateway's configuration.
"""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator

from adapters.ldap.mapping import GroupMapping, MappingError
from backends.contracts.settings import Section


class DirectoryConfig(Section):
    """[ldap]: the site's LDAP directory (adapters.ldap); off while ``url`` is empty."""

    # One or more LDAP URLs, space separated (libldap tries them in order):
    # ldap://host[:389] (plain, or StartTLS with start_tls) or ldaps://host[:636].
    url: str = ""
    bind_dn: str = ""  # "" binds anonymously
    bind_password: str = ""
    start_tls: bool = False  # upgrade ldap:// with StartTLS; refused means no connection
    ca_file: str = ""  # PEM bundle that verifies the server certificate ("" = system)
    # seconds to open the TCP connection
    network_timeout: float = Field(5.0, gt=0, le=300, description="seconds")
    # seconds one operation (bind, search) may take
    timeout: float = Field(10.0, gt=0, le=600, description="seconds")
    pool_size: int = Field(4, ge=1, le=100)  # connections kept open and reused

    user_base: str = ""
    user_filter: str = "(objectClass=posixAccount)"
    eppn_attribute: str = "eduPersonPrincipalName"

    group_base: str = ""
    group_filter: str = (
        "(|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames)(objectClass=posixGroup))"
    )
    # Groups -> VO memberships: explicit entries (group cn or full DN -> "vo[/group][:role]")
    # win over the pattern, a regex on the group cn with named groups vo, group, role.
    vo_groups: dict[str, str] = Field(default_factory=dict)
    vo_group_pattern: str = ""

    # Pool accounts of a VO: posixAccount entries under this DN; {vo} is replaced by the
    # VO name (escaped as a DN value). "" = no pool accounts in the directory.
    pool_base: str = ""
    pool_filter: str = "(objectClass=posixAccount)"

    @property
    def enabled(self) -> bool:
        return bool(self.url.strip())

    @field_validator("url")
    @classmethod
    def _ldap_scheme(cls, value: str) -> str:
        for url in value.split():
            if not url.startswith(("ldap://", "ldaps://", "ldapi://")):
                raise ValueError(f"{url!r} is not an ldap://, ldaps:// or ldapi:// URL")
        return value

    @model_validator(mode="after")
    def _mapping_usable(self) -> DirectoryConfig:
        try:
            GroupMapping.from_config(self.vo_groups, self.vo_group_pattern)
        except MappingError as exc:
            raise ValueError(f"VO group mapping: {exc}") from exc
        if self.url and not self.user_base:
            raise ValueError("ldap.url is set but ldap.user_base is empty")
        return self
