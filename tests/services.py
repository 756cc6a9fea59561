"""Real services for the tests: started in a temp folder on a free loopback port, waited
for until they answer, stopped by PID at the end.

Each service fixture (PostgreSQL here; slapd, the MIT KDC, Slurm and others in later
suites) is built from three pieces: :func:`require` finds its binaries (skipping with the
install hint locally, failing under ``CI=true``), :func:`start` runs it and waits for a
readiness probe, and :meth:`Service.stop` ends it by PID (process group included).
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def missing(what: str, hint: str) -> None:
    """A service cannot run here: skip locally, fail under CI=true (never hide it in CI)."""
    message = f"{what} is not available: {hint}"
    if IN_CI:
        pytest.fail(f"{message} (CI=true: a missing service is a failure, not a skip)")
    pytest.skip(f"{message} (under CI=true this fails)")


def require(*names: str, hint: str, search: Sequence[str] = ()) -> dict[str, str]:
    """Absolute paths of the named binaries, found on PATH or in the ``search`` globs."""
    found: dict[str, str] = {}
    for name in names:
        path = shutil.which(name)
        for pattern in search:
            if path:
                break
            matches = sorted(glob.glob(os.path.join(pattern, name)), reverse=True)
            path = matches[0] if matches else None
        if not path:
            missing(name, hint)
        found[name] = path
    return found


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now (the OS picks it; a race is unlikely on lo)."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def xtreemgate_cli() -> str:
    """The ``xtreemgate`` command of the Python running the tests (its .venv)."""
    return str(Path(sys.executable).with_name("xtreemgate"))


def prepare_state(env: dict[str, str], users: dict[str, str], *extra: str) -> str:
    """Migrate the database of ``env``'s state folder and add ``users`` (name: password;
    ``extra`` options such as ``--site-admin`` for all), as an operator would before the
    first ``serve``. Returns the ``xtreemgate`` command used."""
    xtreemgate = xtreemgate_cli()
    subprocess.run([xtreemgate, "db", "upgrade"], env=env, check=True, capture_output=True)
    for name, password in users.items():
        subprocess.run(
            [xtreemgate, "user", "add", name, *extra, "--password-stdin"],
            env=env,
            input=password + "\n",
            text=True,
            check=True,
            capture_output=True,
        )
    return xtreemgate


def port_answers(port: int, host: str = "127.0.0.1") -> Callable[[], bool]:
    def probe() -> bool:
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return True
        return False

    return probe


def unprivileged_user(directory: Path, username: str) -> dict[str, int]:
    """Hand ``directory`` to ``username`` when running as root (servers such as PostgreSQL
    refuse to run as root); returns the Popen arguments that drop to that user."""
    if os.geteuid() != 0:
        return {}
    try:
        entry = pwd.getpwnam(username)
    except KeyError:
        missing(f"the system user {username!r}", "create it or install its Debian package")
    for root, dirs, files in os.walk(directory):
        for name in [root, *(os.path.join(root, n) for n in dirs + files)]:
            os.chown(name, entry.pw_uid, entry.pw_gid)
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


@dataclass
class Service:
    """A started service: what to reach it at, and how to stop it."""

    name: str
    port: int
    directory: Path
    pid: int
    log: Path
    env: dict[str, str] = field(default_factory=dict)

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM to the service's process group, SIGKILL if it has not gone in time."""
        stop_pid(self.pid, timeout)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def alive(pid: int) -> bool:
    """Running: not gone, and not a zombie (reaped here when it is our own child; a
    daemon's zombie may wait forever for a PID 1 that does not reap, as in containers)."""
    with contextlib.suppress(ChildProcessError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def stop_pid(pid: int, timeout: float = 15.0) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, sig)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        deadline = time.monotonic() + (timeout if sig == signal.SIGTERM else 5)
        while time.monotonic() < deadline:
            if not alive(pid):
                return
            time.sleep(0.05)


def start(
    name: str,
    argv: Sequence[str],
    *,
    directory: Path,
    port: int,
    ready: Callable[[], bool],
    env: dict[str, str] | None = None,
    timeout: float = 30.0,
    pidfile: Path | None = None,
    popen: dict | None = None,
) -> Service:
    """Run ``argv`` in its own session and wait until ``ready()`` is true.

    A service that daemonizes names its ``pidfile``; the PID in it is the one stopped.
    When the process exits or the timeout passes first, the failure says why, with the
    tail of the service's log.
    """
    log = directory / f"{name}.log"
    options = {"env": {**os.environ, **(env or {})}, **(popen or {})}
    with log.open("ab") as out:
        proc = subprocess.Popen(
            list(argv),
            cwd=directory,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            **options,
        )
    service = Service(name, port, directory, proc.pid, log, env or {})
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            if pidfile is not None:
                service.pid = int(pidfile.read_text().split()[0])
            return service
        if pidfile is None and proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {proc.returncode}:\n{service.log_tail()}")
        time.sleep(0.05)
    stop_pid(proc.pid)
    raise RuntimeError(f"{name} did not answer within {timeout:.0f} s:\n{service.log_tail()}")
