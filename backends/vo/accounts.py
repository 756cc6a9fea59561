"""Dynamic account mapping, no grid-mapfile: (principal, VO, role) → a POSIX account.

The user's own account where the identity source has one; otherwise a *lease* on one
account of the VO's pool. Leases live in the database (``account_leases``): they survive
restarts, the same user gets the same account back, an idle lease is released, and an
account is never handed to someone else while work of its last holder still runs.

Where accounts come from is an :class:`AccountSource`. :class:`ConfigAccountSource` reads
``[vo.pools]`` and ``[vo.own_accounts]`` from the config file; an LDAP-backed source
(``adapters/ldap``: a user's posixAccount, pool accounts from the directory) comes first
when the backend's context carries the site directory (:func:`ldap_account_source`). Pool
accounts must exist as POSIX accounts (same name, uid, gid) on every resource the VO's
work runs on; the gateway only chooses among them.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import and_, select, update
from sqlalchemy.exc import IntegrityError, OperationalError

from backends.contracts.interfaces import SiteDirectory
from backends.contracts.model import LocalAccount
from backends.store import Database
from backends.store.tables.vo import AccountLease
from backends.vo.errors import Invalid, PoolExhausted

_RANGE = re.compile(r"^(?P<prefix>[a-z_][a-z0-9_-]*?)(?P<first>\d+)\.\.(?P=prefix)(?P<last>\d+)$")
_NAME = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")


def expand_accounts(entries: Iterable[str]) -> list[str]:
    """``["vo1pool001..vo1pool003", "extra"]`` → the account names, in order.

    A range keeps the width of its first number; a bad entry raises ValueError naming it.
    """
    names: list[str] = []
    for entry in entries:
        match = _RANGE.match(entry)
        if match:
            first, last = match["first"], match["last"]
            if int(last) < int(first) or int(last) - int(first) > 100_000:
                raise ValueError(f"account range {entry!r} runs backwards or is too long")
            names.extend(
                f"{match['prefix']}{n:0{len(first)}d}" for n in range(int(first), int(last) + 1)
            )
        elif _NAME.match(entry):
            names.append(entry)
        else:
            raise ValueError(
                f"{entry!r} is neither a POSIX user name nor a range like 'vo1pool001..vo1pool050'"
            )
    if len(set(names)) != len(names):
        raise ValueError("an account appears twice in the pool")
    return names


class AccountSource(Protocol):
    """Where accounts come from (config file, LDAP, ...)."""

    def own_account(self, principal: str) -> LocalAccount | None:
        """The principal's own POSIX account, if the source knows one."""

    def pool(self, vo: str, role: str = "") -> list[LocalAccount]:
        """The accounts members of ``vo`` (acting in ``role``) may lease; [] if none."""


class ConfigAccountSource:
    """Pools and own accounts from ``[vo]`` in the config file."""

    def __init__(self, pools: dict[str, Any], own_accounts: dict[str, str]) -> None:
        self._pools: dict[str, list[LocalAccount]] = {}
        for key, pool in pools.items():
            names = expand_accounts(pool.accounts)
            self._pools[key] = [
                LocalAccount(name, pool.uid_start + i, pool.gid, pool.home.format(username=name))
                for i, name in enumerate(names)
            ]
        self._own = {p: _parse_account(p, spec) for p, spec in own_accounts.items()}

    def own_account(self, principal: str) -> LocalAccount | None:
        return self._own.get(principal)

    def pool(self, vo: str, role: str = "") -> list[LocalAccount]:
        if role and f"{vo}:{role}" in self._pools:
            return self._pools[f"{vo}:{role}"]
        return self._pools.get(vo, [])


class ChainedAccountSource:
    """Ask several sources in turn (e.g. LDAP first, then the config file)."""

    def __init__(self, sources: list[AccountSource]) -> None:
        self.sources = sources

    def own_account(self, principal: str) -> LocalAccount | None:
        return next((a for s in self.sources if (a := s.own_account(principal))), None)

    def pool(self, vo: str, role: str = "") -> list[LocalAccount]:
        return next((p for s in self.sources if (p := s.pool(vo, role))), [])


class DirectoryAccountSource:
    """Accounts from the site directory (a :class:`SiteDirectory`, such as adapters/ldap's
    ``Directory``, so that this backend does not need python-ldap): a user's own
    posixAccount by uid, and the VO's pool from the directory (per VO; a role has no pool
    of its own there)."""

    def __init__(self, directory: SiteDirectory) -> None:
        self.directory = directory

    def own_account(self, principal: str) -> LocalAccount | None:
        user = self.directory.user_by_uid(principal)
        return user.local_account() if user is not None else None

    def pool(self, vo: str, role: str = "") -> list[LocalAccount]:
        return list(self.directory.pool_accounts(vo))


def ldap_account_source(directory: SiteDirectory, config_source: AccountSource) -> AccountSource:
    """The directory first, then the config file's pools and own accounts: what
    ``SQLVOBackend`` asks when its context carries the site directory (``[ldap]``). With no
    directory configured, the config source stays alone."""
    return ChainedAccountSource([DirectoryAccountSource(directory), config_source])


def _parse_account(principal: str, spec: str) -> LocalAccount:
    parts = spec.split(":")
    try:
        username, uid, gid = parts[0], int(parts[1]), int(parts[2])
    except (IndexError, ValueError) as exc:
        raise Invalid(
            f"vo.own_accounts.{principal} = {spec!r}: expected 'username:uid:gid[:home]'"
        ) from exc
    return LocalAccount(username, uid, gid, parts[3] if len(parts) > 3 else f"/home/{username}")


# Is work of this holder still running under this account? (account, holder) -> bool
ActivityProbe = Callable[[LocalAccount, str], bool]


def processes_running_as(account: LocalAccount, holder: str) -> bool:
    """Default probe for the local execution backend: any process with the account's uid.

    The execution records (activities of the holder still running) replace it at merge,
    through ``SQLVOBackend.use_activity_probe``; a batch system is asked the same way.
    """
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if entry.stat().st_uid == account.uid:
                return True
        except OSError:
            continue
    return False


def _now() -> datetime:
    return datetime.now(UTC)


class LeaseManager:
    """Leases on pool accounts, safe across threads and gateway processes.

    Two open-lease unique indexes (per account; per pool and principal) are the guard:
    whoever inserts second gets an IntegrityError and tries the next account (or reads
    the lease the same principal got a moment ago in another process).
    """

    ATTEMPTS = 50

    def __init__(
        self,
        db: Database,
        idle_seconds: int,
        probe: ActivityProbe = processes_running_as,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self.db = db
        self.idle = timedelta(seconds=idle_seconds)
        self.probe = probe
        self.clock = clock
        self._touch_lock = threading.Lock()
        self._touched: dict[int, float] = {}

    def lease(self, principal: str, pool_key: str, pool: list[LocalAccount]) -> LocalAccount:
        if not pool:
            raise PoolExhausted(f"no account pool is configured for {pool_key}")
        for _attempt in range(self.ATTEMPTS):
            current = self._open_lease(principal, pool_key)
            if current is not None:
                self._touch(current)
                return _account(current)
            busy = self._taken()
            free = [a for a in pool if a.username not in busy]
            if not free:
                free = self._reclaim_idle(pool)
            if not free:
                # A concurrent request of the same principal may have taken the last
                # account between the two reads above: that lease is this one's too.
                current = self._open_lease(principal, pool_key)
                if current is not None:
                    self._touch(current)
                    return _account(current)
                raise PoolExhausted(
                    f"all {len(pool)} accounts of pool {pool_key} are leased and in use"
                )
            free.sort(key=lambda a: a.username != self._last_account(principal, pool_key))
            try:
                with self.db.session() as session:
                    now = self.clock()
                    session.add(
                        AccountLease(
                            pool=pool_key,
                            principal=principal,
                            username=free[0].username,
                            uid=free[0].uid,
                            gid=free[0].gid,
                            home=free[0].home,
                            leased_at=now,
                            last_used_at=now,
                        )
                    )
            except (IntegrityError, OperationalError):
                time.sleep(0.001)
                continue  # someone else took that account, or this principal got one
        raise PoolExhausted(f"could not lease from pool {pool_key}: too much contention")

    def _open_lease(self, principal: str, pool_key: str) -> AccountLease | None:
        with self.db.session() as session:
            return session.scalars(
                select(AccountLease).where(
                    AccountLease.pool == pool_key,
                    AccountLease.principal == principal,
                    AccountLease.released_at.is_(None),
                )
            ).first()

    def _last_account(self, principal: str, pool_key: str) -> str:
        """The account this principal held last in this pool: given back when free."""
        with self.db.session() as session:
            return (
                session.scalar(
                    select(AccountLease.username)
                    .where(AccountLease.pool == pool_key, AccountLease.principal == principal)
                    .order_by(AccountLease.id.desc())
                    .limit(1)
                )
                or ""
            )

    def _taken(self) -> set[str]:
        with self.db.session() as session:
            return set(
                session.scalars(
                    select(AccountLease.username).where(AccountLease.released_at.is_(None))
                )
            )

    def _touch(self, lease: AccountLease) -> None:
        """Record use, at most once a minute per lease (a write per job would be waste)."""
        now = time.monotonic()
        with self._touch_lock:
            if now - self._touched.get(lease.id, float("-inf")) < 60:
                return
            self._touched[lease.id] = now
        with self.db.session() as session:
            session.execute(
                update(AccountLease)
                .where(AccountLease.id == lease.id)
                .values(last_used_at=self.clock())
            )

    def _reclaim_idle(self, pool: list[LocalAccount]) -> list[LocalAccount]:
        """Release idle leases of this pool's accounts whose holders run nothing."""
        released = [a for a in pool if self._release_if_idle(a)]
        return released

    def _release_if_idle(self, account: LocalAccount) -> bool:
        cutoff = self.clock() - self.idle
        with self.db.session() as session:
            lease = session.scalars(
                select(AccountLease).where(
                    AccountLease.username == account.username,
                    AccountLease.released_at.is_(None),
                )
            ).first()
        if lease is None or lease.last_used_at > cutoff:
            return False
        if self.probe(_account(lease), lease.principal):
            return False  # the last holder's work still runs as this account
        with self.db.session() as session:
            done = session.execute(
                update(AccountLease)
                .where(
                    and_(
                        AccountLease.id == lease.id,
                        AccountLease.released_at.is_(None),
                        AccountLease.last_used_at <= cutoff,
                    )
                )
                .values(released_at=self.clock())
            )
        return done.rowcount == 1

    def release_idle(self, pool: list[LocalAccount]) -> int:
        """Housekeeping: release every idle lease of ``pool`` whose holder runs nothing."""
        return len(self._reclaim_idle(pool))

    def leases(self, principal: str | None = None) -> list[AccountLease]:
        with self.db.session() as session:
            query = select(AccountLease).where(AccountLease.released_at.is_(None))
            if principal is not None:
                query = query.where(AccountLease.principal == principal)
            return list(session.scalars(query.order_by(AccountLease.username)))


def _account(lease: AccountLease) -> LocalAccount:
    return LocalAccount(lease.username, lease.uid, lease.gid, lease.home)


__all__ = [
    "AccountSource",
    "ActivityProbe",
    "ChainedAccountSource",
    "ConfigAccountSource",
    "DirectoryAccountSource",
    "LeaseManager",
    "expand_accounts",
    "ldap_account_source",
]
