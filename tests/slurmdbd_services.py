"""Slurm accounting for the test cluster: a real MariaDB and a real slurmdbd, started in
the cluster's temp folder on private ports and stopped by PID.

Known to work here (Debian 12, MariaDB 10.11, Slurm 22.05, root, no systemd):

- ``mariadb-install-db --no-defaults --datadir=<dir>/mariadb --user=root
  --auth-root-authentication-method=normal --skip-test-db`` (about 0.5 s), then
  ``mariadbd --no-defaults --datadir=… --socket=<dir>/mariadb.sock --port=<free>
  --bind-address=127.0.0.1 --skip-networking=0 --user=root``; ready when its socket
  answers (about 1 s). A ``slurm@127.0.0.1`` user with a password, over the socket as root.
- ``slurmdbd.conf`` mode 600 (slurmdbd refuses it otherwise) owned by ``SlurmUser=root``:
  ``StorageType=accounting_storage/mysql``, ``StorageHost=127.0.0.1``, the MariaDB port,
  a private ``DbdPort``, ``AuthInfo=socket=<munge socket>``. slurmdbd has no ``-f``: it
  reads ``slurmdbd.conf`` beside ``$SLURM_CONF``, so ``SLURM_CONF=<dir>/slurm.conf
  slurmdbd -D`` creates its tables on the first start (a few seconds).
- ``sacctmgr -i add cluster <ClusterName>`` before slurmctld starts (slurm.conf:
  ``AccountingStorageType=accounting_storage/slurmdbd``, ``AccountingStorageHost``,
  ``AccountingStoragePort`` = the DbdPort); ``AccountingStorageEnforce`` stays unset, so
  jobs of users without an association are recorded too. Clients and slurmctld reach
  slurmdbd's munge through ``AccountingStoragePass=<munge socket>`` (AuthInfo is not used
  for it: without it they look for /run/munge).
- While slurmdbd is down slurmctld queues the records and sends them when it is back;
  ``sacct`` meanwhile fails with "Connection refused".
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import subprocess
from pathlib import Path

from tests.services import Service, free_port, require, start

HINT = (
    "install Debian's mariadb-server and slurmdbd (scripts/install-debian-packages test, "
    "or apt-get install --no-install-recommends mariadb-server slurmdbd)"
)
BINARIES = ("mariadb-install-db", "mariadbd", "mariadb", "slurmdbd", "sacctmgr")
SEARCH = ("/usr/sbin", "/usr/bin")

SLURMDBD_CONF = """\
AuthType=auth/munge
AuthInfo=socket={munge_socket}
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort={dbd_port}
SlurmUser=root
PidFile={dir}/slurmdbd.pid
LogFile={dir}/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort={db_port}
StorageUser=slurm
StoragePass={password}
StorageLoc=xg_slurm_acct
"""


def binaries() -> dict[str, str]:
    """The MariaDB and slurmdbd programs (skip locally / fail under CI when missing)."""
    return require(*BINARIES, hint=HINT, search=SEARCH)


def slurm_conf_lines(dbd_port: int, munge_socket: Path) -> dict[str, str]:
    """What slurm.conf needs to send its records to this slurmdbd. Connections to
    slurmdbd take their munge socket from AccountingStoragePass, not AuthInfo."""
    return {
        "AccountingStorageType": "accounting_storage/slurmdbd",
        "AccountingStorageHost": "localhost",
        "AccountingStoragePort": str(dbd_port),
        "AccountingStoragePass": str(munge_socket),
    }


def _answers(path: Path):  # type: ignore[no-untyped-def]
    def probe() -> bool:
        with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX) as client:
            client.connect(str(path))
            return True
        return False

    return probe


def start_mariadb(directory: Path, programs: dict[str, str]) -> tuple[Service, str]:
    """A throw-away MariaDB on a free loopback port; returns it and the slurm password."""
    data = directory / "mariadb"
    subprocess.run(
        [
            programs["mariadb-install-db"],
            "--no-defaults",
            f"--datadir={data}",
            "--user=root",
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
        ],
        capture_output=True,
        check=True,
        timeout=120,
    )
    sock = directory / "mariadb.sock"
    port = free_port()
    service = start(
        "mariadbd",
        [
            programs["mariadbd"],
            "--no-defaults",
            f"--datadir={data}",
            f"--socket={sock}",
            f"--port={port}",
            "--bind-address=127.0.0.1",
            "--skip-networking=0",
            "--user=root",
            f"--pid-file={directory / 'mariadb.pid'}",
            "--innodb-buffer-pool-size=32M",
            "--skip-log-bin",
        ],
        directory=directory,
        port=port,
        ready=_answers(sock),
        timeout=60,
    )
    password = secrets.token_hex(12)
    sql = (
        f"CREATE USER 'slurm'@'127.0.0.1' IDENTIFIED BY '{password}';"
        "GRANT ALL ON xg_slurm_acct.* TO 'slurm'@'127.0.0.1';"
    )
    subprocess.run(
        [programs["mariadb"], "--no-defaults", f"--socket={sock}", "-u", "root", "-e", sql],
        capture_output=True,
        check=True,
        timeout=30,
    )
    return service, password


class Slurmdbd:
    """MariaDB plus slurmdbd; slurmdbd alone can be stopped and started (outage tests)."""

    def __init__(self, directory: Path, munge_socket: Path, slurm_conf: Path) -> None:
        self.directory = directory
        self.slurm_conf = slurm_conf
        self.programs = binaries()
        self.port = free_port()
        self.conf = slurm_conf.with_name("slurmdbd.conf")  # where slurmdbd looks for it
        self.mariadb: Service | None = None
        self.slurmdbd: Service | None = None
        self.munge_socket = munge_socket

    def start(self) -> None:
        self.mariadb, password = start_mariadb(self.directory, self.programs)
        fd = os.open(self.conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(
                SLURMDBD_CONF.format(
                    dir=self.directory,
                    munge_socket=self.munge_socket,
                    dbd_port=self.port,
                    db_port=self.mariadb.port,
                    password=password,
                )
            )
        self.start_daemon()

    def start_daemon(self) -> None:
        from tests.services import port_answers

        self.slurmdbd = start(
            "slurmdbd",
            [self.programs["slurmdbd"], "-D"],
            directory=self.directory,
            port=self.port,
            env={"SLURM_CONF": str(self.slurm_conf)},
            ready=port_answers(self.port),
            timeout=60,
        )

    def stop_daemon(self) -> None:
        if self.slurmdbd is not None:
            self.slurmdbd.stop()
            self.slurmdbd = None

    def register(self, cluster_name: str, env: dict[str, str]) -> None:
        """``sacctmgr -i add cluster``: slurmctld's records need their cluster's tables."""
        done = subprocess.run(
            [self.programs["sacctmgr"], "-i", "add", "cluster", cluster_name],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if done.returncode != 0 and "already exists" not in done.stdout + done.stderr:
            raise RuntimeError(f"sacctmgr add cluster failed: {done.stdout}{done.stderr}")

    def stop(self) -> None:
        for service in (self.slurmdbd, self.mariadb):
            if service is not None:
                service.stop()
        self.slurmdbd = self.mariadb = None
