"""Finished Slurm jobs read back from a real slurmdbd (MariaDB behind it).

One cluster for the module (tests/slurm_cluster.py with ``slurmdbd=True``), with
``MinJobAge=2``: squeue forgets a finished job after about 2 s, so every final state
asserted here came from the accounting database, not from squeue.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from backends.contracts.interfaces import BackendContext
from backends.contracts.model import JobSpec, JobState
from backends.execution.slurm.backend import STARTED_FILE, SlurmExecutionBackend
from backends.execution.slurm.settings import SlurmSettings
from backends.services.activities import ActivityService
from backends.store import make_engine
from backends.store.activities import ActivityStore
from backends.store.tables import Base
from tests.slurm_cluster import start_cluster, wait_for

pytestmark = pytest.mark.service


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    # not under pytest's 0700 temp root: jobs of mapped accounts must reach their folders
    directory = Path(tempfile.mkdtemp(prefix="xg-slurmdbd-"))
    os.chmod(directory, 0o755)  # noqa: S103 - the job accounts pass through it
    try:
        started = start_cluster(directory, slurmdbd=True, overrides={"MinJobAge": "2"})
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise
    try:
        yield started
    finally:
        started.stop()
        shutil.rmtree(directory, ignore_errors=True)


def make_backend(cluster: Any, work_dir: Path, **options: Any) -> SlurmExecutionBackend:
    slurm = SlurmSettings(
        work_dir=str(work_dir),
        slurm_conf=str(cluster.conf),
        poll_interval_seconds=0,
        command_timeout_seconds=20,
        **options,
    )
    execution = SimpleNamespace(slurm=slurm, default_account="nobody")
    return SlurmExecutionBackend(BackendContext(None, work_dir.parent, execution))


@pytest.fixture(scope="module")
def overrunning(cluster: Any) -> tuple[Path, str]:
    """Submitted first: Slurm's wall-time check runs every 30 s on whole minutes."""
    folder = cluster.directory / "work-timeout"
    folder.mkdir(mode=0o755)
    backend = make_backend(cluster, folder)
    return folder, backend.submit(
        "act-timeout", JobSpec("/bin/sleep", ("300",), wall_time_limit=1), None
    )


@pytest.fixture(autouse=True)
def _overrunning_job_first(overrunning: Any) -> None:
    pass


@pytest.fixture
def work_dir(cluster: Any) -> Path:
    folder = cluster.directory / f"work-{time.monotonic_ns()}"
    folder.mkdir(mode=0o755)
    return folder


def forgotten(cluster: Any, backend_id: str) -> bool:
    """squeue no longer lists the job (so only the accounting can tell its end)."""
    job = backend_id.split("_")[0]
    out = cluster.run("squeue", "-h", "-t", "all", "-o", "%i", check=False).stdout.split()
    return not any(line.split("_")[0] == job for line in out)


def wait_final(backend: SlurmExecutionBackend, backend_id: str, timeout: float = 60.0):
    def final():
        status = backend.status([backend_id]).get(backend_id)
        return status if status is not None and status.state.terminal else None

    status = wait_for(final, timeout, 0.5)
    assert status is not None, backend.status([backend_id])
    return status


def test_accounting_source_is_detected_and_reported(cluster, work_dir):
    backend = make_backend(cluster, work_dir)
    health = backend.health()
    assert health.ok
    assert "finished jobs from slurmdbd" in health.detail
    assert health.figures["accounting"] == "slurmdbd"
    assert health.figures["accounting_reachable"] is True


def test_forgotten_jobs_are_read_from_slurmdbd(cluster, work_dir):
    backend = make_backend(cluster, work_dir)
    ok = backend.submit("act-ok", JobSpec("/bin/true"), None)
    bad = backend.submit("act-bad", JobSpec("/bin/sh", ("-c", "exit 7")), None)
    assert wait_for(lambda: forgotten(cluster, ok) and forgotten(cluster, bad), 60)
    polls = backend.polls
    answer = backend.status([ok, bad])
    assert backend.polls == polls + 1  # one squeue, then one sacct for both
    assert answer[ok].state is JobState.FINISHED and answer[ok].exit_code == 0
    assert answer[ok].finished_at is not None
    assert answer[bad].state is JobState.FAILED
    assert answer[bad].exit_code == 7 and answer[bad].reason == "exited with status 7"


def test_restarted_backend_reconciles_from_slurmdbd(cluster, work_dir):
    """A gateway that was down while its jobs finished (and squeue forgot them) finds
    their ends in slurmdbd: finished, cancelled (by whom), a job-array task."""
    first = make_backend(cluster, work_dir)
    done = first.submit("act-r-done", JobSpec("/bin/sh", ("-c", "exit 0")), None)
    cancelled = first.submit("act-r-cancel", JobSpec("/bin/sleep", ("60",)), None)
    tasks = first.submit_many([(f"act-r-sweep-{i}", JobSpec("/bin/true")) for i in range(2)], None)
    first.terminate(cancelled)
    ids = [done, cancelled, *tasks]
    assert wait_for(lambda: all(forgotten(cluster, b) for b in ids), 60)
    again = make_backend(cluster, work_dir)  # a new gateway process, nothing in memory
    answer = wait_for(
        lambda: (a := again.status(ids)) and all(s.state.terminal for s in a.values()) and a,
        30,
        0.5,
    )
    assert answer, again.status(ids)
    assert answer[done].state is JobState.FINISHED and answer[done].exit_code == 0
    assert answer[cancelled].state is JobState.CANCELLED
    assert answer[cancelled].reason == "cancelled by root"
    assert [answer[t].state for t in tasks] == [JobState.FINISHED, JobState.FINISHED]
    # the verdicts are on file: a third process does not ask Slurm again
    third = make_backend(cluster, work_dir)
    assert third.status(ids)[done].state is JobState.FINISHED and third.polls == 0
    # a crash between sbatch and recording its id, noticed after squeue forgot the job:
    # slurmdbd finds it by its name, and it is not submitted again
    marker = work_dir / "act-r-done" / "submit.json"
    marker.write_text(json.dumps({"name": "xg-act-r-done", "index": None}))
    os.unlink(work_dir / "jobs" / done)
    fourth = make_backend(cluster, work_dir)
    assert fourth.submit("act-r-done", JobSpec("/bin/sh", ("-c", "exit 0")), None) == done
    names = cluster.run("sacct", "-X", "-n", "-P", "-o", "JobName", "-S", "now-3600").stdout
    assert names.split().count("xg-act-r-done") == 1


def test_slurmdbd_down_keeps_the_last_known_state_then_recovers(cluster, work_dir):
    """Through the gateway's activity store: while slurmdbd is away a job squeue has
    forgotten stays Running with the reason (never Failed as lost), then gets its end."""
    engine = make_engine(f"sqlite:///{work_dir / 'gateway.db'}")
    Base.metadata.create_all(engine)
    store = ActivityStore(engine)
    backend = make_backend(cluster, work_dir)
    (record,) = store.record(
        ["act-outage"], backend=backend.name, owner="alice", vo="", jsdl="<x/>"
    )
    ActivityService(store, backend).hand_over(
        record.id, JobSpec("/bin/sh", ("-c", "sleep 3; exit 5"))
    )

    def refreshed():
        return ActivityService(store, backend).refresh([store.get(record.id)])[record.id]

    assert wait_for(lambda: refreshed().state is JobState.RUNNING, 30)
    backend_id = store.get(record.id).backend_id
    assert (work_dir / "act-outage" / STARTED_FILE).exists()
    cluster.accounting.stop_daemon()
    try:
        assert wait_for(lambda: forgotten(cluster, backend_id), 60)
        current = refreshed()  # not "the slurm backend no longer knows job …"
        assert current.state is JobState.RUNNING, current
        assert "slurmdbd" in current.reason and "cannot be reached" in current.reason
        assert "last known state (Running)" in current.reason
        assert store.get(record.id).state is JobState.RUNNING
        health = backend.health()
        assert health.ok and "slurmdbd) cannot be reached" in health.detail
        assert health.figures["accounting_reachable"] is False
        # a gateway restarted during the outage: the folder remembers it was running
        restarted = make_backend(cluster, work_dir)
        assert restarted.status([backend_id])[backend_id].state is JobState.RUNNING
        assert not (work_dir / "act-outage" / "final.json").exists()
    finally:
        cluster.accounting.start_daemon()
    # slurmctld sends what it queued; until the end arrives the job is still not final
    final = wait_for(lambda: (r := refreshed()).state.terminal and r, 90, 0.5)
    assert final, store.get(record.id)
    assert final.state is JobState.FAILED
    assert final.exit_code == 5 and final.reason == "exited with status 5"
    assert backend.health().figures["accounting_reachable"] is True
    assert wait_final(restarted, backend_id).exit_code == 5


def test_wall_time_exceeded_is_failed_with_reason_from_slurmdbd(cluster, overrunning):
    """Last: the job was submitted before the first test of the module."""
    folder, backend_id = overrunning
    backend = make_backend(cluster, folder)
    assert wait_for(lambda: forgotten(cluster, backend_id), 150, 1)
    status = wait_final(backend, backend_id)
    assert status.state is JobState.FAILED
    assert "wall time limit exceeded" in status.reason and "TIMEOUT" in status.reason
