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
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    started: list[subprocess.Popen] = []
    xtreemgate = str(Path(sys.executable).with_name("xtreemgate"))

    def start(env: dict[str, str]) -> str:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        subprocess.run([xtreemgate, "db", "upgrade"], env=env, check=True, capture_output=True)
        proc = subprocess.Popen(
            [xtreemgate, "serve", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        started.append(proc)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"xtreemgate serve exited: {proc.stderr.read().decode()}")
            try:
                with urllib.request.urlopen(f"{url}/healthz", timeout=1):
                    return url
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("xtreemgate serve did not answer /healthz within 30 s")

    yield start
    for proc in started:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
