"""Local processes: the embedded execution backend.

Every activity is a folder ``<work_dir>/<activity id>/`` and, once a run slot is free, a
detached supervisor process (``supervisor.py``) that runs it to the end and records its state
in files there (see the supervisor's docstring for the layout). Queued activities cost a file,
not a process. This class only writes the job file, queues and starts supervisors, reads
their state files and signals them; it holds no state of its own that matters, so a new
gateway process over the same ``work_dir`` sees exactly what the old one saw. A
supervisor that vanished without a final state (host reboot, SIGKILL) is found out by its
pid, process start time and boot id; what is left of its job is killed and the activity
is marked Failed with that reason. No activity is lost silently.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import os
import platform
import pwd
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from backends.contracts.health import writable_dir
from backends.contracts.interfaces import (
    BackendContext,
    BackendError,
    ExecutionBackend,
    InvalidState,
    NotSupported,
    UnknownResource,
)
from backends.contracts.model import (
    HealthReport,
    JobSpec,
    JobState,
    JobStatus,
    LocalAccount,
    to_plain,
)
from backends.contracts.platform import runs
from backends.execution.admission import admit_staging
from backends.execution.local import supervisor
from backends.execution.local.settings import LocalExecutionSettings

ACTIVITY_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
LOST = "supervisor lost (gateway host restarted?)"
# A supervisor gets this long to write its first state before a missing one counts as lost.
LAUNCH_GRACE_SECONDS = 60
STATUS_DISPATCH_INTERVAL = 1.0  # seconds
TERMINAL_CACHE_SIZE = 100_000


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


class LocalExecutionBackend(ExecutionBackend):
    name = "local"
    settings = LocalExecutionSettings

    def __init__(self, context: BackendContext[LocalExecutionSettings]) -> None:
        super().__init__(context)
        self.options = options = LocalExecutionSettings.of(context.settings)
        self.grace = float(options.terminate_grace_seconds)
        self.max_running = options.max_running
        self.default_account = options.default_account
        self.staging_limits = options.staging_limits()
        self.python = options.python or sys.executable
        self._terminal: dict[str, JobStatus] = {}  # final states never change: cache them
        self._children: list[subprocess.Popen] = []
        self._lock = threading.Lock()  # front ends call from many threads
        self._work_dir_ready = False
        self._dispatched_at = 0.0

    @property
    def work_dir(self) -> Path:
        configured = self.options.work_dir
        return Path(configured) if configured else self.context.state_dir / "activities"

    def folder(self, backend_id: str) -> Path:
        if not ACTIVITY_ID.match(backend_id or ""):
            raise UnknownResource(f"{backend_id!r} is not an activity id of this backend")
        return self.work_dir / backend_id

    # -- health and resources --------------------------------------------------------------
    def health(self) -> HealthReport:
        report = writable_dir(self.work_dir, "activity folder")
        if report.ok and not os.access(self.python, os.X_OK):
            return HealthReport(False, f"the supervisor interpreter {self.python} is missing")
        if report.ok and os.geteuid() == 0:
            closed = self.closed_parent()
            if closed is not None:  # jobs still run (they start inside), so only a warning
                detail = (
                    f"{report.detail}; warning: {closed} is not searchable by other users, "
                    "so jobs of mapped accounts cannot use the absolute path of their folder"
                )
                return HealthReport(True, detail, report.figures)
        return report

    def closed_parent(self) -> Path | None:
        """A folder above work_dir that mapped accounts cannot pass through, if any."""
        for folder in self.work_dir.resolve().parents:
            if not folder.stat().st_mode & 0o001:
                return folder
        return None

    def resources(self) -> dict[str, Any]:
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        counts = {state: 0 for state in JobState}
        for status in self.status(self.activity_ids()).values():
            counts[status.state] += 1
        return {
            "cpu_count": os.cpu_count() or 1,
            "physical_memory": pages,
            "operating_system": platform.system(),
            "os_version": platform.release(),
            "architecture": platform.machine(),
            "running": counts[JobState.RUNNING],
            "pending": counts[JobState.PENDING],
            "max_running": self.max_running,
        }

    def activity_ids(self) -> list[str]:
        try:
            with os.scandir(self.work_dir) as entries:
                return [e.name for e in entries if e.is_dir() and ACTIVITY_ID.match(e.name)]
        except FileNotFoundError:
            return []

    # -- submit ----------------------------------------------------------------------------
    def account_for_job(self, account: LocalAccount | None) -> LocalAccount | None:
        """Who the job runs as. A root gateway never runs a job as root by default."""
        if os.geteuid() != 0:
            if account is not None and account.uid != os.geteuid():
                raise BackendError(
                    f"the gateway runs as uid {os.geteuid()}, not root, so it cannot run jobs "
                    f"as account {account.username!r} (uid {account.uid}); run the gateway "
                    "as root or map users to the gateway's own account"
                )
            return None
        if account is None:
            if not self.default_account:
                raise BackendError(
                    "no local account is mapped for this user and execution.default_account "
                    "is empty; the gateway runs as root and will not run jobs as root"
                )
            try:
                entry = pwd.getpwnam(self.default_account)
            except KeyError as exc:
                raise BackendError(
                    f"execution.default_account {self.default_account!r} does not exist here"
                ) from exc
            account = LocalAccount(entry.pw_name, entry.pw_uid, entry.pw_gid, entry.pw_dir)
        if account.uid == 0 or account.gid == 0:
            raise BackendError(
                f"account {account.username!r} is root (uid/gid 0); jobs never run as root"
            )
        return account

    def admit(self, job: JobSpec) -> None:
        """No queue hint (one host has none), and no staging URL the supervisor would
        refuse at run time."""
        super().admit(job)
        admit_staging(job, self.options.file_staging_roots)

    def check(self, job: JobSpec) -> None:
        """Refuse at once what this host can never run (rather than fail later).

        Fields the JSDL front end may add to JobSpec are read with getattr, so the
        backend works with the spec of any version."""
        if job.spmd_variation or (job.spmd_processes or 1) > 1:
            raise NotSupported(
                "the local backend runs no SPMD (MPI) jobs; submit them to a cluster backend"
            )
        if job.exclusive and self.max_running <= 0:
            raise NotSupported(
                "ExclusiveExecution needs run slots: set execution.max_running above 0"
            )
        hosts_asked = getattr(job, "total_resource_count", None)
        if hosts_asked and hosts_asked > 1:
            raise BackendError(f"the job asks for {hosts_asked} hosts; this backend is one host")
        cpus = os.cpu_count() or 1
        for field, bounds in (
            ("total_cpu_count", "total_cpu_count_bounds"),
            ("individual_cpu_count", "individual_cpu_count_bounds"),
        ):
            asked = getattr(job, field, None)
            allowed = getattr(job, bounds, None)
            if asked and asked > cpus and not (allowed is not None and allowed.allows(cpus)):
                raise BackendError(f"the job asks for {asked:g} CPUs; this host has {cpus}")
        memory = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        for field in ("total_physical_memory", "individual_physical_memory"):
            asked = getattr(job, field, None)
            if asked and asked > memory:
                raise BackendError(
                    f"the job asks for {asked:g} bytes of memory; this host has {memory}"
                )
        hosts = {h.lower() for h in job.candidate_hosts}
        here = {platform.node().lower(), platform.node().split(".")[0].lower(), "localhost"}
        if hosts and not hosts & here:
            raise BackendError(
                f"the job may only run on {', '.join(sorted(hosts))}; this is {platform.node()}"
            )
        arch = getattr(job, "cpu_architecture", "") or getattr(job, "architecture", "") or ""
        if arch and not runs(arch, platform.machine()):
            raise BackendError(
                f"the job needs CPU architecture {arch}; this host is {platform.machine()}"
            )
        wanted_os = getattr(job, "operating_system", "") or ""
        if wanted_os and wanted_os.lower() not in (platform.system().lower(), "other"):
            raise BackendError(
                f"the job needs operating system {wanted_os}; this host runs {platform.system()}"
            )
        names = [
            ("input file", job.stdin),
            ("output file", job.stdout),
            ("error file", job.stderr),
            ("working directory", job.working_directory),
        ]
        names += [("staged file", s.filename) for s in (*job.stage_in, *job.stage_out)]
        for what, name in names:
            if not name:
                continue
            try:
                supervisor.safe_name(name)
            except ValueError:
                raise BackendError(
                    f"{what} {name!r} is not inside the job's own folder: this backend runs "
                    "every job in a folder of its own, so names must be relative to it "
                    "and must not contain '..'"
                ) from None

    def submit(self, activity_id: str, job: JobSpec, account: LocalAccount | None) -> str:
        """Idempotent per activity id: the folder IS the activity. Submitting again (a
        hand-over repeated after the gateway died between this call and the write of the
        backend id) finds it and completes only what the first call did not get to,
        under a lock on the folder, so a job is never queued or started twice."""
        folder = self.folder(activity_id)
        self.check(job)
        account = self.account_for_job(account)
        if not self._work_dir_ready:
            self.work_dir.mkdir(parents=True, exist_ok=True)
            os.chmod(self.work_dir, 0o711)  # noqa: S103 - accounts must reach their work/ folders
            self._work_dir_ready = True
        with contextlib.suppress(FileExistsError):
            folder.mkdir(mode=0o711)
        lock = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
            recorded = supervisor.read_json(folder / supervisor.JOB_FILE)
            if recorded is None:
                entry = self._write_job(folder, activity_id, job, account)
            elif self._started(folder, recorded):
                return activity_id  # found: submitted before, never twice
            else:
                entry = recorded.get("queue_entry")
            return self._start(folder, activity_id, entry)
        finally:
            os.close(lock)

    def _write_job(
        self, folder: Path, activity_id: str, job: JobSpec, account: LocalAccount | None
    ) -> str | None:
        """The job's work/ folder and job.json; returns its queue entry (None: no slots)."""
        work = folder / supervisor.WORK
        with contextlib.suppress(FileExistsError):
            work.mkdir(mode=0o700)
        if account is not None:
            os.chown(work, account.uid, account.gid)
        entry = supervisor.queue_entry(activity_id) if self.max_running > 0 else None
        supervisor.write_json(
            folder / supervisor.JOB_FILE,
            {
                "queue_entry": entry,
                "spec": to_plain(job),
                "account": dataclasses.asdict(account) if account else None,
                "max_running": self.max_running,
                "terminate_grace_seconds": self.grace,
                "staging_limits": self.staging_limits,
                "python": self.python,
                "submitted_at": supervisor.now(),
            },
            # No fsync: after a host crash every unfinished activity is reported lost
            # anyway; no state.json yet means Pending.
            durable=False,
        )
        return entry

    def _started(self, folder: Path, recorded: dict[str, Any]) -> bool:
        """Whether an earlier submit got as far as queueing or starting the job."""
        entry = recorded.get("queue_entry")
        if entry and (self.work_dir / supervisor.QUEUE / entry).exists():
            return True
        markers = (supervisor.DISPATCHED_FILE, supervisor.LAUNCH_FILE, supervisor.STATE_FILE)
        return any((folder / name).exists() for name in markers)

    def _start(self, folder: Path, activity_id: str, entry: str | None) -> str:
        """Queue the job for a run slot, or (no slots) start its supervisor at once."""
        self.reap()
        if entry is not None:
            supervisor.enqueue(self.work_dir, entry)
            self.dispatch()
            return activity_id
        # the marker first: a crash between it and the launch is a lost supervisor
        # (reported Failed), never a second start
        (folder / supervisor.DISPATCHED_FILE).touch()
        try:
            proc = supervisor.launch(folder, self.python)
            with self._lock:
                self._children.append(proc)
        except OSError as exc:
            supervisor.record_failure(folder, f"cannot start the activity supervisor: {exc}")
            raise BackendError(f"cannot start the activity supervisor: {exc}") from exc
        return activity_id

    def dispatch(self) -> None:
        """Start queued activities while run slots are free."""
        self._dispatched_at = time.monotonic()
        if self.max_running > 0:
            started = supervisor.dispatch(self.work_dir, self.max_running, self.python)
            with self._lock:
                self._children += started

    def reap(self) -> None:
        """Collect our exited supervisors (they are our children until we exit)."""
        with self._lock:
            self._children = [p for p in self._children if p.poll() is None]

    # -- status ----------------------------------------------------------------------------
    def status(self, backend_ids: Sequence[str]) -> dict[str, JobStatus]:
        """One pass over the state files. Ids this backend does not know are left out of
        the answer (the caller answers "unknown activity" for each of them)."""
        self.reap()
        if time.monotonic() - self._dispatched_at > STATUS_DISPATCH_INTERVAL:
            # Supervisors hand on their slot when they end; this is for the slot of one
            # that vanished (freed by the kernel), so it need not happen on every call.
            self.dispatch()
        boot = supervisor.boot_id()
        answer: dict[str, JobStatus] = {}
        # for many ids, one listing of the queue beats looking for each one's entry
        queue = supervisor.queued_ids(self.work_dir) if len(backend_ids) > 8 else None

        for backend_id in backend_ids:
            cached = self._terminal.get(backend_id)
            if cached is not None:
                answer[backend_id] = cached
                continue
            try:
                status = self._status(self.folder(backend_id), boot, queue)
            except UnknownResource:
                continue
            if status.state.terminal:
                if len(self._terminal) >= TERMINAL_CACHE_SIZE:
                    self._terminal.clear()  # simple bound: re-reading a file is cheap
                self._terminal[backend_id] = status
            answer[backend_id] = status
        return answer

    def _state(self, folder: Path, boot: str, queue: set[str] | None = None) -> dict[str, Any]:
        """The state record, after making sure a vanished supervisor is accounted for."""
        state = supervisor.read_json(folder / supervisor.STATE_FILE)
        if state is None and queue is not None and folder.name in queue:
            return {"state": supervisor.PENDING}  # waiting for a run slot
        if state is None:
            if not folder.is_dir():
                raise UnknownResource(f"there is no activity {folder.name}")
            state = {"state": supervisor.PENDING}
        if state.get("state") in supervisor.TERMINAL:
            return state
        launch = state.get("supervisor") or supervisor.read_json(folder / supervisor.LAUNCH_FILE)
        if supervisor.elsewhere(launch):
            return state  # another gateway host's activity (shared work_dir): its to judge
        if launch is None:
            entry = (supervisor.read_json(folder / supervisor.JOB_FILE) or {}).get("queue_entry")
            if entry and (self.work_dir / supervisor.QUEUE / entry).exists():
                return state  # waiting for a run slot
            try:
                since = (folder / supervisor.JOB_FILE).stat().st_mtime
                with contextlib.suppress(FileNotFoundError):
                    since = max(since, (folder / supervisor.DISPATCHED_FILE).stat().st_ctime)
                age = time.time() - since
            except OSError:
                age = LAUNCH_GRACE_SECONDS + 1
            if age < LAUNCH_GRACE_SECONDS:
                return state
        elif supervisor.alive(launch, boot):
            return state
        # Gone without a final state? Read again: it may have finished just now.
        state = supervisor.read_json(folder / supervisor.STATE_FILE) or state
        if state.get("state") in supervisor.TERMINAL:
            return state
        # Leftovers of the job must not run on unsupervised (the job may have started
        # before the supervisor could record it: look for its session too).
        job = state.get("job")
        if supervisor.alive(job, boot):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(int(job["pid"]), signal.SIGKILL)
        if launch and launch.get("boot") == boot:
            for pid in supervisor.session_members(launch):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
        cancelled = (folder / supervisor.CANCEL_FILE).exists()
        state.update(
            state=supervisor.CANCELLED if cancelled else supervisor.FAILED,
            substate="",
            reason="terminated on request" if cancelled else LOST,
            finished_at=supervisor.now(),
        )
        supervisor.write_json(folder / supervisor.STATE_FILE, state)
        return state

    def _status(self, folder: Path, boot: str, queue: set[str] | None = None) -> JobStatus:
        state = self._state(folder, boot, queue)
        substate = state.get("substate") or ""
        executing = state["state"] == supervisor.RUNNING and not substate
        if executing and supervisor.process_state(state.get("job"), boot) == "T":
            substate = "Suspended"
        return JobStatus(
            state=JobState(state["state"]),
            substate=substate,
            exit_code=state.get("exit_code"),
            reason=state.get("reason") or "",
            started_at=_time(state.get("started_at")),
            finished_at=_time(state.get("finished_at")),
        )

    def _current(self, backend_id: str) -> tuple[Path, dict[str, Any], JobStatus]:
        folder = self.folder(backend_id)
        boot = supervisor.boot_id()
        status = self._status(folder, boot)
        state = supervisor.read_json(folder / supervisor.STATE_FILE) or {}
        return folder, state, status

    # -- control ---------------------------------------------------------------------------
    def terminate(self, backend_id: str) -> None:
        """Ask the supervisor to end the job (SIGTERM, SIGKILL after the grace period);
        waits a moment so that a prompt job is seen Cancelled by the next status call."""
        folder, state, status = self._current(backend_id)
        if status.state.terminal:
            raise InvalidState(f"activity {backend_id} is already {status.state.value}")
        (folder / supervisor.CANCEL_FILE).touch()
        if supervisor.unqueue(self.work_dir, backend_id):  # never started: nothing to stop
            state.update(
                state=supervisor.CANCELLED,
                reason="terminated on request",
                finished_at=supervisor.now(),
            )
            supervisor.write_json(folder / supervisor.STATE_FILE, state)
            return
        launch = state.get("supervisor") or supervisor.read_json(folder / supervisor.LAUNCH_FILE)
        if supervisor.elsewhere(launch):
            return  # its supervisor finds the cancel file within a second
        if launch and supervisor.alive(launch):
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(launch["pid"]), signal.SIGTERM)
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            if self.status([backend_id])[backend_id].state.terminal:
                return
            time.sleep(0.01)

    def _running_job(self, backend_id: str, action: str) -> tuple[dict[str, Any], str]:
        _folder, state, status = self._current(backend_id)
        job = state.get("job")
        host = supervisor.elsewhere(job)
        if host:
            raise BackendError(
                f"activity {backend_id} runs on gateway host {host}; ask that host to {action} it"
            )
        proc_state = supervisor.process_state(job)
        if status.state is not JobState.RUNNING or not job or proc_state in (None, "Z"):
            what = status.state.value + (f" ({status.substate})" if status.substate else "")
            raise InvalidState(
                f"cannot {action} activity {backend_id}: it is {what}, not executing"
            )
        return job, proc_state

    def suspend(self, backend_id: str) -> None:
        job, proc_state = self._running_job(backend_id, "suspend")
        if proc_state == "T":
            raise InvalidState(f"activity {backend_id} is suspended already")
        self._killpg(job, signal.SIGSTOP)
        self._await_group(job, lambda states: all(s in ("T", "Z") for s in states))

    def resume(self, backend_id: str) -> None:
        job, proc_state = self._running_job(backend_id, "resume")
        if proc_state != "T":
            raise InvalidState(f"activity {backend_id} is not suspended")
        self._killpg(job, signal.SIGCONT)
        self._await_group(job, lambda states: "T" not in states)

    def signal(self, backend_id: str, signum: int) -> None:
        try:
            sig = signal.Signals(signum)
        except ValueError as exc:
            raise BackendError(f"{signum} is not a signal number on this host") from exc
        job, _ = self._running_job(backend_id, f"send {sig.name} to")
        self._killpg(job, sig)

    @staticmethod
    def _killpg(job: dict[str, Any], signum: int) -> None:
        try:
            os.killpg(int(job["pid"]), signum)
        except ProcessLookupError as exc:
            raise InvalidState("the job has just ended") from exc

    @staticmethod
    def _await_group(job: dict[str, Any], done: Any, seconds: float = 2.0) -> None:
        """Wait until the signal reached every process of the job (it is asynchronous)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not done(supervisor.group_states(int(job["pid"]))):
            time.sleep(0.005)

    def close(self) -> None:
        self.reap()
