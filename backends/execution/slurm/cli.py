"""The Slurm command-line tools, and what their answers mean in BES terms.

The CLI (not slurmrestd) because it is on every Slurm site, needs no token set-up, and
authenticates the caller through munge: ``runuser -u <account> -- sbatch`` submits as
the mapped account with nothing more to configure. Every call has a timeout; a controller
that cannot be reached becomes :class:`BackendUnavailable` with a message that says so.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from backends.contracts.interfaces import BackendError, BackendUnavailable
from backends.contracts.model import JobState, JobStatus

# stderr of a client that could not reach slurmctld
UNREACHABLE = re.compile(
    r"Unable to contact slurm controller|Socket timed out|Connection refused|"
    r"Zero Bytes were transmitted|slurm_load_jobs error|Slurm backup controller in standby|"
    r"Unable to establish controller",
    re.IGNORECASE,
)
UNKNOWN_JOB = re.compile(r"Invalid job id|does not exist", re.IGNORECASE)

# Pending reasons (squeue %r / state_reason) a person can act on.
PENDING_REASONS = {
    "None": "",
    "Priority": "queued behind jobs of higher priority",
    "Resources": "waiting for free CPUs or nodes",
    "JobHeldUser": "held (release it to let it run)",
    "JobHeldAdmin": "held by the cluster administrator",
    "BeginTime": "waiting for its start time",
    "Dependency": "waiting for the jobs it depends on",
    "PartitionDown": "the partition is down",
    "PartitionInactive": "the partition is inactive",
    "PartitionNodeLimit": "asks for more nodes than the partition allows",
    "PartitionTimeLimit": "asks for more wall time than the partition allows",
    "ReqNodeNotAvail": "the nodes it needs are not available",
    "NodeDown": "a node it needs is down",
    "BadConstraints": "its resource request cannot be met on this cluster",
    "Reservation": "waiting for its reservation",
    "launch failed requeued held": "its launch failed; requeued and held",
}

FAILED_STATES = {
    "TIMEOUT": "wall time limit exceeded (Slurm TIMEOUT)",
    "OUT_OF_MEMORY": "ran out of memory (Slurm OUT_OF_MEMORY): ask for more memory",
    "NODE_FAIL": "the node running it failed (Slurm NODE_FAIL)",
    "BOOT_FAIL": "its node failed to boot (Slurm BOOT_FAIL)",
    "DEADLINE": "missed its deadline (Slurm DEADLINE)",
    "PREEMPTED": "preempted by a job of higher priority (Slurm PREEMPTED)",
}
RUNNING_STATES = {"RUNNING", "CONFIGURING", "COMPLETING", "STAGE_OUT", "SIGNALING", "RESIZING"}
PENDING_STATES = {"PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "SPECIAL_EXIT"}


def wait_status(value: int) -> tuple[int | None, int]:
    """(exit code, signal) of squeue's raw wait status."""
    if value & 0x7F:
        return None, value & 0x7F
    return (value >> 8) & 0xFF, 0


def sacct_exit(value: str) -> tuple[int | None, int]:
    """(exit code, signal) of sacct's ``code:signal``."""
    code, _, sig = value.partition(":")
    try:
        signum = int(sig or 0)
        return (None if signum else int(code or 0)), signum
    except ValueError:
        return None, 0


def _stamp(value: Any) -> datetime | None:
    if isinstance(value, (int, float)) and value > 0:
        return datetime.fromtimestamp(value, UTC)
    if isinstance(value, str) and value[:1].isdigit():
        try:
            return datetime.fromisoformat(value).astimezone(UTC)
        except ValueError:
            return None
    return None


def to_status(
    state: str,
    reason: str,
    code: int | None,
    signum: int,
    started: Any = None,
    ended: Any = None,
) -> JobStatus:
    """A Slurm job state (with its reason and exit) as a BES activity status."""
    state = state.split()[0].rstrip("+") if state else "PENDING"
    times = {"started_at": _stamp(started), "finished_at": _stamp(ended)}
    if state in PENDING_STATES:
        text = PENDING_REASONS.get(reason, reason)
        return JobStatus(JobState.PENDING, reason=text)
    if state in RUNNING_STATES:
        return JobStatus(JobState.RUNNING, started_at=times["started_at"])
    if state == "SUSPENDED":
        return JobStatus(JobState.RUNNING, substate="Suspended", started_at=times["started_at"])
    exit_code = code if code is not None else (128 + signum if signum else None)
    if state == "COMPLETED":
        return JobStatus(JobState.FINISHED, exit_code=exit_code, **times)
    if state == "CANCELLED":
        return JobStatus(JobState.CANCELLED, exit_code=exit_code, reason="cancelled", **times)
    if state in FAILED_STATES:
        return JobStatus(JobState.FAILED, exit_code=exit_code, reason=FAILED_STATES[state], **times)
    if signum:
        why = f"killed by signal {signum}"
    elif code:
        why = f"exited with status {code}"
    else:
        why = f"Slurm reports {state}" + (f" ({reason})" if reason and reason != "None" else "")
    return JobStatus(JobState.FAILED, exit_code=exit_code, reason=why, **times)


def expand_tasks(spec: str) -> list[int]:
    """Array task ids of ``0-3,7,9-11:2%4`` (squeue's array_task_string)."""
    ids: list[int] = []
    for part in spec.split("%")[0].split(","):
        if not part:
            continue
        rng, _, step = part.partition(":")
        first, _, last = rng.partition("-")
        if not first.isdigit():
            continue
        ids.extend(range(int(first), int(last or first) + 1, int(step or 1)))
    return ids


class SlurmCLI:
    """Runs the Slurm client commands configured for this gateway."""

    def __init__(self, paths: dict[str, str], env: dict[str, str], timeout: float) -> None:
        self.paths = paths
        self.env = {**os.environ, **env}
        self.timeout = timeout

    def run(
        self, tool: str, args: Iterable[str], *, as_user: str = "", input: str | None = None
    ) -> str:
        argv = [self.paths.get(tool) or tool, *args]
        if as_user:
            argv = [self.paths.get("runuser") or "runuser", "-u", as_user, "--", *argv]
        try:
            done = subprocess.run(
                argv,
                env=self.env,
                input=input,
                capture_output=True,
                text=True,
                timeout=self.timeout,
                check=False,
            )
        except FileNotFoundError as exc:
            raise BackendUnavailable(
                f"the Slurm command {argv[0]} is missing on the gateway host: install "
                "slurm-client or set execution.slurm paths"
            ) from exc
        except subprocess.TimeoutExpired as exc:
            raise BackendUnavailable(
                f"{tool} did not answer within {self.timeout:g} s: is slurmctld running?"
            ) from exc
        if done.returncode != 0:
            message = (done.stderr or done.stdout).strip().splitlines()
            text = "; ".join(message[-3:]) or f"exit status {done.returncode}"
            if UNREACHABLE.search(done.stderr):
                raise BackendUnavailable(f"the Slurm controller cannot be reached: {text}")
            raise SlurmCommandError(tool, text)
        return done.stdout


class SlurmCommandError(BackendError):
    def __init__(self, tool: str, text: str) -> None:
        super().__init__(f"{tool} refused: {text}")
        self.tool = tool
        self.text = text


def job_ids_arg(ids: Sequence[str]) -> str:
    return ",".join(ids)
