"""Fixtures every test folder shares: isolated settings, a migrated store, an app client."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from backends.store import migrate
from gateway.config import Settings, load_settings

PASSWORD = "correct horse battery"


@pytest.fixture(autouse=True)
def _no_ambient_config(monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's own XTREEMGATE_* variables must not change what a test sees."""
    import os

    for name in list(os.environ):
        if name.startswith("XTREEMGATE_"):
            monkeypatch.delenv(name)


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    """Settings with state in a temp folder; keyword overrides are nested dicts."""

    def make(**overrides: Any) -> Settings:
        overrides.setdefault("state_dir", str(tmp_path / "state"))
        logging = overrides.setdefault("logging", {})
        logging.setdefault("format", "text")
        logging.setdefault("access_log", False)
        return load_settings(None, **overrides)

    return make


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    s = make_settings()
    migrate.upgrade(s.database_url)
    return s


@pytest.fixture
def app(settings: Settings) -> Iterator[Any]:
    from gateway.app import create_app

    application = create_app(settings, configure_logs=False)
    yield application
    application.app.extensions["xtreemgate"].close()


@pytest.fixture
def client(app: Any) -> Iterator[Any]:
    with app.test_client() as test_client:
        yield test_client


@pytest.fixture
def runtime(app: Any) -> Any:
    return app.app.extensions["xtreemgate"]


@pytest.fixture
def alice(runtime: Any) -> str:
    from gateway.auth.users import add_user

    add_user(runtime.db, "alice", PASSWORD, display_name="Alice Liddell")
    return "alice"


def basic(username: str, password: str = PASSWORD) -> dict[str, str]:
    pair = base64.b64encode(f"{username}:{password}".encode()).decode()
    return {"Authorization": f"Basic {pair}"}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def gateway_server() -> Iterator[Callable[..., str]]:
    """Start real ``xtreemgate serve`` processes (after ``db upgrade``); gives their URLs."""
    yield from _gateway_processes()


@pytest.fixture(scope="module")
def module_gateway_server() -> Iterator[Callable[..., str]]:
    """The same, kept for a whole test module (a gateway takes seconds to start)."""
    yield from _gateway_processes()


def _gateway_processes() -> Iterator[Callable[..., str]]:
    import shutil
    import subprocess
    import sys
    import tempfile
    import urllib.request

    from tests import services

    started: list[services.Service] = []
    logs = Path(tempfile.mkdtemp(prefix="xg-gateways-"))
    xtreemgate = str(Path(sys.executable).with_name("xtreemgate"))

    def answers(url: str) -> bool:
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=1):
                return True
        except OSError:
            return False

    def start(env: dict[str, str]) -> str:
        """``env`` is the whole environment of the process (not merged with ours)."""
        port = services.free_port()
        subprocess.run([xtreemgate, "db", "upgrade"], env=env, check=True, capture_output=True)
        url = f"http://127.0.0.1:{port}"
        folder = logs / str(port)  # the log goes to a file: a pipe nobody reads would stall
        folder.mkdir()
        started.append(
            services.start(
                "xtreemgate",
                [xtreemgate, "serve", "--port", str(port)],
                directory=folder,
                port=port,
                ready=lambda: answers(url),
                popen={"env": env},
            )
        )
        return url

    yield start
    for service in started:
        service.stop()
    shutil.rmtree(logs, ignore_errors=True)


# -- a throw-away PostgreSQL cluster ---------------------------------------------------


@pytest.fixture(scope="session")
def postgres() -> Iterator[Any]:
    """One PostgreSQL server for the session: initdb in a temp folder, a free loopback
    port, trust auth for the ``xtreemgate`` role; stopped by PID at the end."""
    import shutil
    import subprocess
    import tempfile

    from tests import services

    bins = services.require(
        "initdb",
        "postgres",
        hint="install the Debian package postgresql (./scripts/test does)",
        search=["/usr/lib/postgresql/*/bin"],
    )
    directory = Path(tempfile.mkdtemp(prefix="xg-postgres-"))
    directory.chmod(0o755)
    drop = services.unprivileged_user(directory, "postgres")  # initdb refuses root
    data = directory / "data"
    subprocess.run(
        [
            *(bins["initdb"], "-D", str(data), "-U", "xtreemgate", "--auth=trust"),
            *("-E", "UTF8", "--no-sync", "--no-instructions"),
        ],
        check=True,
        capture_output=True,
        **drop,
    )
    port = services.free_port()
    server = services.start(
        "postgres",
        [
            *(bins["postgres"], "-D", str(data), "-p", str(port), "-h", "127.0.0.1"),
            *("-k", str(directory), "-c", "fsync=off", "-c", "full_page_writes=off"),
            *("-c", "max_connections=200"),
        ],
        directory=directory,
        port=port,
        ready=lambda: _postgres_answers(port),
        popen=drop,
    )
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)


def _postgres_answers(port: int) -> bool:
    import psycopg

    try:
        psycopg.connect(f"host=127.0.0.1 port={port} user=xtreemgate dbname=postgres").close()
    except psycopg.OperationalError:
        return False
    return True


@pytest.fixture
def postgres_url(postgres: Any) -> Iterator[str]:
    """A fresh, empty database on the session's PostgreSQL, dropped after the test."""
    import secrets

    import psycopg

    name = "xg_" + secrets.token_hex(6)
    admin = f"host=127.0.0.1 port={postgres.port} user=xtreemgate dbname=postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield f"postgresql+psycopg://xtreemgate@127.0.0.1:{postgres.port}/{name}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The persistence tests run on both stores: the embedded one and the production one."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state.db'}"
    return request.getfixturevalue("postgres_url")


# -- the site's identity services: slapd and two Kerberos realms (identity_services.py) --


@pytest.fixture(scope="session")
def slapd() -> Iterator[Any]:
    """One slapd for the session, loaded with people, groups and pool accounts. Tests
    that stop or pause a directory use ``fresh_slapd`` instead."""
    import tempfile

    from tests import identity_services

    directory = Path(tempfile.mkdtemp(prefix="xg-slapd-"))
    server = identity_services.make_slapd(directory)
    try:
        yield server
    finally:
        server.stop()
        identity_services.remove(directory)


@pytest.fixture
def fresh_slapd(tmp_path: Path) -> Iterator[Any]:
    """A slapd of the test's own (it starts in a fraction of a second)."""
    from tests import identity_services

    server = identity_services.make_slapd(tmp_path / "slapd")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def kerberos_realms() -> Iterator[Any]:
    """XG.TEST and PARTNER.TEST, each with its own running KDC, trusting each other;
    an HTTP/localhost keytab in XG.TEST."""
    import tempfile

    from tests import identity_services

    directory = Path(tempfile.mkdtemp(prefix="xg-krb5-"))
    realms = identity_services.make_realms(directory)
    try:
        yield realms
    finally:
        realms.stop()
        identity_services.remove(directory)


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A real one-node Slurm cluster (munged, slurmctld, slurmd) for the whole session;
    skipped with an install hint where Slurm is missing (a failure under CI=true)."""
    import os
    import tempfile

    from tests.slurm_cluster import start_cluster

    # not under pytest's 0700 temp root: jobs of mapped accounts must reach their folders
    directory = Path(tempfile.mkdtemp(prefix="xg-slurm-"))
    os.chmod(directory, 0o755)  # noqa: S103 - the job accounts pass through it
    cluster = start_cluster(directory)
    try:
        yield cluster
    finally:
        cluster.stop()
        import shutil

        shutil.rmtree(directory, ignore_errors=True)
