"""Micro-batching into Slurm on the real one-node cluster: concurrent launches become one
job array whose tasks are each activity's own job, controlled task by task, and found
again task by task after the gateway is killed right after sbatch."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from backends.contracts.model import JobSpec, JobState
from backends.services.activities import ActivityService
from backends.services.launcher import Launcher
from backends.store.activities import ActivityStore
from tests.integration.test_slurm_execution import make_backend, wait_state

pytestmark = pytest.mark.service


@pytest.fixture
def work_dir(slurm_cluster: Any) -> Path:
    folder = slurm_cluster.directory / f"batch-{time.monotonic_ns()}"
    folder.mkdir(mode=0o755)
    return folder


def slurm_jobs(cluster: Any, name: str) -> set[str]:
    """Slurm job ids (array job ids for arrays) that carry ``name``, queued or ended."""
    out = cluster.run("squeue", "-h", "-t", "all", "-o", "%F|%j").stdout.split()
    return {line.split("|")[0] for line in out if line.endswith("|" + name)}


def test_launches_arriving_together_are_one_array_of_their_own_jobs(
    slurm_cluster, work_dir, runtime
):
    backend = make_backend(slurm_cluster, work_dir)
    store = ActivityStore(runtime.db.engine)
    ids = [f"act-burst-{i}-{time.monotonic_ns()}" for i in range(6)]
    store.record(ids, backend=backend.name, owner="alice", vo="", jsdl="<x/>")
    # the first sbatch is held until the others have arrived (one request each)
    gate, real_sbatch = threading.Event(), backend._sbatch

    def sbatch(argv, user):
        gate.wait(10)
        return real_sbatch(argv, user)

    backend._sbatch = sbatch
    launcher = Launcher(ActivityService(store, backend), workers=2, batch=100, batch_window=0.5)
    job = [JobSpec("/bin/echo", (f"value={i}",), stdout="out.txt") for i in range(6)]
    launcher.start([(ids[0], job[0], None)])
    while not launcher._in_flight:
        time.sleep(0.01)
    for activity_id, spec in zip(ids[1:], job[1:], strict=True):
        launcher.start([(activity_id, spec, None)])
    gate.set()
    launcher.close()

    backend_ids = [store.get(i).backend_id for i in ids]
    assert launcher.batches == 2
    array = backend_ids[1].split("_")[0]
    assert backend_ids[1:] == [f"{array}_{task}" for task in range(5)]
    assert slurm_jobs(slurm_cluster, f"xg-{ids[1]}") == {array}  # ONE sbatch for five
    for i, backend_id in enumerate(backend_ids):
        assert wait_state(backend, backend_id, JobState.FINISHED, JobState.FAILED).state is (
            JobState.FINISHED
        )
        assert (work_dir / ids[i] / "work" / "out.txt").read_text() == f"value={i}\n"
    marker = json.loads((work_dir / ids[3] / "submit.json").read_text())
    assert marker == {"name": f"xg-{ids[1]}", "index": 2, "slurm_id": array}


def test_one_task_of_an_array_is_held_released_and_terminated_alone(
    slurm_cluster, work_dir, runtime
):
    backend = make_backend(slurm_cluster, work_dir)
    store = ActivityStore(runtime.db.engine)
    ids = [f"act-task-{i}-{time.monotonic_ns()}" for i in range(3)]
    store.record(ids, backend=backend.name, owner="alice", vo="", jsdl="<x/>")
    ActivityService(store, backend).hand_over_many(
        [(i, JobSpec("/bin/sleep", ("30",)), None) for i in ids]
    )
    first, second, third = (store.get(i).backend_id for i in ids)
    assert {b.split("_")[0] for b in (first, second, third)} == {first.split("_")[0]}
    backend.suspend(third)  # held while pending, suspended if it already runs
    status = backend.status([third])[third]
    assert status.reason.startswith("held") or status.substate == "Suspended", status
    backend.resume(third)
    ActivityService(store, backend).terminate(
        store.get(ids[1]), "alice"
    )  # what BES TerminateActivities does
    assert store.get(ids[1]).state is JobState.CANCELLED
    tasks = slurm_cluster.run("squeue", "-h", "-r", "-o", "%i|%T").stdout.split()
    assert not [t for t in tasks if t.startswith(second + "|") and "CANCELLED" not in t]
    backend.invalidate()
    others = backend.status([first, third])
    assert {s.state for s in others.values()} <= {JobState.PENDING, JobState.RUNNING}
    assert len(others) == 2
    for activity_id in (ids[0], ids[2]):
        ActivityService(store, backend).terminate(store.get(activity_id), "alice")
        assert store.get(activity_id).state is JobState.CANCELLED


def test_gateway_killed_right_after_an_array_sbatch_submits_no_task_twice(slurm_cluster, work_dir):
    """A real SIGKILL the moment sbatch answered for a batch of three; after the restart
    the activities are handed over again in other groupings (one alone, one beside a new
    activity): each is found as its own task of the array, and nothing is queued twice."""
    runuser = shutil.which("runuser") or "/usr/sbin/runuser"
    killer = work_dir / "runuser-then-die"
    killer.write_text(f'#!/bin/sh\n{runuser} "$@"\nkill -9 "$XG_VICTIM"\n')
    killer.chmod(0o755)
    program = textwrap.dedent(f"""\
        import os, sys
        sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r})
        os.environ["XG_VICTIM"] = str(os.getpid())
        from pathlib import Path
        from types import SimpleNamespace
        from backends.execution.slurm.backend import SlurmExecutionBackend
        from backends.contracts.interfaces import BackendContext
        from backends.contracts.model import JobSpec
        from backends.execution.slurm.settings import SlurmSettings
        slurm = SlurmSettings(
            work_dir={str(work_dir)!r}, slurm_conf={str(slurm_cluster.conf)!r},
            runuser={str(killer)!r},
        )
        options = SimpleNamespace(slurm=slurm, default_account="nobody")
        backend = SlurmExecutionBackend(BackendContext(None, Path({str(work_dir)!r}), options))
        jobs = [(f"act-k{{i}}", JobSpec("/bin/sleep", ("1",))) for i in range(3)]
        print(backend.submit_many(jobs, None))
        """)
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True)
    assert done.returncode == -9, done.stderr  # killed, never printed an id
    for i in range(3):
        marker = json.loads((work_dir / f"act-k{i}" / "submit.json").read_text())
        assert marker == {"name": "xg-act-k0", "index": i}  # submitted, not recorded
    (array,) = slurm_jobs(slurm_cluster, "xg-act-k0")

    backend = make_backend(slurm_cluster, work_dir)
    assert backend.submit("act-k1", JobSpec("/bin/sleep", ("1",)), None) == f"{array}_1"
    again = backend.submit_many(
        [("act-k2", JobSpec("/bin/sleep", ("1",))), ("act-new", JobSpec("/bin/sleep", ("1",)))],
        None,
    )
    assert again[0] == f"{array}_2" and "_" not in again[1]
    assert backend.submit("act-k0", JobSpec("/bin/sleep", ("1",)), None) == f"{array}_0"
    assert slurm_jobs(slurm_cluster, "xg-act-k0") == {array}
    assert slurm_jobs(slurm_cluster, "xg-act-new") == {again[1]}
    for backend_id in (f"{array}_0", f"{array}_1", f"{array}_2", again[1]):
        assert wait_state(backend, backend_id, JobState.FINISHED).state is JobState.FINISHED


def test_a_batch_partly_refused_by_sbatch_fails_only_the_refused_request(
    slurm_cluster, work_dir, runtime
):
    """Two requests in one batch with different resources (two sbatch calls): the first
    is queued, Slurm refuses the second. The first is not failed nor submitted again (its
    submit.json has its job), the second fails with Slurm's reason."""
    backend = make_backend(slurm_cluster, work_dir)
    store = ActivityStore(runtime.db.engine)
    ids = [f"act-part-{i}-{time.monotonic_ns()}" for i in range(3)]
    store.record(ids, backend=backend.name, owner="alice", vo="", jsdl="<x/>")
    gate, real_sbatch = threading.Event(), backend._sbatch

    def sbatch(argv, user):
        gate.wait(10)
        return real_sbatch(argv, user)

    backend._sbatch = sbatch
    launcher = Launcher(ActivityService(store, backend), workers=2, batch=100, batch_window=0.5)
    launcher.start([(ids[0], JobSpec("/bin/true"), None)])
    while not launcher._in_flight:
        time.sleep(0.01)
    launcher.start([(ids[1], JobSpec("/bin/true"), None)])
    launcher.start([(ids[2], JobSpec("/bin/true", individual_physical_memory=10**14), None)])
    gate.set()
    launcher.close()

    queued, refused = store.get(ids[1]), store.get(ids[2])
    assert queued.state is not JobState.FAILED and queued.backend_id
    assert slurm_jobs(slurm_cluster, f"xg-{ids[1]}") == {queued.backend_id}  # once
    assert refused.state is JobState.FAILED and not refused.backend_id, refused
    assert refused.reason.startswith("not started: ") and "not available" in refused.reason
    assert wait_state(backend, queued.backend_id, JobState.FINISHED).state is JobState.FINISHED


def test_a_sweep_partly_refused_keeps_the_queued_points(slurm_cluster, work_dir, runtime):
    """One request whose points need different resources (two sbatch calls), the second
    refused: the queued points keep their jobs (never recorded Failed while they run),
    the refused point fails with Slurm's reason."""
    backend = make_backend(slurm_cluster, work_dir)
    store = ActivityStore(runtime.db.engine)
    ids = [f"act-sweep-part-{i}-{time.monotonic_ns()}" for i in range(3)]
    store.record(ids, backend=backend.name, owner="alice", vo="", jsdl="<x/>")
    jobs = [JobSpec("/bin/true"), JobSpec("/bin/true"), JobSpec("/bin/true", memory_limit=10**14)]
    ActivityService(store, backend).hand_over_many(
        [(i, j, None) for i, j in zip(ids, jobs, strict=True)]
    )
    first, second, refused = (store.get(i) for i in ids)
    array = first.backend_id.split("_")[0]
    assert (first.backend_id, second.backend_id) == (f"{array}_0", f"{array}_1")
    assert slurm_jobs(slurm_cluster, f"xg-{ids[0]}") == {array}  # found, not resubmitted
    assert refused.state is JobState.FAILED and not refused.backend_id, refused
    assert "not available" in refused.reason
    for record in (first, second):
        assert wait_state(backend, record.backend_id, JobState.FINISHED).state is (
            JobState.FINISHED
        )
