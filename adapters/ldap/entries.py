"""Directory entries as neutral values: a person, a group. Nothing here talks to LDAP."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from backends.contracts.model import LocalAccount

RawEntry = Mapping[str, Sequence[bytes]]

# What is read of a user and of a group (the eppn attribute name is configured).
USER_ATTRIBUTES = (
    "uid",
    "uidNumber",
    "gidNumber",
    "homeDirectory",
    "displayName",
    "cn",
    "mail",
)
GROUP_ATTRIBUTES = ("cn", "gidNumber")


def first(entry: RawEntry, name: str) -> str:
    """The first value of ``name`` (attribute names are case-insensitive), or ""."""
    for key, values in entry.items():
        if key.lower() == name.lower() and values:
            return values[0].decode("utf-8", errors="replace")
    return ""


def number(entry: RawEntry, name: str) -> int | None:
    value = first(entry, name)
    try:
        return int(value) if value else None
    except ValueError:
        return None


@dataclass(frozen=True)
class DirectoryGroup:
    dn: str
    cn: str
    gid_number: int | None = None

    @classmethod
    def from_entry(cls, dn: str, entry: RawEntry) -> DirectoryGroup:
        return cls(dn=dn, cn=first(entry, "cn"), gid_number=number(entry, "gidNumber"))


@dataclass(frozen=True)
class DirectoryUser:
    """A person as the directory knows them: identity, POSIX account, groups."""

    dn: str
    uid: str
    uid_number: int | None = None
    gid_number: int | None = None
    home: str = ""
    display_name: str = ""
    mail: str = ""
    eppn: str = ""
    groups: tuple[DirectoryGroup, ...] = ()

    @property
    def group_names(self) -> tuple[str, ...]:
        return tuple(g.cn for g in self.groups)

    def local_account(self) -> LocalAccount | None:
        """The user's own POSIX account, when the entry is a complete posixAccount."""
        if self.uid_number is None or self.gid_number is None:
            return None
        return LocalAccount(self.uid, self.uid_number, self.gid_number, self.home)

    @classmethod
    def from_entry(
        cls, dn: str, entry: RawEntry, eppn_attribute: str, groups: Sequence[DirectoryGroup]
    ) -> DirectoryUser:
        return cls(
            dn=dn,
            uid=first(entry, "uid"),
            uid_number=number(entry, "uidNumber"),
            gid_number=number(entry, "gidNumber"),
            home=first(entry, "homeDirectory"),
            display_name=first(entry, "displayName") or first(entry, "cn"),
            mail=first(entry, "mail"),
            eppn=first(entry, eppn_attribute) if eppn_attribute else "",
            groups=tuple(groups),
        )


def pool_account(entry: RawEntry) -> LocalAccount | None:
    """A pool entry as a LocalAccount; None when it lacks uid, uidNumber or gidNumber."""
    uid, uid_number, gid_number = (
        first(entry, "uid"),
        number(entry, "uidNumber"),
        number(entry, "gidNumber"),
    )
    if not uid or uid_number is None or gid_number is None:
        return None
    return LocalAccount(uid, uid_number, gid_number, first(entry, "homeDirectory"))
