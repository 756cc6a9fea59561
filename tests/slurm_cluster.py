"""A real one-node Slurm cluster for the tests: munged, slurmctld and slurmd in a temp
folder on private ports, stopped by PID.

Debian's ``slurm-wlm`` 22.05 with no systemd: the munge key (1024 random bytes, mode 400)
and socket (in a folder of mode 755) are private, ``SlurmUser=root``, process tracking by
``/proc`` (no cgroups here), no accounting daemon: finished jobs are read back with
``sacct -c`` from the job-completion file. The controller can be stopped and started again
on its own (for the outage tests) over the same state folder.

``start_cluster(dir, slurmdbd=True)`` adds real accounting (tests/slurmdbd_services.py:
MariaDB and slurmdbd, the cluster registered with sacctmgr) and sends slurmctld's records
there instead of ``accounting_storage/none``; ``overrides`` sets single slurm.conf keys.

Requeue tests: a requeued job waits ``cred_expire`` seconds (default 120) before it may
start again, and then for the next scheduling pass (``sched_interval``, default 60):
both are short here so that a requeued job runs again within about 12 s. (cred_expire is
also how long a launch credential stays valid: 10 s leaves room on a loaded machine.)
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.services import Service, free_port, missing, require, start, stop_pid

HINT = (
    "install Debian's slurm-wlm slurmctld slurmd slurm-client munge "
    "(scripts/install-debian-packages test)"
)
# More CPUs than the 2-core test machine has (config_overrides lets slurmd accept it):
# the wall-time job runs beside the others for a minute, and an SPMD job needs 2 at once.
NODE_CPUS = 4
BINARIES = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "sacct", "scancel", "sinfo")
SEARCH = ("/usr/sbin", "/usr/bin")

SLURM_CONF = """\
ClusterName=xgtest
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={munge_socket},cred_expire=10
StateSaveLocation={dir}/state
SlurmdSpoolDir={dir}/spool
SlurmctldPidFile={dir}/slurmctld.pid
SlurmdPidFile={dir}/slurmd.pid
SlurmctldLogFile={dir}/slurmctld.log
SlurmdLogFile={dir}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
JobCompType=jobcomp/filetxt
JobCompLoc={dir}/jobcomp.txt
AccountingStorageType=accounting_storage/none
MpiDefault=none
ReturnToService=2
SchedulerType=sched/builtin
MinJobAge=300
MaxJobCount=20000
MaxArraySize=10001
KillWait=1
InactiveLimit=0
OverTimeLimit=0
MessageTimeout=5
SlurmctldTimeout=30
SlurmdTimeout=60
SlurmdParameters=config_overrides
NodeName=localhost CPUs={cpus} State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
PartitionName={second_partition} Nodes=localhost Default=NO MaxTime=INFINITE State=UP
SchedulerParameters=sched_interval=2
"""
# A second partition on the same node: a JSDL queue hint chooses it (tests of the hint).
SECOND_PARTITION = "grid"


@dataclass
class SlurmCluster:
    directory: Path
    conf: Path
    binaries: dict[str, str]
    munge: Service | None = None
    accounting: Any = None  # tests.slurmdbd_services.Slurmdbd when started with slurmdbd
    slurmctld: Service | None = None
    slurmd: Service | None = None
    ports: dict[str, int] = field(default_factory=dict)

    @property
    def env(self) -> dict[str, str]:
        return {"SLURM_CONF": str(self.conf)}

    def run(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(
            [self.binaries.get(argv[0], argv[0]), *argv[1:]],
            env={**os.environ, **self.env},
            capture_output=True,
            text=True,
            timeout=30,
            check=check,
        )

    def idle(self) -> bool:
        try:
            result = self.run("sinfo", "-h", "-o", "%T", check=False)
        except subprocess.TimeoutExpired:
            return False
        # "idle*" (not responding yet) is not ready: jobs would wait with ReqNodeNotAvail
        return result.returncode == 0 and result.stdout.strip() in ("idle", "mixed", "allocated")

    def start_controller(self) -> None:
        self.slurmctld = start(
            "slurmctld",
            [self.binaries["slurmctld"], "-D", "-f", str(self.conf)],
            directory=self.directory,
            port=self.ports["ctld"],
            ready=self.idle,
            env=self.env,
            timeout=60,
        )

    def stop_controller(self) -> None:
        if self.slurmctld is not None:
            self.slurmctld.stop()
            self.slurmctld = None

    def stop(self) -> None:
        for service in (self.slurmd, self.slurmctld):
            if service is not None:
                service.stop()
        if self.accounting is not None:
            self.accounting.stop()
        if self.munge is not None:
            self.munge.stop()


def _override(text: str, conf: dict[str, str]) -> str:
    """slurm.conf with these keys set (replaced where present, appended otherwise)."""
    lines = text.splitlines()
    for key, value in conf.items():
        at = [i for i, line in enumerate(lines) if line.startswith(key + "=")]
        if at:
            lines[at[0]] = f"{key}={value}"
        else:
            lines.append(f"{key}={value}")
    return "\n".join(lines) + "\n"


def start_cluster(
    directory: Path, *, slurmdbd: bool = False, overrides: dict[str, str] | None = None
) -> SlurmCluster:
    """Start munged, slurmctld and slurmd; ready when the node is idle (about 1-2 s).
    With ``slurmdbd``, MariaDB and slurmdbd first (about 5 s more)."""
    if os.geteuid() != 0:
        missing("a Slurm test cluster", "the tests start slurmd, which must run as root")
    binaries = require(*BINARIES, hint=HINT, search=SEARCH)
    for name in ("scontrol",):
        binaries[name] = shutil.which(name) or "/usr/bin/" + name
    munge_dir = directory / "munge"
    munge_dir.mkdir(mode=0o755)
    os.chmod(munge_dir, 0o755)  # noqa: S103 - munged refuses a socket folder others may write to
    key = directory / "munge.key"
    key.write_bytes(secrets.token_bytes(1024))
    os.chmod(key, 0o400)
    for sub in ("state", "spool"):
        (directory / sub).mkdir()
    socket = munge_dir / "munge.socket.2"
    ports = {"ctld": free_port(), "slurmd": free_port()}
    settings = dict(overrides or {})
    accounting = None
    if slurmdbd:
        from tests.slurmdbd_services import Slurmdbd, slurm_conf_lines

        accounting = Slurmdbd(directory, socket, directory / "slurm.conf")
        settings = {**slurm_conf_lines(accounting.port, socket), **settings}
    conf = directory / "slurm.conf"
    conf.write_text(
        _override(
            SLURM_CONF.format(
                dir=directory,
                ctld_port=ports["ctld"],
                slurmd_port=ports["slurmd"],
                munge_socket=socket,
                cpus=NODE_CPUS,
                second_partition=SECOND_PARTITION,
            ),
            settings,
        )
    )
    cluster = SlurmCluster(directory, conf, binaries, ports=ports, accounting=accounting)
    try:
        cluster.munge = start(
            "munged",
            [
                binaries["munged"],
                "-F",
                "--force",
                f"--socket={socket}",
                f"--key-file={key}",
                f"--pid-file={directory / 'munged.pid'}",
                f"--log-file={directory / 'munged.log'}",
                f"--seed-file={directory / 'munged.seed'}",
            ],
            directory=directory,
            port=0,
            ready=socket.exists,
        )
        if accounting is not None:
            accounting.start()
            accounting.register("xgtest", cluster.env)
        cluster.slurmd = start(
            "slurmd",
            [binaries["slurmd"], "-D", "-f", str(conf), "-N", "localhost"],
            directory=directory,
            port=ports["slurmd"],
            ready=lambda: (directory / "slurmd.pid").exists(),
            env=cluster.env,
        )
        cluster.start_controller()
    except BaseException:
        cluster.stop()
        raise
    return cluster


def wait_for(predicate, timeout: float = 30.0, interval: float = 0.2):  # type: ignore[no-untyped-def]
    """Poll ``predicate`` until it returns something true; its last value otherwise."""
    deadline = time.monotonic() + timeout
    value = predicate()
    while not value and time.monotonic() < deadline:
        time.sleep(interval)
        value = predicate()
    return value


__all__ = ["SECOND_PARTITION", "SlurmCluster", "start_cluster", "stop_pid", "wait_for"]
