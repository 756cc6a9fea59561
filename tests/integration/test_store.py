"""Persistence on both stores: SQLite (embedded) and a real PostgreSQL (production).

What must hold on each: migrations up and down, state surviving a process restart,
atomic transactions, aware UTC times, and several gateway processes sharing one key ring
without stepping on each other.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
import pytest
from sqlalchemy import inspect, select

from backends.store import Database, migrate
from backends.store.tables.identity import LocalUser, SigningKey
from gateway.auth.tokens import KeyRing, TokenService
from gateway.auth.users import add_user, check_password
from gateway.config import TokenSettings

XG = str(Path(sys.executable).with_name("xtreemgate"))
TABLES = {"local_users", "signing_keys", "alembic_version"}


@pytest.fixture
def migrated(store_url: str):
    migrate.upgrade(store_url)
    databases: list[Database] = []

    def open_db() -> Database:
        """A new Database: what a second gateway process (or a restart) would hold."""
        databases.append(Database(store_url))
        return databases[-1]

    yield open_db
    for db in databases:
        db.dispose()


def test_migrations_create_everything_and_go_back_down(store_url: str) -> None:
    migrate.upgrade(store_url)
    db = Database(store_url)
    try:
        assert set(inspect(db.engine).get_table_names()) >= TABLES
        assert migrate.is_current(db.engine)
        migrate.downgrade(store_url, "base")
        assert set(inspect(db.engine).get_table_names()) <= {"alembic_version"}
        assert migrate.current_revision(db.engine) == ""
        migrate.upgrade(store_url)  # and up again, as after a rolled-back release
        assert migrate.is_current(db.engine)
    finally:
        db.dispose()


def test_users_survive_a_restart(migrated) -> None:
    add_user(migrated(), "carol", "carol's long password", display_name="Carol")
    restarted = migrated()
    user = check_password(restarted, "carol", "carol's long password")
    assert user is not None and user.display_name == "Carol"
    assert check_password(restarted, "carol", "wrong password") is None


def test_a_failed_transaction_leaves_nothing(migrated) -> None:
    db = migrated()
    with pytest.raises(RuntimeError, match="half-way"), db.session() as session:
        session.add(LocalUser(username="half", password_hash="x"))
        session.flush()  # the row reached the database inside the transaction
        raise RuntimeError("failed half-way")
    with migrated().session() as session:
        assert session.scalar(select(LocalUser).where(LocalUser.username == "half")) is None


def test_times_come_back_as_aware_utc(migrated) -> None:
    db = migrated()
    moment = datetime(2026, 3, 29, 1, 30, tzinfo=UTC) + timedelta(microseconds=0)
    with db.session() as session:
        session.add(
            SigningKey(
                generation=99,
                kid="k99",
                algorithm="ES256",
                private_pem=b"-",
                public_jwk={},
                not_before=moment.astimezone(datetime.now().astimezone().tzinfo),
            )
        )
    with migrated().session() as session:
        stored = session.scalar(select(SigningKey).where(SigningKey.kid == "k99"))
    assert stored.not_before == moment
    assert stored.not_before.utcoffset() == timedelta(0)


def test_processes_starting_at_once_create_exactly_one_key(migrated) -> None:
    """Eight 'processes' (own engines) call ensure() together: one first key, not eight."""
    settings = TokenSettings()
    rings = [KeyRing(migrated(), settings) for _ in range(8)]
    barrier = threading.Barrier(len(rings))
    errors: list[BaseException] = []

    def boot(ring: KeyRing) -> None:
        try:
            barrier.wait()
            ring.ensure()
        except BaseException as exc:  # reported below, with the test's failure
            errors.append(exc)

    threads = [threading.Thread(target=boot, args=(ring,)) for ring in rings]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    with migrated().session() as session:
        generations = session.scalars(select(SigningKey.generation)).all()
    assert generations == [1]
    assert len({ring.signing_key().kid for ring in rings}) == 1


def test_rotation_by_one_process_is_honoured_by_another_at_once(migrated) -> None:
    settings = TokenSettings(key_refresh=3600)  # no timed refresh: the unknown kid must do it
    issuer = "urn:xtreemgate:test"
    a = TokenService(KeyRing(migrated(), settings), settings, issuer)
    b = TokenService(KeyRing(migrated(), settings), settings, issuer)
    a.keyring.ensure()
    b.keyring.ensure()
    old_token, _ = a.issue("alice")
    new_kid = a.keyring.rotate(publish_ahead=0)
    new_token, _ = a.issue("alice")
    assert a.keyring.signing_key().kid == new_kid
    assert b.verify(new_token)["sub"] == "alice"  # b had never seen new_kid
    assert b.verify(old_token)["sub"] == "alice"  # the old key keeps verifying


def test_concurrent_rotations_never_share_a_generation(migrated) -> None:
    settings = TokenSettings()
    rings = [KeyRing(migrated(), settings) for _ in range(4)]
    rings[0].ensure()
    kids: list[str] = []
    threads = [threading.Thread(target=lambda r=r: kids.append(r.rotate(0))) for r in rings]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(set(kids)) == 4
    with migrated().session() as session:
        generations = sorted(session.scalars(select(SigningKey.generation)).all())
    assert generations == [1, 2, 3, 4, 5]


def _whoami(url: str, token: str) -> int:
    request = urllib.request.Request(
        f"{url}/api/v1/whoami", headers={"Authorization": f"Bearer {token}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status
    except urllib.error.HTTPError as refused:
        return refused.code


def test_two_gateway_processes_share_one_postgresql(postgres_url, gateway_server, tmp_path):
    """Production shape: two real `xtreemgate serve` processes on one PostgreSQL. A token
    from either is accepted by both, and a key rotated from the CLI reaches both with no
    restart."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("XTREEMGATE_")}
    env |= {
        "XTREEMGATE_DATABASE__URL": postgres_url,
        "XTREEMGATE_AUTH__TOKENS__ISSUER": "https://gw.example.org",
        "XTREEMGATE_AUTH__TOKENS__KEY_REFRESH": "1",
        "XTREEMGATE_LOGGING__FORMAT": "text",
    }
    one = gateway_server(env | {"XTREEMGATE_STATE_DIR": str(tmp_path / "one")})
    two = gateway_server(env | {"XTREEMGATE_STATE_DIR": str(tmp_path / "two")})

    def cli(*args: str, stdin: str | None = None) -> str:
        env_cli = env | {"XTREEMGATE_STATE_DIR": str(tmp_path / "cli")}
        done = subprocess.run(
            [XG, *args], env=env_cli, input=stdin, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    cli("user", "add", "erin", "--password-stdin", stdin="erin's long password\n")
    token = cli("token", "issue", "erin")
    assert _whoami(one, token) == 200 and _whoami(two, token) == 200
    new_kid = cli("keys", "rotate", "--publish-ahead", "0")
    fresh = cli("token", "issue", "erin")
    assert jwt.get_unverified_header(fresh)["kid"] == new_kid
    assert (_whoami(one, fresh), _whoami(two, fresh)) == (200, 200)
    assert (_whoami(one, token), _whoami(two, token)) == (200, 200)  # old key still verifies
    with urllib.request.urlopen(f"{two}/.well-known/jwks.json", timeout=10) as answer:
        assert new_kid.encode() in answer.read()
