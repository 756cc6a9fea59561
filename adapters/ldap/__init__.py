"""The site's LDAP directory (python-ldap): users, their groups as VO memberships, and
the pool accounts a VO's users may lease.

Public API: :class:`Directory` built from a :class:`DirectoryConfig`; it answers with
:class:`DirectoryUser`, :class:`DirectoryGroup`, ``backends.contracts.model.VOMembership`` and
``backends.contracts.model.LocalAccount``, and raises :class:`DirectoryError` /
:class:`DirectoryUnavailable`.
"""

from adapters.ldap.config import DirectoryConfig
from adapters.ldap.directory import Directory
from adapters.ldap.entries import DirectoryGroup, DirectoryUser
from adapters.ldap.errors import DirectoryError, DirectoryUnavailable
from adapters.ldap.mapping import GroupMapping, MappingError, parse_membership

__all__ = [
    "Directory",
    "DirectoryConfig",
    "DirectoryError",
    "DirectoryGroup",
    "DirectoryUnavailable",
    "DirectoryUser",
    "GroupMapping",
    "MappingError",
    "parse_membership",
]
