"""The directory: look people up, read their groups as VO memberships, list pool accounts.

Every value that goes into a filter is escaped (RFC 4515) and every value that goes into
a DN is escaped (RFC 4514): a name such as ``*)(uid=*`` matches nothing, and is logged as
a warning because nobody is called that by accident.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any, TypeVar

import ldap
import ldap.dn
import ldap.filter

from adapters.ldap.config import DirectoryConfig
from adapters.ldap.connection import ConnectionPool, describe
from adapters.ldap.entries import (
    GROUP_ATTRIBUTES,
    USER_ATTRIBUTES,
    DirectoryGroup,
    DirectoryUser,
    pool_account,
)
from adapters.ldap.errors import DirectoryError, DirectoryUnavailable
from adapters.ldap.mapping import NAME, GroupMapping
from backends.contracts.model import HealthReport, LocalAccount, VOMembership

log = logging.getLogger("xtreemgate.ldap")
T = TypeVar("T")
VO_NAME = re.compile(rf"^{NAME}$")
SIZE_LIMIT = 1000  # no lookup here needs more; a runaway filter stops at the server


class Directory:
    """A site's LDAP directory, shared by every thread of a gateway process."""

    def __init__(self, config: DirectoryConfig) -> None:
        if not config.enabled:
            raise DirectoryError("no LDAP url configured (ldap.url)")
        self.config = config
        self.mapping = GroupMapping.from_config(config.vo_groups, config.vo_group_pattern)
        self.pool = ConnectionPool(config)

    # -- plumbing -----------------------------------------------------------------------

    def _run(self, operation: Callable[[Any], T]) -> T:
        """Run on a pooled connection; a server that went away gets one fresh retry."""
        for attempt in (1, 2):
            try:
                with self.pool.connection() as conn:
                    return operation(conn)
            except ldap.SERVER_DOWN as exc:
                if attempt == 2:
                    raise DirectoryUnavailable(
                        f"LDAP server {self.config.url} unreachable: {describe(exc)}"
                    ) from exc
                log.info("LDAP connection lost (%s); reconnecting", describe(exc))
            except ldap.TIMEOUT as exc:
                raise DirectoryUnavailable(
                    f"LDAP server {self.config.url} did not answer within {self.config.timeout:g} s"
                ) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def _search(
        self, base: str, filterstr: str, attributes: tuple[str, ...]
    ) -> list[tuple[str, dict[str, list[bytes]]]]:
        def search(conn: Any) -> list[tuple[str, dict[str, list[bytes]]]]:
            try:
                found = conn.search_ext_s(
                    base,
                    ldap.SCOPE_SUBTREE,
                    filterstr,
                    list(attributes),
                    timeout=self.config.timeout,
                    sizelimit=SIZE_LIMIT,
                )
            except ldap.NO_SUCH_OBJECT:
                return []  # the base itself is missing: nothing under it
            except (ldap.SERVER_DOWN, ldap.TIMEOUT):
                raise
            except ldap.SIZELIMIT_EXCEEDED as exc:
                raise DirectoryError(
                    f"more than {SIZE_LIMIT} entries match {filterstr} under {base}"
                ) from exc
            except ldap.LDAPError as exc:
                raise DirectoryError(
                    f"LDAP search {filterstr} under {base!r} failed: {describe(exc)}"
                ) from exc
            return [(dn, attrs) for dn, attrs in found if dn]  # drop referrals

        return self._run(search)

    @staticmethod
    def _escaped(attribute: str, value: str) -> str:
        escaped = ldap.filter.escape_filter_chars(value)
        if escaped != value:
            log.warning(
                "LDAP lookup of %s=%r: the value holds filter syntax, searched for it "
                "literally (possible LDAP injection attempt)",
                attribute,
                value,
            )
        return escaped

    # -- people -------------------------------------------------------------------------

    def find_user(
        self, *, uid: str | None = None, mail: str | None = None, eppn: str | None = None
    ) -> DirectoryUser | None:
        """The one person with this uid, mail or eduPersonPrincipalName (give exactly
        one), with their groups; None when nobody matches. Two matches are an error: a
        login never picks one of several people."""
        given = {
            k: v
            for k, v in (("uid", uid), ("mail", mail), (self.config.eppn_attribute, eppn))
            if v is not None
        }
        if len(given) != 1:
            raise ValueError("find_user takes exactly one of uid, mail, eppn")
        ((attribute, value),) = given.items()
        if not value:
            return None
        filterstr = f"(&{self.config.user_filter}({attribute}={self._escaped(attribute, value)}))"
        attributes = (*USER_ATTRIBUTES, self.config.eppn_attribute)
        found = self._search(self.config.user_base, filterstr, attributes)
        if not found:
            return None
        if len(found) > 1:
            raise DirectoryError(
                f"{len(found)} directory entries have {attribute}={value!r} "
                f"({', '.join(dn for dn, _ in found[:3])}): refusing to pick one"
            )
        dn, entry = found[0]
        uid_value = entry.get("uid", [b""])[0].decode("utf-8", errors="replace")
        groups = self.groups_of(dn, uid_value)
        return DirectoryUser.from_entry(dn, entry, self.config.eppn_attribute, groups)

    def user_by_uid(self, uid: str) -> DirectoryUser | None:
        return self.find_user(uid=uid)

    def user_by_mail(self, mail: str) -> DirectoryUser | None:
        return self.find_user(mail=mail)

    def user_by_eppn(self, eppn: str) -> DirectoryUser | None:
        return self.find_user(eppn=eppn)

    def groups_of(self, dn: str, uid: str) -> list[DirectoryGroup]:
        """Groups listing the entry as member/uniqueMember (by DN) or memberUid (by uid)."""
        if not self.config.group_base:
            return []
        member_dn = ldap.filter.escape_filter_chars(dn)
        alternatives = f"(member={member_dn})(uniqueMember={member_dn})"
        if uid:
            alternatives += f"(memberUid={ldap.filter.escape_filter_chars(uid)})"
        filterstr = f"(&{self.config.group_filter}(|{alternatives}))"
        found = self._search(self.config.group_base, filterstr, GROUP_ATTRIBUTES)
        return sorted(
            (DirectoryGroup.from_entry(gdn, entry) for gdn, entry in found), key=lambda g: g.dn
        )

    def memberships(self, user: DirectoryUser) -> tuple[VOMembership, ...]:
        """The user's VO memberships, from their groups through the configured mapping."""
        return self.mapping.memberships(user.groups)

    # -- pool accounts ------------------------------------------------------------------

    def pool_base(self, vo: str) -> str:
        if not VO_NAME.match(vo):
            log.warning("pool accounts asked for an invalid VO name %r", vo)
            raise DirectoryError(f"{vo!r} is not a VO name (letters, digits, . _ -)")
        return self.config.pool_base.replace("{vo}", ldap.dn.escape_dn_chars(vo))

    def pool_accounts(self, vo: str) -> list[LocalAccount]:
        """The VO's pool of POSIX accounts, by uidNumber; [] when it has none."""
        if not self.config.pool_base:
            return []
        found = self._search(self.pool_base(vo), self.config.pool_filter, USER_ATTRIBUTES)
        accounts = [a for a in (pool_account(entry) for _, entry in found) if a is not None]
        return sorted(accounts, key=lambda a: (a.uid, a.username))

    # -- operations ---------------------------------------------------------------------

    def health(self) -> HealthReport:
        """Bind and read the user base for real; says why not when it fails."""
        try:
            found = self._run(
                lambda conn: conn.search_ext_s(
                    self.config.user_base,
                    ldap.SCOPE_BASE,
                    "(objectClass=*)",
                    ["1.1"],
                    timeout=self.config.timeout,
                )
            )
        except ldap.NO_SUCH_OBJECT:
            return HealthReport(
                False,
                f"{self.config.url} answers but user_base {self.config.user_base!r} does not exist",
            )
        except ldap.LDAPError as exc:
            return HealthReport(False, f"{self.config.url}: {describe(exc)}")
        except DirectoryError as exc:
            return HealthReport(False, str(exc))
        who = self.config.bind_dn or "anonymous"
        tls = " over StartTLS" if self.config.start_tls else ""
        del found  # the base entry was read: the bind and the base are fine
        return HealthReport(
            True,
            f"{self.config.url} answers{tls}, bound as {who}",
            {"connections_opened": self.pool.opened},
        )

    def close(self) -> None:
        self.pool.close()
