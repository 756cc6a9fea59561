"""``[execution]`` as the local plugin reads it: the shared keys and its own."""

from __future__ import annotations

from pydantic import Field

from backends.execution.settings import ExecutionSettings


class LocalExecutionSettings(ExecutionSettings):
    """The local execution backend (the embedded default)."""

    work_dir: str = ""  # default: <state_dir>/activities
    # Jobs executing at once; more wait as Pending. 0: no limit.
    max_running: int = Field(64, ge=0, le=100_000)
    # terminate: SIGTERM to the job's process group, SIGKILL this much later.
    terminate_grace_seconds: float = Field(10, ge=0, le=3600)
    # The interpreter that runs activity supervisors; default: the gateway's own.
    python: str = ""
