"""Slurm answers as BES statuses, and JobSpecs as sbatch options (no cluster needed)."""

from __future__ import annotations

import pytest

from backends.contracts.interfaces import InvalidSpec
from backends.contracts.model import JobSpec, JobState
from backends.execution.slurm.backend import parse_squeue
from backends.execution.slurm.cli import expand_tasks, sacct_exit, to_status, wait_status
from backends.execution.slurm.job import MPI_PLUGINS, duration, sbatch_options, script


def test_wait_status_and_sacct_exit():
    assert wait_status(768) == (3, 0)
    assert wait_status(9) == (None, 9)
    assert sacct_exit("3:0") == (3, 0)
    assert sacct_exit("0:9") == (None, 9)


@pytest.mark.parametrize(
    ("state", "reason", "expected", "words"),
    [
        ("PENDING", "JobHeldUser", JobState.PENDING, "held"),
        ("PENDING", "Resources", JobState.PENDING, "free CPUs"),
        ("TIMEOUT", "TimeLimit", JobState.FAILED, "wall time limit exceeded"),
        ("OUT_OF_MEMORY", "", JobState.FAILED, "ran out of memory"),
        ("NODE_FAIL", "", JobState.FAILED, "node running it failed"),
        ("CANCELLED", "", JobState.CANCELLED, "cancelled"),
        ("COMPLETED", "", JobState.FINISHED, ""),
    ],
)
def test_states_have_readable_reasons(state, reason, expected, words):
    status = to_status(state, reason, 0, 0)
    assert status.state is expected
    assert words in status.reason


def test_suspended_is_running_with_substate():
    status = to_status("SUSPENDED", "", 0, 0)
    assert (status.state, status.substate) == (JobState.RUNNING, "Suspended")


def test_nonzero_exit_and_signal():
    assert to_status("FAILED", "NonZeroExitCode", 3, 0).reason == "exited with status 3"
    killed = to_status("FAILED", "", None, 9)
    assert killed.exit_code == 137 and "signal 9" in killed.reason


def test_array_records_expand_to_tasks():
    assert expand_tasks("0-3,7,9-13:2%4") == [0, 1, 2, 3, 7, 9, 11, 13]
    document = {
        "jobs": [
            {"job_id": 5, "array_job_id": 0, "job_state": "RUNNING", "exit_code": 0},
            {
                "job_id": 6,
                "array_job_id": 6,
                "array_task_string": "1-2",
                "job_state": "PENDING",
                "state_reason": "Priority",
                "exit_code": 0,
            },
            {
                "job_id": 7,
                "array_job_id": 6,
                "array_task_id": 0,
                "job_state": "COMPLETED",
                "exit_code": 0,
            },
        ]
    }
    answer = parse_squeue(document)
    assert set(answer) == {"5", "6_0", "6_1", "6_2"}
    assert answer["6_1"].state is JobState.PENDING and answer["6_0"].state is JobState.FINISHED


def test_sbatch_options_from_a_job_spec():
    job = JobSpec(
        "/bin/hostname",
        total_cpu_count=4,
        spmd_variation="OpenMPI",
        spmd_processes=4,
        total_resource_count=2,
        memory_limit=512 * 1024**2,
        wall_time_limit=90,
        exclusive=True,
    )
    options = sbatch_options(job, "batch", MPI_PLUGINS)
    for option in (
        "--partition=batch",
        "--nodes=2",
        "--ntasks=4",
        "--mem=512M",
        "--time=1:30",
        "--exclusive",
    ):
        assert option in options
    assert duration(3600) == "60:00"
    with pytest.raises(InvalidSpec, match="SPMD variation"):
        sbatch_options(JobSpec("/bin/true", spmd_variation="Bogus"), "", MPI_PLUGINS)


def test_script_quotes_everything():
    from pathlib import Path

    job = JobSpec("/bin/echo", ("a b", "$(rm -rf /)"), environment={"X": "it's"}, stdout="o")
    text = script(job, Path("/shared/act"), "/usr/bin/python3", MPI_PLUGINS, "srun")
    assert "'$(rm -rf /)'" in text and "'a b'" in text and "> o" in text
    with pytest.raises(InvalidSpec):
        script(JobSpec("/bin/true", environment={"A;B": "x"}), Path("/s"), "p", MPI_PLUGINS, "s")
