"""Where the Slurm backend reads finished jobs that squeue has forgotten: slurmdbd.

Two sources, as sites have them: the accounting database (``slurmdbd``: ``sacct``
without ``-c``) or the job-completion file (``jobcomp``: ``sacct -c``). ``auto`` asks the
controller once (``scontrol show config``: ``AccountingStorageType``) and keeps the answer.

Either way it is ONE ``sacct`` call for all forgotten ids. ``sacct --json`` of Slurm 22.05
reports every exit code as 0, so the parsable text is read (``code:signal``, and
``CANCELLED by <uid>`` in the state, which says who cancelled).

An answer that cannot be trusted yet is never turned into a verdict: when slurmdbd cannot
be reached, or slurmctld has not sent it a job's end yet (slurmctld queues records while
slurmdbd is down: ``End`` is ``Unknown`` and ``sdiag`` shows a DBD agent queue), the
result says so in :attr:`Finished.pending` and the caller keeps the job's last known state.
"""

from __future__ import annotations

import pwd
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from backends.contracts.interfaces import BackendError
from backends.contracts.model import JobState, JobStatus
from backends.execution.slurm.cli import UNREACHABLE, SlurmCLI, sacct_exit, to_status

MODES = ("auto", "slurmdbd", "jobcomp")
SLURMDBD = "slurmdbd"
JOBCOMP = "jobcomp"
NONE = "none"
FIELDS = "JobID,State,ExitCode,Start,End"
STORAGE_TYPE = re.compile(r"^AccountingStorageType\s*=\s*(\S+)", re.MULTILINE)
DBD_QUEUE = re.compile(r"DBD Agent queue size:\s*(\d+)")
CANCELLED_BY = re.compile(r"^CANCELLED by (\d+)")
CONTROLLER_PREFIX = "the Slurm controller cannot be reached: "
# how far back a job is looked for by name (a crash between sbatch and its record)
FIND_WINDOW_SECONDS = 7 * 24 * 3600


@dataclass
class Finished:
    """What the accounting source said about the ids squeue no longer holds."""

    statuses: dict[str, JobStatus] = field(default_factory=dict)
    # ids whose answer is not final yet, with why (slurmdbd down, records not sent yet)
    pending: dict[str, str] = field(default_factory=dict)


def _user(uid: str) -> str:
    try:
        return pwd.getpwuid(int(uid)).pw_name
    except (KeyError, ValueError):
        return f"uid {uid}"


def parse_sacct(out: str) -> tuple[dict[str, JobStatus], set[str]]:
    """``sacct -P -o JobID,State,ExitCode,Start,End`` as statuses by backend id, and the
    ids whose record has no end yet (a job the accounting has not seen finish)."""
    found: dict[str, JobStatus] = {}
    unfinished: set[str] = set()
    for line in out.splitlines():
        fields = line.split("|")
        if len(fields) < 5 or not fields[0]:
            continue
        job_id, state, exit_field, started, ended = fields[:5]
        code, signum = sacct_exit(exit_field)
        status = to_status(state, "", code, signum, started, ended)
        who = CANCELLED_BY.match(state)
        if status.state is JobState.CANCELLED and who:
            status = JobStatus(
                JobState.CANCELLED,
                exit_code=status.exit_code,
                reason=f"cancelled by {_user(who.group(1))}",
                started_at=status.started_at,
                finished_at=status.finished_at,
            )
        if status.state.terminal and ended in ("Unknown", "None", ""):
            unfinished.add(job_id)  # slurmctld has not sent the end (and exit) yet
        found[job_id] = status
    return found, unfinished


class Accounting:
    """The configured (or detected) accounting source of one Slurm backend."""

    def __init__(self, cli: SlurmCLI, mode: str = "auto", completion_file: bool = True) -> None:
        if mode not in MODES:
            raise ValueError(f"accounting must be one of {', '.join(MODES)}, not {mode!r}")
        self.cli = cli
        self.mode = mode
        self.completion_file = completion_file
        self._source = {SLURMDBD: SLURMDBD, JOBCOMP: JOBCOMP}.get(mode, "")
        self.problem = ""  # why the last question could not be answered ("" = it was)

    # -- which source -------------------------------------------------------------------
    def source(self) -> str:
        """``slurmdbd``, ``jobcomp`` or ``none``; ``auto`` asks the controller once."""
        if not self._source:
            out = self.cli.run("scontrol", ["show", "config"])  # BackendUnavailable: ask later
            found = STORAGE_TYPE.search(out)
            storage = found.group(1) if found else ""
            if storage.endswith("/slurmdbd"):
                self._source = SLURMDBD
            else:
                self._source = JOBCOMP if self.completion_file else NONE
        return self._source

    @property
    def known_source(self) -> str:
        """The source as far as known without asking ("unknown" before the controller
        has answered in ``auto`` mode)."""
        return self._source or "unknown"

    def describe(self) -> str:
        source = self._source or "not known yet (the controller has not answered)"
        text = {
            SLURMDBD: "finished jobs from slurmdbd (sacct)",
            JOBCOMP: "finished jobs from the job-completion file (sacct -c)",
            NONE: "no accounting source: jobs squeue has forgotten are reported lost",
        }.get(source, f"accounting source {source}")
        return text + (f"; {self.problem}" if self.problem else "")

    def probe(self) -> None:
        """Ask the accounting source a cheap question; sets :attr:`problem`."""
        try:
            if self.source() == SLURMDBD:
                self.cli.run("sacct", ["-n", "-X", "-P", "-o", "JobID", "-S", "now", "-E", "now"])
            self.problem = ""
        except BackendError as exc:
            self.problem = self._unreachable(exc)

    def _unreachable(self, exc: BackendError) -> str:
        """Why sacct could not answer, naming slurmdbd when it is the one away (the CLI
        layer says "controller" for every connection refused)."""
        text = getattr(exc, "text", "") or str(exc)
        text = text.removeprefix(CONTROLLER_PREFIX)
        if self._source == SLURMDBD and UNREACHABLE.search(text):
            return f"Slurm's accounting daemon (slurmdbd) cannot be reached: {text}"
        return f"the Slurm accounting ({self.known_source}) cannot be asked: {text}"

    # -- finished jobs ------------------------------------------------------------------
    def finished(self, backend_ids: Sequence[str]) -> Finished:
        """ONE sacct over all ids squeue no longer holds."""
        answer = Finished()
        if not backend_ids:
            return answer
        try:
            source = self.source()
        except BackendError as exc:
            why = f"the accounting source is not known yet: {exc}"
            answer.pending = dict.fromkeys(backend_ids, why)
            return answer
        if source == NONE:
            return answer
        jobs = sorted({b.split("_")[0] for b in backend_ids})
        args = ["-X", "-n", "-P", "-j", ",".join(jobs), "-o", FIELDS]
        try:
            out = self.cli.run("sacct", ["-c", *args] if source == JOBCOMP else args)
        except BackendError as exc:
            self.problem = self._unreachable(exc)
            answer.pending = dict.fromkeys(backend_ids, self.problem)
            return answer
        self.problem = ""
        found, unfinished = parse_sacct(out)
        lagging = ""
        for backend_id in backend_ids:
            status = found.get(backend_id)
            if status is not None and backend_id not in unfinished:
                if status.state.terminal:
                    answer.statuses[backend_id] = status
                    continue
                # slurmctld forgot it, the accounting still has it running: its end is
                # on the way (queued in slurmctld while slurmdbd was away)
            elif source == JOBCOMP and status is None:
                continue  # not in the file: lost
            elif source == SLURMDBD and status is None:
                lagging = lagging or self._dbd_queue()
                if not lagging:
                    continue  # nothing is on its way to slurmdbd: lost
            answer.pending[backend_id] = lagging or (
                "slurmctld has not sent its end to slurmdbd yet"
            )
        return answer

    def _dbd_queue(self) -> str:
        """Records slurmctld holds for slurmdbd (sdiag), as a reason ("" = none)."""
        try:
            found = DBD_QUEUE.search(self.cli.run("sdiag", []))
        except BackendError:
            return ""
        queued = int(found.group(1)) if found else 0
        return f"slurmctld has {queued} records not yet sent to slurmdbd" if queued else ""

    def find_by_name(self, name: str, since: float | None = None) -> str | None:
        """The Slurm id of a finished job submitted under ``name``."""
        source = self.source()
        if source == NONE:
            return None
        if source == JOBCOMP:
            # sacct -c does not filter by --name: match the names here
            out = self.cli.run("sacct", ["-c", "-X", "-n", "-P", "-o", "JobID,JobName"])
        else:
            start = since if since is not None else time.time() - FIND_WINDOW_SECONDS
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(start - 3600))
            out = self.cli.run(
                "sacct", ["-X", "-n", "-P", f"--name={name}", "-S", stamp, "-o", "JobID,JobName"]
            )
        for line in out.splitlines():
            job_id, _, job_name = line.partition("|")
            if job_name == name:
                return job_id.split("_")[0]
        return None
