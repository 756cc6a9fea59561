"""Slurm: every BES activity is a real Slurm job, submitted with the CLI.

Layout on the shared ``work_dir`` (every node must see it at the same path):
``<work_dir>/<activity id>/`` holds ``job.sh``, ``submit.json`` (written BEFORE sbatch:
the job name that carries the activity id), ``log/`` (Slurm's output, staging
credentials, a staging failure) and ``work/`` (the job's working directory), and
``<work_dir>/jobs/<slurm id>`` links a Slurm job back to its folder.

Nothing twice: a folder whose ``submit.json`` has no Slurm id yet (the gateway died
between writing it and sbatch answering) is looked up by its job name in squeue and
sacct before anything is submitted again. One poll for all: ``status`` answers from a
snapshot of ONE ``squeue --json`` (plus one ``sacct`` for the ids squeue has forgotten,
from slurmdbd or the job-completion file: backends/execution/slurm/accounting.py),
taken at most once per ``poll_interval_seconds`` however many callers and jobs there are;
final states are written into the folder so that a restart never asks Slurm again. When
the accounting cannot answer yet, a job keeps its last known state (a ``started`` marker
in the folder remembers Running across restarts) with a reason that says why.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import pwd
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from backends.contracts.interfaces import (
    BackendContext,
    BackendError,
    BackendUnavailable,
    ExecutionBackend,
    InvalidSpec,
    InvalidState,
    PartlySubmitted,
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
from backends.execution.admission import admit_staging
from backends.execution.slurm import job as slurm_job
from backends.execution.slurm.accounting import Accounting
from backends.execution.slurm.cli import (
    UNKNOWN_JOB,
    SlurmCLI,
    SlurmCommandError,
    expand_tasks,
    to_status,
    wait_status,
)
from backends.execution.slurm.settings import SlurmExecutionSettings

NAME_PREFIX = "xg-"
FINAL_FILE = "final.json"
STARTED_FILE = "started"  # the job was seen running (its last known state after a restart)
SUBMIT_FILE = "submit.json"
PARTITIONS_TTL = 30.0  # seconds a sinfo list of partitions is trusted
TOOLS = ("sbatch", "squeue", "scancel", "sacct", "sinfo", "scontrol", "srun", "runuser", "sdiag")


def _write_bytes(path: str, data: bytes, mode: int, owner: Any = None) -> None:
    """One open, one write (these files are small: no text layer per file), then the
    owner on the open descriptor."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        if owner is not None:
            os.fchown(fd, owner.pw_uid, owner.pw_gid)
    finally:
        os.close(fd)


def _write(path: Path | str, data: Any, mode: int = 0o644) -> None:
    """JSON, replaced atomically: a reader (or a crash) never sees half of it."""
    temp = f"{path}.tmp"
    _write_bytes(temp, json.dumps(data).encode(), mode)
    os.replace(temp, path)


def _write_text(path: Path, text: str, owner: Any) -> None:
    _write_bytes(str(path), text.encode(), 0o600, owner)


def _read(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return None


class SlurmExecutionBackend(ExecutionBackend):
    name = "slurm"
    settings = SlurmExecutionSettings

    def __init__(self, context: BackendContext[SlurmExecutionSettings]) -> None:
        super().__init__(context)
        execution = SlurmExecutionSettings.of(context.settings)
        options = execution.slurm
        self.partition = options.partition
        self.allowed_partitions = list(options.partitions)
        self._partitions: tuple[float, list[str]] = (-1e9, [])  # (read at, names)
        self.refuse_when_down = options.controller_down == "refuse"
        self._pinged: tuple[float, str] = (-1e9, "")  # (when, "" or why it is down)
        paths = {tool: getattr(options, tool) or tool for tool in TOOLS}
        env = {}
        if options.slurm_conf:
            env["SLURM_CONF"] = options.slurm_conf
        self.cli = SlurmCLI(paths, env, float(options.command_timeout_seconds))
        self.poll_interval = float(options.poll_interval_seconds)
        self.retries = options.submit_retries
        self.backoff = float(options.submit_backoff_seconds)
        self.accounting = Accounting(self.cli, options.accounting, options.sacct_completion_file)
        self.python = options.python or sys.executable
        configured = options.work_dir
        self.work_dir = Path(configured) if configured else context.state_dir / "slurm"
        self.default_account = execution.default_account
        self.mpi_plugins = {**slurm_job.MPI_PLUGINS, **options.mpi_plugins}
        self.staging_limits = execution.staging_limits()
        self.file_roots = list(execution.file_staging_roots)
        self._lock = threading.Lock()  # one poll at a time; callers share its snapshot
        self._snapshot: dict[str, JobStatus] = {}
        self._polled_at = -1e9
        self._polled_wall = 0.0
        self._final: dict[str, JobStatus] = {}
        self._live: set[str] = set()  # known to have no final state on file yet
        self._seen: dict[str, JobStatus] = {}  # last state squeue showed (this process)
        self._folders: dict[str, Path] = {}
        self.polls = 0  # for the benchmark and the tests: how many squeue calls so far
        self._laid_out = False

    # -- layout --------------------------------------------------------------------------
    def folder(self, activity_id: str) -> Path:
        if not activity_id or "/" in activity_id or activity_id.startswith("."):
            raise UnknownResource(f"{activity_id!r} is not an activity id")
        return self.work_dir / activity_id

    def folder_of(self, backend_id: str) -> Path:
        folder = self._folders.get(backend_id)
        if folder is None:
            link = self.work_dir / "jobs" / backend_id
            try:
                folder = self.work_dir / os.readlink(link)
            except OSError as exc:
                raise UnknownResource(
                    f"there is no Slurm job {backend_id} of this gateway"
                ) from exc
            self._folders[backend_id] = folder
        return folder

    # -- health and resources -----------------------------------------------------------
    def health(self) -> HealthReport:
        try:
            nodes = self._sinfo()
        except BackendError as exc:
            return HealthReport(False, str(exc))
        up = [
            n
            for n in nodes
            if "down" not in n.get("state", "") and "drain" not in n.get("state", "")
        ]
        # jobs still run while the accounting is away: it is said, not counted as down
        self.accounting.probe()
        return HealthReport(
            bool(up),
            f"{len(up)} of {len(nodes)} Slurm nodes up; {self.accounting.describe()}",
            {
                "nodes": len(nodes),
                "accounting": self.accounting.known_source,
                "accounting_reachable": not self.accounting.problem,
            },
        )

    def _sinfo(self) -> list[dict[str, Any]]:
        return json.loads(self.cli.run("sinfo", ["--json"])).get("nodes", [])

    def resources(self) -> dict[str, Any]:
        nodes = self._sinfo()
        partitions = sorted({p for n in nodes for p in n.get("partitions", [])})
        os_name, _, os_version = (nodes[0].get("operating_system", "") if nodes else "").partition(
            " "
        )
        counts = {JobState.RUNNING: 0, JobState.PENDING: 0}
        with self._lock:
            for status in self._snapshot.values():
                if status.state in counts:
                    counts[status.state] += 1
        return {
            "cpu_count": sum(int(n.get("cpus", 0)) for n in nodes),
            "physical_memory": sum(int(n.get("real_memory", 0)) for n in nodes) * 1024**2,
            "free_memory": sum(int(n.get("free_memory", 0) or 0) for n in nodes) * 1024**2,
            "operating_system": os_name,
            "os_version": os_version.split()[0] if os_version else "",
            "architecture": nodes[0].get("architecture", "") if nodes else "",
            "node_count": len(nodes),
            "nodes": {n.get("name", ""): n.get("state", "") for n in nodes},
            "partitions": partitions,
            # the ones a JSDL queue hint may name (all, unless the site lists some)
            "queues": [p for p in partitions if p in self.allowed_partitions]
            if self.allowed_partitions
            else partitions,
            "running": counts[JobState.RUNNING],
            "pending": counts[JobState.PENDING],
        }

    # -- queues: a JSDL queue hint names a partition ------------------------------------
    def partitions(self) -> list[str]:
        """The partitions sinfo reports, read at most every PARTITIONS_TTL seconds."""
        read_at, names = self._partitions
        if time.monotonic() - read_at >= PARTITIONS_TTL:
            out = self.cli.run("sinfo", ["-h", "-o", "%R"])
            names = sorted({line.strip() for line in out.splitlines() if line.strip()})
            self._partitions = (time.monotonic(), names)
        return names

    def admit(self, job: JobSpec) -> None:
        """In refuse mode, no job while slurmctld does not answer. A queue hint must name
        a partition that exists (and that the site lets grid jobs use, if it lists them).
        With the controller down in hold mode, existence cannot be asked: the hint passes
        here and sbatch decides when the job is submitted."""
        admit_staging(job, self.file_roots)  # what the job's stager would refuse
        if self.refuse_when_down:
            self._controller_up()
        if not job.queue:
            return
        allowed = self.allowed_partitions
        if allowed and job.queue not in allowed:
            raise InvalidSpec(
                f"queue {job.queue!r} is not open to grid jobs here; the queues are: "
                + ", ".join(allowed),
                field="queue",
            )
        try:
            existing = self.partitions()
        except BackendUnavailable:
            return
        if job.queue not in existing:
            offered = [p for p in existing if not allowed or p in allowed]
            raise InvalidSpec(
                f"queue {job.queue!r} is not a partition of this Slurm cluster; the "
                "partitions are: " + (", ".join(offered) or "none"),
                field="queue",
            )

    def _controller_up(self) -> None:
        """``scontrol ping``, its answer kept for a poll interval (at least 1 s), so a
        burst of CreateActivity costs one ping; BackendUnavailable while it is down."""
        when, down = self._pinged
        if time.monotonic() - when >= max(1.0, self.poll_interval):
            try:
                out = self.cli.run("scontrol", ["ping"])
                down = "" if " is UP" in out else "scontrol ping: " + out.strip()
            except SlurmCommandError:  # exit 1: "Slurmctld(primary) at <host> is DOWN"
                down = "scontrol ping: slurmctld is DOWN"
            except BackendError as exc:
                down = str(exc)
            self._pinged = (time.monotonic(), down)
        if down:
            raise BackendUnavailable(f"the Slurm controller does not answer ({down})")

    # -- who the job runs as -------------------------------------------------------------
    def account_for_job(self, account: LocalAccount | None) -> str:
        """The user to run sbatch as ("" = the gateway's own account)."""
        if os.geteuid() != 0:
            if account is not None and account.uid != os.geteuid():
                raise BackendError(
                    f"the gateway runs as uid {os.geteuid()}, not root, so it cannot submit "
                    f"jobs as account {account.username!r}; run it as root or map users to "
                    "the gateway's own account"
                )
            return ""
        name = account.username if account is not None else self.default_account
        if not name:
            raise BackendError(
                "no local account is mapped for this user and execution.default_account is "
                "empty; the gateway runs as root and will not submit jobs as root"
            )
        try:
            entry = pwd.getpwnam(name)
        except KeyError as exc:
            raise BackendError(f"account {name!r} does not exist on the gateway host") from exc
        if entry.pw_uid == 0:
            raise BackendError(f"account {name!r} is root; jobs never run as root")
        return entry.pw_name

    # -- submit --------------------------------------------------------------------------
    def submit(self, activity_id: str, job: JobSpec, account: LocalAccount | None) -> str:
        return self.submit_many([(activity_id, job)], account)[0]

    def submit_many(
        self, jobs: Sequence[tuple[str, JobSpec]], account: LocalAccount | None
    ) -> list[str]:
        """Several activities; those with the same resources go as ONE job array."""
        user = self.account_for_job(account)
        groups: dict[tuple[str, ...], list[tuple[str, JobSpec]]] = {}
        for activity_id, job in jobs:
            key = tuple(slurm_job.sbatch_options(job, self.partition, self.mpi_plugins))
            groups.setdefault(key, []).append((activity_id, job))
        ids: dict[str, str] = {}
        for options, members in groups.items():
            try:
                ids.update(self._submit_group(list(options), members, user))
            except BackendError as exc:
                if not ids:
                    raise
                # the caller must not fail the groups already queued: handed over again,
                # each finds its job from its submit.json
                raise PartlySubmitted(f"only part of the batch was submitted: {exc}") from exc
        return [ids[activity_id] for activity_id, _ in jobs]

    def _prepare(self, folder: Path, job: JobSpec, owner: Any) -> None:
        """The activity's folder, its two sub-folders (the account's) and job.sh. String
        paths on purpose: a burst prepares hundreds, and pathlib joins cost more than the
        system calls."""
        if not self._laid_out:  # once per process, not once per job
            self.work_dir.mkdir(parents=True, exist_ok=True)
            (self.work_dir / "jobs").mkdir(exist_ok=True)
            self._laid_out = True
        base = str(folder)
        with contextlib.suppress(FileExistsError):
            os.mkdir(base, 0o755)
        for sub in (slurm_job.WORK, slurm_job.LOGS):
            path = f"{base}/{sub}"
            with contextlib.suppress(FileExistsError):
                os.mkdir(path, 0o700)
            if owner is not None:
                os.chown(path, owner.pw_uid, owner.pw_gid)
        if job.stage_in or job.stage_out:
            staging = folder / slurm_job.LOGS / "staging.json"
            _write(
                staging,
                {
                    "stage_in": to_plain(job.stage_in),
                    "stage_out": to_plain(job.stage_out),
                    "staging_limits": self.staging_limits,
                },
                0o600,
            )
            if owner is not None:
                os.chown(staging, owner.pw_uid, owner.pw_gid)
        text = slurm_job.script(
            job,
            folder,
            self.python,
            self.mpi_plugins,
            self.cli.paths["srun"],
            self.cli.paths["scontrol"],
        )
        # the environment may hold what others should not read: the account's alone
        _write_text(f"{base}/job.sh", text, owner)

    def _submit_group(
        self, options: list[str], members: list[tuple[str, JobSpec]], user: str
    ) -> dict[str, str]:
        """Members with the same sbatch options: one job (one member) or one job array
        whose task i runs member i's own job.sh."""
        folders = {activity_id: self.folder(activity_id) for activity_id, _ in members}
        ids: dict[str, str] = {}
        named: dict[str, str] = {}  # activity id -> the job name it was submitted under
        lookups: dict[str, str | None] = {}  # job name -> Slurm id, one lookup per name
        todo = []
        for activity_id, job in members:
            found = self._submitted(folders[activity_id], lookups)
            if found is None:
                todo.append((activity_id, job))
            else:
                ids[activity_id], named[activity_id] = found
        if todo:
            first = todo[0][0]
            name = NAME_PREFIX + first
            array = len(todo) > 1
            owner = pwd.getpwnam(user) if user else None
            for activity_id, job in todo:
                self._prepare(folders[activity_id], job, owner)
            # written BEFORE sbatch: after a crash, each member's own marker says under
            # which name (and as which array task) it may have been submitted
            for index, (activity_id, _job) in enumerate(todo):
                marker = {"name": name, "index": index if array else None}
                _write(f"{folders[activity_id]}/{SUBMIT_FILE}", marker)
            script = f"{folders[first]}/job.sh"
            argv = [*options, f"--job-name={name}", f"--comment=xtreemgate activity {first}"]
            if array:
                script = f"{self.work_dir}/array-{first}.sh"
                text = slurm_job.array_script([folders[a] for a, _ in todo])
                _write_bytes(script, text.encode(), 0o644)
                argv.append(f"--array=0-{len(todo) - 1}")
                # each task's program writes to its own folder (the script redirects);
                # what the shell itself says has no folder the account may write to
                argv.append("--output=/dev/null")
            else:
                argv.append(f"--output={folders[first]}/{slurm_job.LOGS}/slurm-%j.out")
            argv.append(script)
            try:
                slurm_id = self._sbatch(argv, user)
            except SlurmCommandError:
                # refused: certainly not queued (Slurm may keep a FAILED record under the
                # name), so a later hand-over must submit afresh, not find that record
                for activity_id, _job in todo:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(f"{folders[activity_id]}/{SUBMIT_FILE}")
                raise
            for index, (activity_id, _job) in enumerate(todo):
                ids[activity_id] = f"{slurm_id}_{index}" if array else slurm_id
                named[activity_id] = name
        jobs = f"{self.work_dir}/jobs"
        for activity_id, _job in members:
            backend_id = ids[activity_id]
            slurm_id, _, task = backend_id.partition("_")
            marker = {
                "name": named[activity_id],
                "index": int(task) if task else None,
                "slurm_id": slurm_id,
            }
            _write(f"{folders[activity_id]}/{SUBMIT_FILE}", marker)
            with contextlib.suppress(FileExistsError):
                os.symlink(activity_id, f"{jobs}/{backend_id}")
            self._folders[backend_id] = folders[activity_id]
            self._live.add(backend_id)
        return ids

    def _submitted(self, folder: Path, lookups: dict[str, str | None]) -> tuple[str, str] | None:
        """The backend id of an activity already submitted, from its own submit.json: the
        Slurm id once recorded, else (a crash right after sbatch) found by its job name
        in squeue and sacct; with the job name. None: never submitted, submit it."""
        try:
            with open(f"{folder}/{SUBMIT_FILE}", "rb") as marker_file:
                marker = json.loads(marker_file.read())
        except (FileNotFoundError, NotADirectoryError, ValueError):
            return None
        if not isinstance(marker, dict) or not marker.get("name"):
            return None
        name = str(marker["name"])
        slurm_id = marker.get("slurm_id")
        if not slurm_id:
            if name not in lookups:
                lookups[name] = self._find_by_name(name)
            slurm_id = lookups[name]
        if not slurm_id:
            return None
        index = marker.get("index")
        return (f"{slurm_id}_{index}" if index is not None else str(slurm_id)), name

    def _sbatch(self, argv: list[str], user: str) -> str:
        """sbatch with retries and backoff while the controller cannot be reached."""
        delay = self.backoff
        for attempt in range(self.retries + 1):
            try:
                out = self.cli.run("sbatch", argv, as_user=user)
                return out.strip().split(";")[0]
            except BackendUnavailable as exc:
                if attempt == self.retries:
                    raise BackendUnavailable(
                        f"Slurm did not accept the job after {self.retries + 1} attempts: {exc}"
                    ) from exc
                time.sleep(delay)
                delay *= 2
        raise AssertionError("unreachable")

    def _find_by_name(self, name: str) -> str | None:
        """The Slurm id of a job submitted under ``name`` (queued, or finished)."""
        jobs = json.loads(self.cli.run("squeue", ["--json", f"--name={name}"])).get("jobs", [])
        for job in jobs:
            if job.get("name") == name:
                return str(job.get("array_job_id") or job["job_id"])
        return self.accounting.find_by_name(name)

    # -- status: one poll for all ---------------------------------------------------------
    def poll(self) -> dict[str, JobStatus]:
        """ONE squeue call: the status of every job Slurm still holds, by backend id."""
        out = self.cli.run("squeue", ["--json"])
        self.polls += 1
        return parse_squeue(json.loads(out))

    def status(self, backend_ids: Sequence[str]) -> dict[str, JobStatus]:
        answer: dict[str, JobStatus] = {}
        wanted = []
        for backend_id in backend_ids:
            final = self._final.get(backend_id)
            if final is not None and self._requeued(backend_id):
                final = None
            if final is None and backend_id not in self._live:
                final = self._stored_final(backend_id)  # once per process: after a restart
                if final is None:
                    self._live.add(backend_id)
            if final is not None:
                answer[backend_id] = final
            else:
                wanted.append(backend_id)
        if not wanted:
            return answer
        with self._lock:
            stale = time.monotonic() - self._polled_at >= self.poll_interval
            if not stale:  # a job submitted (by any gateway process) after the snapshot
                stale = any(
                    (b not in self._snapshot or self._snapshot[b].state.terminal)
                    and self._submitted_at(b) >= self._polled_wall
                    for b in wanted
                )
            if stale:
                self._polled_wall = time.time()
                self._snapshot = self.poll()
                self._polled_at = time.monotonic()
            snapshot = self._snapshot
        missing = [b for b in wanted if b not in snapshot]
        finished = self.accounting.finished(missing)
        for backend_id in wanted:
            status = snapshot.get(backend_id) or finished.statuses.get(backend_id)
            if status is None and backend_id in finished.pending:
                status = self._last_known(backend_id, finished.pending[backend_id])
            if status is None:
                continue
            if status.state.terminal:
                status = self._finalize(backend_id, status)
            elif backend_id in snapshot:
                self._remember(backend_id, status)
            answer[backend_id] = status
        return answer

    def _requeued(self, backend_id: str) -> bool:
        """A final state this process keeps whose file is gone: requeued elsewhere."""
        try:
            gone = not (self.folder_of(backend_id) / FINAL_FILE).exists()
        except UnknownResource:
            return False
        if gone:
            self._final.pop(backend_id, None)
            self._live.add(backend_id)
        return gone

    def _remember(self, backend_id: str, status: JobStatus) -> None:
        """Keep the last state squeue showed; mark the folder once the job ran."""
        before = self._seen.get(backend_id)
        self._seen[backend_id] = status
        if status.state is JobState.RUNNING and (
            before is None or before.state is not status.state
        ):
            with contextlib.suppress(OSError, UnknownResource):
                marker = self.folder_of(backend_id) / STARTED_FILE
                if not marker.exists():
                    marker.touch()

    def _last_known(self, backend_id: str, why: str) -> JobStatus:
        """Squeue forgot the job and the accounting cannot tell its end yet: what was
        last seen stands (never a guess at a final state), and the reason says why."""
        seen = self._seen.get(backend_id)
        if seen is not None:
            state, substate = seen.state, seen.substate
        else:
            try:
                ran = (self.folder_of(backend_id) / STARTED_FILE).exists()
            except UnknownResource:
                ran = False
            state, substate = (JobState.RUNNING if ran else JobState.PENDING), ""
        return JobStatus(
            state,
            substate=substate,
            reason=(
                f"Slurm no longer lists job {backend_id} and its end is not known yet: "
                f"{why}; the last known state ({state.value}) stands until it can be read"
            ),
        )

    def _submitted_at(self, backend_id: str) -> float:
        try:
            return (self.work_dir / "jobs" / backend_id).lstat().st_mtime
        except OSError:
            return 0.0

    def _stored_final(self, backend_id: str) -> JobStatus | None:
        try:
            folder = self.folder_of(backend_id)
        except UnknownResource:
            return None
        data = _read(folder / FINAL_FILE)
        if data is None:
            return None
        status = JobStatus(
            JobState(data["state"]), exit_code=data.get("exit_code"), reason=data.get("reason", "")
        )
        self._final[backend_id] = status
        return status

    def _finalize(self, backend_id: str, status: JobStatus) -> JobStatus:
        """Add what only the folder knows (a staging failure), and keep the final state."""
        try:
            folder = self.folder_of(backend_id)
        except UnknownResource:
            return status
        failed = folder / slurm_job.LOGS / slurm_job.STAGING_FAILED
        with contextlib.suppress(OSError):
            reason = failed.read_text().strip()
            status = dataclasses.replace(status, state=JobState.FAILED, reason=reason)
        if status.state is JobState.FAILED and status.exit_code == 90:
            status = dataclasses.replace(status, reason="cannot enter the working directory")
        _write(
            folder / FINAL_FILE,
            {"state": status.state.value, "exit_code": status.exit_code, "reason": status.reason},
        )
        self._final[backend_id] = status
        self._seen.pop(backend_id, None)
        return status

    def invalidate(self) -> None:
        with self._lock:
            self._polled_at = -1e9

    # -- control -------------------------------------------------------------------------
    def _current(self, backend_id: str) -> JobStatus:
        self.folder_of(backend_id)
        self.invalidate()
        status = self.status([backend_id]).get(backend_id)
        if status is None:
            raise UnknownResource(f"Slurm no longer knows job {backend_id}")
        return status

    def _control(self, tool: str, args: list[str], backend_id: str) -> None:
        try:
            self.cli.run(tool, args)
        except SlurmCommandError as exc:
            raise InvalidState(f"job {backend_id}: {exc.text}") from exc
        self.invalidate()

    def terminate(self, backend_id: str) -> None:
        status = self._current(backend_id)
        if status.state.terminal:
            raise InvalidState(f"job {backend_id} is already {status.state.value}")
        self._control("scancel", [backend_id], backend_id)

    def suspend(self, backend_id: str) -> None:
        """Pending: hold it (scontrol hold); running: suspend it (scontrol suspend)."""
        status = self._current(backend_id)
        if status.state is JobState.PENDING:
            self._control("scontrol", ["hold", backend_id], backend_id)
        elif status.state is JobState.RUNNING and status.substate != "Suspended":
            self._control("scontrol", ["suspend", backend_id], backend_id)
        else:
            raise InvalidState(f"job {backend_id} is {status.state.value}: cannot suspend it")

    def resume(self, backend_id: str) -> None:
        """Held: release it; suspended: resume it."""
        status = self._current(backend_id)
        if status.state is JobState.PENDING:
            self._control("scontrol", ["release", backend_id], backend_id)
        elif status.substate == "Suspended":
            self._control("scontrol", ["resume", backend_id], backend_id)
        else:
            raise InvalidState(f"job {backend_id} is {status.state.value}: nothing to resume")

    def requeue(self, backend_id: str) -> None:
        """Run the job again from the start, under the same Slurm id.

        Jobs are submitted with --no-requeue so that a node failure ends them (NODE_FAIL,
        reported) instead of running them twice unasked; and Slurm refuses ``scontrol
        requeue`` for such a job. So the flag is lifted for this one explicit requeue and
        set again at once. A job's script lifts it itself when it ends (slurm_job.script):
        Slurm updates no flag of a finished job, and without that a Failed job could never
        be requeued. A job ended by Slurm (TIMEOUT, OUT_OF_MEMORY, NODE_FAIL, scancel)
        keeps the flag off and stays ended. The old run's final state is removed, so
        that no gateway process reports it again.
        """
        status = self._current(backend_id)
        if status.state is JobState.PENDING:
            raise InvalidState(f"job {backend_id} has not started: there is nothing to requeue")
        if not status.state.terminal:
            self._control("scontrol", ["update", f"JobId={backend_id}", "Requeue=1"], backend_id)
        try:
            self.cli.run("scontrol", ["requeue", backend_id])
        except SlurmCommandError as exc:
            if not status.state.terminal:
                with contextlib.suppress(BackendError):
                    self.cli.run("scontrol", ["update", f"JobId={backend_id}", "Requeue=0"])
            if "disabled" in exc.text or "already finished" in exc.text:
                raise InvalidState(
                    f"Slurm will not requeue job {backend_id}: it ended "
                    f"{status.reason or status.state.value} before its script finished "
                    "(only a running job, or one whose script ran to its end, can be requeued)"
                ) from exc
            if UNKNOWN_JOB.search(exc.text):
                raise InvalidState(
                    f"Slurm no longer holds job {backend_id} (finished jobs are forgotten "
                    "after MinJobAge): submit the activity again instead"
                ) from exc
            raise InvalidState(f"job {backend_id}: {exc.text}") from exc
        with contextlib.suppress(BackendError):  # no silent rerun after a node failure
            self.cli.run("scontrol", ["update", f"JobId={backend_id}", "Requeue=0"])
        folder = self.folder_of(backend_id)
        for name in (FINAL_FILE, f"{slurm_job.LOGS}/{slurm_job.STAGING_FAILED}"):
            with contextlib.suppress(FileNotFoundError):
                (folder / name).unlink()
        self._final.pop(backend_id, None)
        self._live.add(backend_id)
        with contextlib.suppress(OSError):  # snapshots older than this are not believed
            os.utime(self.work_dir / "jobs" / backend_id, follow_symlinks=False)
        self.invalidate()

    def signal(self, backend_id: str, signum: int) -> None:
        status = self._current(backend_id)
        if status.state is not JobState.RUNNING:
            raise InvalidState(f"job {backend_id} is {status.state.value}, not running")
        self._control("scancel", [f"--signal={signum}", backend_id], backend_id)


def parse_squeue(document: dict[str, Any]) -> dict[str, JobStatus]:
    """squeue --json as statuses by backend id (``<job>`` or ``<array job>_<task>``)."""
    answer: dict[str, JobStatus] = {}
    for job in document.get("jobs", []):
        code, signum = wait_status(int(job.get("exit_code") or 0))
        status = to_status(
            str(job.get("job_state", "")),
            str(job.get("state_reason", "")),
            code,
            signum,
            job.get("start_time"),
            job.get("end_time"),
        )
        array = job.get("array_job_id") or 0
        if not array:
            answer[str(job["job_id"])] = status
        elif job.get("array_task_id") is not None:
            answer[f"{array}_{job['array_task_id']}"] = status
        else:  # the pending rest of an array: one record for many tasks
            for task in expand_tasks(str(job.get("array_task_string", ""))):
                answer[f"{array}_{task}"] = status
    return answer
