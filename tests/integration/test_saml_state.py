"""The SP's state on both stores (SQLite and PostgreSQL): outstanding requests answered
once, the replay cache shared by processes, login sessions and their logout."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from backends.store import Database, migrate
from gateway.saml.state import LoginSession, ReplayCache, RequestStore, SessionStore


@pytest.fixture
def db(store_url: str):
    migrate.upgrade(store_url)
    database = Database(store_url)
    yield database
    database.dispose()


def test_a_request_is_answered_once_even_by_racing_processes(db: Database) -> None:
    store = RequestStore(db, lifetime=600)
    store.remember("_r1", "https://idp.example.org", "/portal/")
    winners: list[object] = []

    def consume() -> None:
        # Each "process" has its own engine, as separate gateway processes would.
        other = Database(db.url)
        try:
            found = RequestStore(other, lifetime=600).consume("_r1")
            if found is not None:
                winners.append(found)
        finally:
            other.dispose()

    threads = [threading.Thread(target=consume) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(winners) == 1
    assert winners[0].idp == "https://idp.example.org"
    assert winners[0].return_to == "/portal/"
    assert store.consume("_r1") is None


def test_an_expired_request_is_not_answered(db: Database) -> None:
    store = RequestStore(db, lifetime=600)
    store.remember("_old", "https://idp", "/")
    store.lifetime = -1
    store.remember("_older", "https://idp", "/")
    assert store.consume("_older") is None
    assert store.consume("_old") is not None


def test_replay_cache_is_shared(db: Database) -> None:
    until = datetime.now(UTC) + timedelta(minutes=5)
    assert ReplayCache(db).first_use("https://idp", "_a", until)
    assert not ReplayCache(Database(db.url)).first_use("https://idp", "_a", until)
    assert ReplayCache(db).first_use("https://idp2", "_a", until)


def test_sessions_end_by_cookie_and_by_idp_logout(db: Database) -> None:
    store = SessionStore(db)
    soon = datetime.now(UTC) + timedelta(hours=1)

    def login(index: str) -> str:
        return store.create(
            LoginSession(
                "alice@example.org",
                {"name": "alice@example.org"},
                "https://idp",
                "_nid",
                "transient",
                index,
                soon,
            )
        )

    first, second, third = login("s1"), login("s2"), login("s3")
    assert store.get(first).subject == "alice@example.org"
    assert store.end(first) is not None and store.get(first) is None
    assert store.end_by_name_id("https://idp", "_nid", ["s2"]) == 1
    assert store.get(second) is None and store.get(third) is not None
    assert store.end_by_name_id("https://idp", "_nid", []) == 1
    assert store.get(third) is None
    expired = store.create(
        LoginSession("bob", {}, "https://idp", "_b", "", "", datetime.now(UTC) - timedelta(1))
    )
    assert store.get(expired) is None
