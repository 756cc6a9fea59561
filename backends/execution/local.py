"""Local processes: the embedded execution backend.

STAND-IN written by the BES-endpoint branch so its tests run real processes; the
execution helper's full implementation (setrlimit limits, mapped accounts, http/ftp
staging, recovery after restart) replaces this file at merge. What it does, honestly:
one folder per activity, the job started in its own session (process group) by a small
``sh`` wrapper that writes the exit code to a file, so any gateway process can read the
outcome; file:// stage-in before and stage-out after; SIGTERM then SIGKILL to terminate.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import signal
import subprocess
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from backends.health import writable_dir
from backends.interfaces import ExecutionBackend, InvalidState, NotSupported, UnknownResource
from backends.model import HealthReport, JobSpec, JobState, JobStatus, LocalAccount

# The wrapper outlives signals meant for the job (its traps reset to default in the job
# at exec), so it can always record the job's exit code; only SIGKILL takes it down.
WRAPPER = (
    "trap : HUP INT QUIT USR1 USR2 ALRM WINCH TERM; "
    '"$@"; code=$?; echo $code > .exit.tmp && mv .exit.tmp .exit'
)
GRACE_SECONDS = 5.0


def _file_path(url: str) -> Path:
    parsed = urlparse(url)
    if parsed.scheme != "file":
        raise NotSupported(f"staging URL {url!r}: only file:// is supported by this backend")
    return Path(unquote(parsed.path))


class LocalExecutionBackend(ExecutionBackend):
    name = "local"

    def __init__(self, context: Any) -> None:
        super().__init__(context)
        self._children: dict[str, subprocess.Popen] = {}
        self._lock = threading.Lock()

    @property
    def work_dir(self) -> Path:
        configured = getattr(self.context.options, "work_dir", "")
        return Path(configured) if configured else self.context.state_dir / "activities"

    def health(self) -> HealthReport:
        return writable_dir(self.work_dir, "activity folder")

    def resources(self) -> dict[str, Any]:
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        return {
            "cpu_count": os.cpu_count() or 1,
            "physical_memory": pages,
            "operating_system": platform.system(),
            "os_version": platform.release(),
            "architecture": platform.machine(),
        }

    def _dir(self, backend_id: str) -> Path:
        if not backend_id or "/" in backend_id or backend_id.startswith("."):
            raise UnknownResource(f"no local job {backend_id!r}")
        return self.work_dir / backend_id

    # -- lifecycle ---------------------------------------------------------------------
    def submit(self, activity_id: str, job: JobSpec, account: LocalAccount | None) -> str:
        folder = self._dir(activity_id)
        folder.mkdir(parents=True, exist_ok=False)
        for staging in job.stage_in:
            shutil.copyfile(_file_path(staging.source), folder / staging.filename)
        for staging in job.stage_out:
            _file_path(staging.target)  # refuse unsupported targets before starting
        (folder / ".job.json").write_text(
            json.dumps({"stage_out": [[s.filename, s.target] for s in job.stage_out]})
        )
        cwd = folder / job.working_directory if job.working_directory else folder
        with contextlib.ExitStack() as files:
            stdin = (
                files.enter_context(open(cwd / job.stdin, "rb"))
                if job.stdin
                else subprocess.DEVNULL
            )
            stdout = files.enter_context(open(cwd / (job.stdout or "stdout"), "wb"))
            stderr = files.enter_context(open(cwd / (job.stderr or "stderr"), "wb"))
            env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **job.environment}
            proc = subprocess.Popen(
                ["/bin/sh", "-c", WRAPPER, "sh", job.executable, *job.arguments],
                cwd=cwd,
                stdin=stdin,
                stdout=stdout,
                stderr=stderr,
                env=env,
                start_new_session=True,
            )
        (folder / ".pid").write_text(str(proc.pid))
        with self._lock:
            self._children[activity_id] = proc
        return activity_id

    def _stage_out(self, folder: Path) -> str:
        """Copy the outputs once; '' when done, else the reason it failed."""
        if (folder / ".staged").exists():
            return (folder / ".staged").read_text()
        reason = ""
        job = json.loads((folder / ".job.json").read_text())
        for filename, target in job["stage_out"]:
            try:
                destination = _file_path(target)
                destination.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(folder / filename, destination)
            except (OSError, NotSupported) as exc:
                reason = f"stage-out of {filename} to {target} failed: {exc}"
                break
        (folder / ".staged").write_text(reason)
        return reason

    def _one(self, backend_id: str) -> JobStatus | None:
        folder = self._dir(backend_id)
        if not folder.is_dir():
            return None
        with self._lock:
            child = self._children.get(backend_id)
        if child is not None and child.poll() is not None:
            with self._lock:
                self._children.pop(backend_id, None)
        if (folder / ".cancelled").exists():
            return JobStatus(JobState.CANCELLED, reason="terminated on request")
        exit_file = folder / ".exit"
        if exit_file.exists():
            code = int(exit_file.read_text().strip() or "-1")
            problem = self._stage_out(folder)
            if problem:
                return JobStatus(JobState.FAILED, exit_code=code, reason=problem)
            if code == 0:
                return JobStatus(JobState.FINISHED, exit_code=0)
            return JobStatus(JobState.FAILED, exit_code=code, reason=f"exited with code {code}")
        if self._alive(folder):
            substate = "Suspended" if (folder / ".suspended").exists() else ""
            return JobStatus(JobState.RUNNING, substate=substate)
        if exit_file.exists():  # finished between the two looks
            return self._one(backend_id)
        return JobStatus(JobState.FAILED, reason="the process ended without an exit status")

    def _alive(self, folder: Path) -> bool:
        try:
            pid = int((folder / ".pid").read_text())
        except (OSError, ValueError):
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def status(self, backend_ids: Sequence[str]) -> dict[str, JobStatus]:
        found: dict[str, JobStatus] = {}
        for backend_id in backend_ids:
            try:
                status = self._one(backend_id)
            except UnknownResource:
                status = None
            if status is not None:
                found[backend_id] = status
        return found

    def _running_group(self, backend_id: str) -> int:
        status = self._one(backend_id)
        if status is None:
            raise UnknownResource(f"no local job {backend_id!r}")
        if status.state.terminal:
            raise InvalidState(f"the job is already {status.state.value}")
        return int((self._dir(backend_id) / ".pid").read_text())

    def terminate(self, backend_id: str) -> None:
        pgid = self._running_group(backend_id)
        (self._dir(backend_id) / ".cancelled").write_text("")
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGCONT)
            os.killpg(pgid, signal.SIGTERM)

        def kill_if_still_there() -> None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, signal.SIGKILL)
            self._one(backend_id)  # reap our child

        timer = threading.Timer(GRACE_SECONDS, kill_if_still_there)
        timer.daemon = True
        timer.start()

    def suspend(self, backend_id: str) -> None:
        os.killpg(self._running_group(backend_id), signal.SIGSTOP)
        (self._dir(backend_id) / ".suspended").write_text("")

    def resume(self, backend_id: str) -> None:
        pgid = self._running_group(backend_id)
        if not (self._dir(backend_id) / ".suspended").exists():
            raise InvalidState("the job is not suspended")
        os.killpg(pgid, signal.SIGCONT)
        (self._dir(backend_id) / ".suspended").unlink()

    def signal(self, backend_id: str, signum: int) -> None:
        os.killpg(self._running_group(backend_id), signum)
