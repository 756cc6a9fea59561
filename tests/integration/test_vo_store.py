"""The VO store on both databases (SQLite and a real PostgreSQL): account leases under
concurrency (threads and processes), across restarts, idle release that waits for the
last holder's work; the append-only audit trail; policy changes reaching other processes."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from backends.contracts.interfaces import BackendContext
from backends.contracts.model import LocalAccount, Principal, Resource, VOMembership
from backends.store import Database, migrate
from backends.vo.accounts import LeaseManager, processes_running_as
from backends.vo.errors import PoolExhausted
from backends.vo.settings import SQLVOSettings
from backends.vo.sql import SQLVOBackend

ROOT = Path(__file__).resolve().parents[2]


def pool(n: int, prefix: str = "p") -> list[LocalAccount]:
    return [LocalAccount(f"{prefix}{i:02d}", 70000 + i, 70000) for i in range(n)]


@pytest.fixture
def store(store_url):
    migrate.upgrade(store_url)
    opened: list[Database] = []

    def open_db() -> Database:
        opened.append(Database(store_url, pool_size=10))
        return opened[-1]

    yield open_db
    for db in opened:
        db.dispose()


def test_concurrent_leases_never_share_an_account(store):
    managers = [LeaseManager(store(), 3600), LeaseManager(store(), 3600)]  # two "gateways"
    accounts = pool(5)
    results: dict[str, str] = {}
    failures: list[str] = []
    barrier = threading.Barrier(10)

    def take(i: int) -> None:
        who = f"user{i % 8}"  # user0 and user1 ask twice at once
        barrier.wait()
        try:
            got = managers[i % 2].lease(who, "cms", accounts).username
        except PoolExhausted:
            failures.append(who)
            return
        previous = results.setdefault(who, got)
        assert previous == got, f"{who} got two accounts: {previous} and {got}"

    threads = [threading.Thread(target=take, args=(i,)) for i in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    holders = list(results.values())
    assert len(holders) == len(set(holders)) == 5  # the pool, each account once
    assert len(set(failures)) == 3
    open_leases = managers[0].leases()
    assert sorted(lease.username for lease in open_leases) == sorted(holders)


LEASE_SCRIPT = textwrap.dedent(
    """
    import json, sys, threading
    from backends.contracts.model import LocalAccount
    from backends.store import Database
    from backends.vo.accounts import LeaseManager
    url, me = sys.argv[1], sys.argv[2]
    manager = LeaseManager(Database(url), 3600)
    accounts = [LocalAccount(f"q{i:02d}", 71000 + i, 71000) for i in range(12)]
    who = [f"{me}-{i}" for i in range(3)] + ["everywhere"]
    out = {}
    def run(name):
        out[name] = manager.lease(name, "atlas", accounts).username
    threads = [threading.Thread(target=run, args=(n,)) for n in who]
    [t.start() for t in threads]
    [t.join() for t in threads]
    print(json.dumps(out))
    """
)


def test_gateway_processes_leasing_at_once_never_share(store, store_url):
    import json

    store()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", LEASE_SCRIPT, store_url, f"proc{n}"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        for n in range(3)
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()
        results.append(json.loads(out))
    everywhere = {r.pop("everywhere") for r in results}
    assert len(everywhere) == 1  # the same user in three processes: one lease
    others = [name for r in results for name in r.values()]
    assert len(others) == 9 and len(set(others) | everywhere) == 10


def test_leases_survive_restart_and_wait_for_the_holders_work(store):
    now = [datetime(2026, 11, 25, 12, tzinfo=UTC)]
    running: dict[str, bool] = {}  # stand-in for the execution records: holder -> has work

    def has_running_work(account: LocalAccount, holder: str) -> bool:
        return running.get(holder, False)

    def manager() -> LeaseManager:
        return LeaseManager(store(), 600, has_running_work, clock=lambda: now[0])

    accounts = pool(2)
    first = manager()
    bob = first.lease("bob", "cms", accounts)
    alice = first.lease("alice", "cms", accounts)
    assert (bob.username, alice.username) == ("p00", "p01")
    restarted = manager()  # a new process on the same database
    assert restarted.lease("alice", "cms", accounts) == alice
    with pytest.raises(PoolExhausted, match="leased and in use"):
        restarted.lease("carol", "cms", accounts)
    now[0] += timedelta(seconds=601)
    running["alice"] = running["bob"] = True
    with pytest.raises(PoolExhausted):  # idle, but their jobs still run
        restarted.lease("carol", "cms", accounts)
    running["bob"] = False
    assert restarted.lease("carol", "cms", accounts) == bob  # bob's idle account, now free
    running["alice"] = False
    assert restarted.release_idle(accounts) == 1  # alice's; carol's lease is fresh
    # p01 is free again, and alice held it last: she gets the same account back
    assert restarted.lease("alice", "cms", accounts) == alice


def test_default_probe_sees_processes_of_a_uid():
    mine = LocalAccount("me", os.getuid(), os.getgid())
    assert processes_running_as(mine, "me")
    assert not processes_running_as(LocalAccount("nobody-here", 59999, 59999), "x")


def test_backend_maps_own_accounts_then_pools(store):
    db = store()
    opts = SQLVOSettings(
        pools={
            "cms": {"accounts": ["cms01..cms02"], "uid_start": 72001, "gid": 72000},
            "cms:prod": {"accounts": ["cmsprod1"], "uid_start": 72100, "gid": 72000},
        },
        own_accounts={"alice": "alice:1001:1001"},
    )
    backend = SQLVOBackend(BackendContext(db.engine, Path("."), opts))
    try:
        alice = Principal("alice", "basic", memberships=(VOMembership("cms"),))
        assert backend.account_for(alice, "cms") == LocalAccount("alice", 1001, 1001, "/home/alice")
        bob = Principal("bob", "basic", memberships=(VOMembership("cms", "", ("prod",)),))
        assert backend.account_for(bob).username == "cms01"
        assert backend.account_for(bob, "cms", "prod").username == "cmsprod1"
        assert backend.account_for(bob, "cms").username == "cms01"
        busy = {"bob"}
        backend.use_activity_probe(lambda account, holder: holder in busy)
        backend.leases.idle = timedelta(0)
        assert backend.release_idle_leases() == 0  # bob's work still runs
        busy.clear()
        assert backend.release_idle_leases() == 2  # both of bob's pools
        assert backend.leases.leases() == []
    finally:
        backend.close()


def test_audit_is_append_only_and_changes_reach_other_processes(store, store_url):
    opts = SQLVOSettings(refresh_interval=0.0, audit_flush_seconds=0.05)
    a = SQLVOBackend(BackendContext(store().engine, Path("."), opts))
    b = SQLVOBackend(BackendContext(store().engine, Path("."), opts))
    try:
        a.create_vo("cms")
        a.add_member("cms", "alice")
        a.register_resource("cms", "cluster", "c1", "carol")
        alice = Principal("alice", "basic", memberships=b.memberships_of("alice"))
        assert b.decide(alice, "submit", Resource("cluster", "c1")).permitted
        a.put_policy(
            "owner", "carol", {"rules": [{"id": "closed", "effect": "deny", "actions": ["*"]}]}
        )
        decision = b.decide(alice, "submit", Resource("cluster", "c1"))
        assert not decision.permitted and "'closed'" in decision.reason
        epoch = b.membership_epoch("alice")
        a.update_member("cms", "alice", status="suspended")
        assert b.membership_epoch("alice") == epoch + 1
        assert b.memberships_of("alice") == ()
        b.audit.flush()
        records = b.audit.records(principal="alice")
        assert len(records) == 2 and records[0].outcome == "deny"
    finally:
        a.close()
        b.close()
    if not store_url.startswith("postgresql"):
        return
    with Database(store_url).engine.begin() as conn, pytest.raises(Exception, match="append-only"):
        conn.execute(text("UPDATE audit_records SET outcome = 'permit'"))
    with Database(store_url).engine.begin() as conn, pytest.raises(Exception, match="append-only"):
        conn.execute(text("DELETE FROM audit_records"))


def test_migration_goes_down_and_up(store_url):
    migrate.upgrade(store_url)
    migrate.downgrade(store_url, "0001")
    migrate.upgrade(store_url)
    db = Database(store_url)
    try:
        assert migrate.is_current(db.engine)
    finally:
        db.dispose()


class StandInDirectory:
    """What adapters/ldap's Directory answers (user_by_uid, pool_accounts), from a dict:
    the wiring is tested here; the real slapd behind it is the LDAP adapter's own test."""

    class User:
        def __init__(self, account: LocalAccount | None) -> None:
            self.account = account

        def local_account(self) -> LocalAccount | None:
            return self.account

    def __init__(self) -> None:
        self.users = {"dora": LocalAccount("dora", 5001, 5000, "/home/dora"), "eve": None}
        self.pools = {"lhcb": [LocalAccount("lhcb001", 73001, 73000)]}

    def user_by_uid(self, uid: str):
        return self.User(self.users[uid]) if uid in self.users else None

    def pool_accounts(self, vo: str) -> list[LocalAccount]:
        return self.pools.get(vo, [])


def test_directory_accounts_come_first_then_the_config(store):
    from backends.vo.accounts import ldap_account_source

    opts = SQLVOSettings(pools={"cms": {"accounts": ["cms01"], "uid_start": 72001, "gid": 72000}})
    backend = SQLVOBackend(BackendContext(store().engine, Path("."), opts))
    backend.use_account_source(ldap_account_source(StandInDirectory(), backend.accounts))
    try:
        both = (VOMembership("cms"), VOMembership("lhcb"))
        dora = Principal("dora", "negotiate", memberships=both)
        assert backend.account_for(dora, "lhcb").username == "dora"  # her posixAccount
        eve = Principal("eve", "negotiate", memberships=both)  # in LDAP, no posixAccount
        assert backend.account_for(eve, "lhcb").username == "lhcb001"  # LDAP pool
        assert backend.account_for(eve, "cms").username == "cms01"  # config pool
    finally:
        backend.close()


def test_a_site_with_pools_refuses_a_vo_without_one_and_the_defaults_map_nothing(store):
    """#16.16: only a site that configures no pool at all leaves the account to the
    execution backend's default; a site with pools keeps refusing a VO without one."""
    from backends.contracts.interfaces import NotSupported
    from backends.vo.errors import PoolExhausted

    db = store()
    atlas = Principal("dave", "basic", memberships=(VOMembership("atlas"),))
    pooled = SQLVOBackend(
        BackendContext(
            db.engine,
            Path("."),
            SQLVOSettings(pools={"cms": {"accounts": ["cms01"], "uid_start": 72001, "gid": 72000}}),
        )
    )
    defaults = SQLVOBackend(BackendContext(db.engine, Path("."), SQLVOSettings()))
    try:
        with pytest.raises(PoolExhausted, match="no account pool is configured for atlas"):
            pooled.account_for(atlas, "atlas")
        with pytest.raises(NotSupported, match=r"execution\.default_account"):
            defaults.account_for(atlas, "atlas")
    finally:
        pooled.close()
        defaults.close()
