"""The Slurm execution backend against a real one-node cluster (tests/slurm_cluster.py)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from backends.contracts.interfaces import BackendContext, BackendUnavailable, InvalidState
from backends.contracts.model import JobSpec, JobState
from backends.execution.slurm.backend import SlurmExecutionBackend
from backends.execution.slurm.settings import SlurmSettings
from tests.slurm_cluster import NODE_CPUS, wait_for

pytestmark = pytest.mark.service


def make_backend(cluster: Any, work_dir: Path, **options: Any) -> SlurmExecutionBackend:
    paths = {name: cluster.binaries.get(name, "") for name in ("sbatch", "squeue", "sacct")}
    slurm = SlurmSettings(
        work_dir=str(work_dir),
        slurm_conf=str(cluster.conf),
        poll_interval_seconds=options.pop("poll_interval_seconds", 0.2),
        **{k: v for k, v in paths.items() if v},
        **options,
    )
    execution = SimpleNamespace(slurm=slurm, default_account="nobody")
    return SlurmExecutionBackend(BackendContext(None, work_dir.parent, execution))


@pytest.fixture(scope="module")
def overrunning_job(slurm_cluster: Any) -> tuple[SlurmExecutionBackend, str]:
    """A job that outlives its wall time, submitted when the module starts: Slurm limits
    are whole minutes, checked every 30 s, so the check runs last, after the others."""
    folder = slurm_cluster.directory / "work-timeout"
    folder.mkdir(mode=0o755)
    backend = make_backend(slurm_cluster, folder)
    job = JobSpec("/bin/sleep", ("300",), wall_time_limit=1)
    return backend, backend.submit("act-timeout", job, None)


@pytest.fixture(autouse=True)
def _start_overrunning_job_first(overrunning_job: Any) -> None:
    pass


@pytest.fixture
def work_dir(slurm_cluster: Any) -> Path:
    folder = slurm_cluster.directory / f"work-{time.monotonic_ns()}"
    folder.mkdir(mode=0o755)
    return folder


@pytest.fixture
def backend(slurm_cluster: Any, work_dir: Path) -> SlurmExecutionBackend:
    return make_backend(slurm_cluster, work_dir)


def wait_state(backend: SlurmExecutionBackend, backend_id: str, *states: JobState, timeout=60.0):
    def reached():
        status = backend.status([backend_id]).get(backend_id)
        return status if status is not None and status.state in states else None

    status = wait_for(reached, timeout)
    assert status is not None, f"{backend_id}: {backend.status([backend_id])}"
    return status


def test_plain_job_writes_stdout_as_the_mapped_account(backend, work_dir):
    job = JobSpec(
        "/bin/sh",
        ("-c", 'echo "hello $GREETING from $(id -un)"; echo oops >&2'),
        environment={"GREETING": "grid"},
        stdout="out.txt",
        stderr="err.txt",
    )
    backend_id = backend.submit("act-plain", job, None)
    status = wait_state(backend, backend_id, JobState.FINISHED, JobState.FAILED)
    assert status.state is JobState.FINISHED, status
    assert status.exit_code == 0
    work = work_dir / "act-plain" / "work"
    assert (work / "out.txt").read_text() == "hello grid from nobody\n"
    assert (work / "err.txt").read_text() == "oops\n"
    submitted = json.loads((work_dir / "act-plain" / "submit.json").read_text())
    assert submitted["name"] == "xg-act-plain" and submitted["slurm_id"] == backend_id


def test_exit_status_becomes_failed_with_reason(backend):
    backend_id = backend.submit("act-exit", JobSpec("/bin/sh", ("-c", "exit 3")), None)
    status = wait_state(backend, backend_id, JobState.FAILED, JobState.FINISHED)
    assert status.state is JobState.FAILED
    assert status.exit_code == 3 and status.reason == "exited with status 3"


def test_spmd_job_runs_through_srun(backend, work_dir):
    job = JobSpec(
        "/bin/sh",
        ("-c", "echo rank $SLURM_PROCID of $SLURM_NTASKS"),
        stdout="ranks.txt",
        spmd_variation="MPICH2",
        spmd_processes=2,
    )
    backend_id = backend.submit("act-spmd", job, None)
    status = wait_state(backend, backend_id, JobState.FINISHED, JobState.FAILED)
    assert status.state is JobState.FINISHED, status
    lines = sorted((work_dir / "act-spmd" / "work" / "ranks.txt").read_text().splitlines())
    assert lines == ["rank 0 of 2", "rank 1 of 2"]


def test_sweep_is_one_job_array(backend, work_dir):
    jobs = [
        (f"act-sweep-{i}", JobSpec("/bin/echo", (f"value={i}",), stdout="out.txt"))
        for i in range(3)
    ]
    ids = backend.submit_many(jobs, None)
    array = {i.split("_")[0] for i in ids}
    assert len(array) == 1 and [i.split("_")[1] for i in ids] == ["0", "1", "2"]
    for backend_id in ids:
        assert wait_state(backend, backend_id, JobState.FINISHED, JobState.FAILED).state is (
            JobState.FINISHED
        )
    for i in range(3):
        assert (work_dir / f"act-sweep-{i}" / "work" / "out.txt").read_text() == f"value={i}\n"


def test_held_job_released_and_terminate(backend):
    backend_id = backend.submit("act-hold", JobSpec("/bin/sleep", ("30",)), None)
    backend.suspend(backend_id)  # still pending on a busy scheduler, or just started
    status = backend.status([backend_id])[backend_id]
    if status.state is JobState.PENDING:
        assert "held" in status.reason
        time.sleep(0.5)
        backend.invalidate()
        assert backend.status([backend_id])[backend_id].state is JobState.PENDING
        backend.resume(backend_id)
        wait_state(backend, backend_id, JobState.RUNNING)
    else:
        assert status.substate == "Suspended"
        backend.resume(backend_id)
    backend.suspend(backend_id)
    assert backend.status([backend_id])[backend_id].substate == "Suspended"
    backend.resume(backend_id)
    backend.terminate(backend_id)
    status = wait_state(backend, backend_id, JobState.CANCELLED, JobState.FAILED)
    assert status.state is JobState.CANCELLED
    with pytest.raises(InvalidState):
        backend.terminate(backend_id)


def test_restart_finds_jobs_and_never_submits_twice(slurm_cluster, work_dir, backend):
    backend_id = backend.submit("act-restart", JobSpec("/bin/sleep", ("2",)), None)
    again = make_backend(slurm_cluster, work_dir)  # a new gateway process, same state
    assert again.status([backend_id])[backend_id].state in (JobState.PENDING, JobState.RUNNING)
    assert again.submit("act-restart", JobSpec("/bin/sleep", ("2",)), None) == backend_id
    # a crash right after sbatch: submit.json without the Slurm id, no link
    marker = work_dir / "act-restart" / "submit.json"
    data = json.loads(marker.read_text())
    marker.write_text(json.dumps({"name": data["name"], "index": None}))
    os.unlink(work_dir / "jobs" / backend_id)
    third = make_backend(slurm_cluster, work_dir)
    assert third.submit("act-restart", JobSpec("/bin/sleep", ("2",)), None) == backend_id
    queued = slurm_cluster.run("squeue", "-h", "-n", "xg-act-restart", "-o", "%i").stdout.split()
    done = slurm_cluster.run("sacct", "-c", "-X", "-n", "-P", "-o", "JobID,JobName").stdout
    finished = [
        line.split("|")[0] for line in done.splitlines() if line.endswith("|xg-act-restart")
    ]
    assert set(queued) | set(finished) == {backend_id}
    assert wait_state(third, backend_id, JobState.FINISHED).exit_code == 0
    # and after squeue forgot it, the final state is read from the folder
    fourth = make_backend(slurm_cluster, work_dir)
    assert fourth.status([backend_id])[backend_id].state is JobState.FINISHED
    assert fourth.polls == 0


def test_one_poll_answers_many_jobs(backend):
    ids = backend.submit_many([(f"act-many-{i}", JobSpec("/bin/true")) for i in range(20)], None)
    ids += [backend.submit(f"act-single-{i}", JobSpec("/bin/true"), None) for i in range(3)]
    backend.invalidate()
    before = backend.polls
    answer = backend.status(ids)
    assert set(answer) == set(ids)
    assert backend.polls == before + 1


def test_resources_from_sinfo(backend):
    resources = backend.resources()
    assert resources["cpu_count"] == NODE_CPUS
    assert resources["partitions"] == ["debug", "grid"]
    assert resources["operating_system"] == "Linux"
    assert resources["architecture"]
    assert backend.health().ok


def test_controller_down_refuses_then_recovers(slurm_cluster, work_dir):
    backend = make_backend(
        slurm_cluster,
        work_dir,
        submit_retries=1,
        submit_backoff_seconds=0.1,
        command_timeout_seconds=20,
    )
    slurm_cluster.stop_controller()
    try:
        started = time.monotonic()
        with pytest.raises(BackendUnavailable, match="controller"):
            backend.submit("act-outage", JobSpec("/bin/true"), None)
        assert time.monotonic() - started < 60
        assert not backend.health().ok
    finally:
        slurm_cluster.start_controller()
    # the refused activity was never queued; a retry of the same activity now works once
    backend_id = backend.submit("act-outage", JobSpec("/bin/true"), None)
    status = wait_state(backend, backend_id, JobState.FINISHED, timeout=120)
    assert status.state is JobState.FINISHED


def test_wall_time_exceeded_is_failed_with_reason(overrunning_job):
    """Last in the module: the job was submitted before the first test."""
    backend, backend_id = overrunning_job
    status = wait_state(backend, backend_id, JobState.FAILED, JobState.FINISHED, timeout=150)
    assert status.state is JobState.FAILED
    assert "wall time limit exceeded" in status.reason and "TIMEOUT" in status.reason


def test_submission_retried_until_the_controller_is_back(slurm_cluster, work_dir):
    """Held and retried with backoff: the controller comes back during the retries, the
    activity is submitted exactly once."""
    import threading

    backend = make_backend(
        slurm_cluster,
        work_dir,
        submit_retries=4,
        submit_backoff_seconds=0.5,
        command_timeout_seconds=10,
    )
    slurm_cluster.stop_controller()
    result: dict[str, Any] = {}

    def submit() -> None:
        try:
            result["id"] = backend.submit("act-retried", JobSpec("/bin/true"), None)
        except Exception as exc:  # reported below
            result["error"] = exc

    worker = threading.Thread(target=submit)
    try:
        worker.start()
        time.sleep(2)
    finally:
        slurm_cluster.start_controller()
    started = time.monotonic()
    worker.join(120)
    print(f"submitted {time.monotonic() - started:.1f} s after the controller was back")
    assert "error" not in result, result
    backend_id = result["id"]
    assert wait_state(backend, backend_id, JobState.FINISHED).state is JobState.FINISHED
    names = slurm_cluster.run("squeue", "-h", "-t", "all", "-o", "%j").stdout.split()
    assert names.count("xg-act-retried") == 1


def test_gateway_killed_right_after_sbatch_does_not_submit_twice(slurm_cluster, work_dir):
    """A real SIGKILL of the submitting process the moment sbatch has answered (before
    the Slurm id is recorded anywhere); a new process submits the same activity again
    and gets the job that exists, and Slurm holds exactly one."""
    import shutil
    import subprocess
    import sys
    import textwrap

    # the gateway (root) submits through runuser: this one kills it once sbatch answered
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
        print(backend.submit("act-killed", JobSpec("/bin/sleep", ("1",)), None))
        """)
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True)
    assert done.returncode == -9, done.stderr  # killed, never printed an id
    marker = json.loads((work_dir / "act-killed" / "submit.json").read_text())
    assert "slurm_id" not in marker  # the crash window: submitted, not recorded

    backend = make_backend(slurm_cluster, work_dir)
    backend_id = backend.submit("act-killed", JobSpec("/bin/sleep", ("1",)), None)
    names = slurm_cluster.run("squeue", "-h", "-t", "all", "-o", "%i|%j").stdout.split()
    assert [n.split("|")[0] for n in names if n.endswith("|xg-act-killed")] == [backend_id]
    assert wait_state(backend, backend_id, JobState.FINISHED).state is JobState.FINISHED
