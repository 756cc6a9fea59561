"""The activity supervisor: one detached process per activity that runs it to the end.

``LocalExecutionBackend.submit`` writes ``job.json`` into the activity folder and queues
the activity; as soon as one of ``max_running`` run slots is free, ``dispatch`` starts
``python -I -S supervisor.py <activity folder> <slot fd>`` in a new session, so the supervisor
outlives the gateway process that started it (a gateway restart or crash changes
nothing). The supervisor stages the input in, runs the job in its own process group with
its resource limits and as the mapped account, stages the output out, removes the files
marked DeleteOnTermination, records every transition in ``state.json`` (written to a temp
file and renamed, so a reader never sees half a state), and at the end hands its slot to
the next queued activity. The gateway only reads these files; it talks to a supervisor
with SIGTERM (terminate) or, from another host sharing the folder, the ``cancel`` file.
Processes of the job left behind when it ends are killed with its process group.

Only the standard library is imported (``staging`` too, and only when there is staging),
so the supervisor starts in a few milliseconds and does not depend on the gateway's
third-party packages. Staging and clean-up run in a forked child that has become the
job's account: the folder is the job's, and root must not follow the job's links.

Folder layout (``<work_dir>/<activity id>/``, owned by the gateway, mode 0711)::

    job.json      the job spec, the account, the limits (gateway-only, 0600)
    dispatched    left by the dispatcher that claimed the activity from the queue
    launch.json   pid and start time of the supervisor, written by its starter
    state.json    the current state, written by the supervisor (and once by the
                  gateway, when it finds the supervisor gone, or cancels a queued one)
    cancel        terminate was asked for
    work/         the job's working directory, owned by the mapped account, 0700

Control files live beside, not in, ``work/``: a job must never be able to forge its
own state or read the staging credentials.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import pwd
import resource
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

STATE_FILE = "state.json"
JOB_FILE = "job.json"
LAUNCH_FILE = "launch.json"
CANCEL_FILE = "cancel"
DISPATCHED_FILE = "dispatched"
WORK = "work"
SLOTS = ".slots"
QUEUE = ".queue"
BARRIER = "exclusive"

PENDING, RUNNING, FINISHED, FAILED, CANCELLED = (
    "Pending",
    "Running",
    "Finished",
    "Failed",
    "Cancelled",
)
TERMINAL = (FINISHED, FAILED, CANCELLED)
STAGING_IN, STAGING_OUT = "Staging-In", "Staging-Out"

# What a person should read when a job died of a signal its limits send.
SIGNAL_MEANING = {
    signal.SIGXCPU: "CPU time limit",
    signal.SIGXFSZ: "file size limit",
    signal.SIGSEGV: "segmentation fault",
    signal.SIGBUS: "bus error",
    signal.SIGABRT: "aborted",
    signal.SIGKILL: "killed",
    signal.SIGTERM: "terminated",
    signal.SIGILL: "illegal instruction",
    signal.SIGFPE: "arithmetic error",
}

DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"


# -- shared with the backend: process identity and atomic files ----------------------------
def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


HOST = socket.gethostname()


def process_identity(pid: int) -> dict[str, Any] | None:
    """pid + start time (clock ticks since boot) + boot id + host: unique across pid reuse,
    reboots, and gateway hosts sharing a work_dir."""
    start = _start_ticks(pid)
    if start is None:
        return None
    return {"pid": pid, "start": start, "boot": boot_id(), "host": HOST}


def elsewhere(ident: dict[str, Any] | None) -> str:
    """The other host a process runs on ('' when it is this one): its liveness cannot be
    judged from here."""
    host = (ident or {}).get("host") or HOST
    return "" if host == HOST else host


def _proc_stat(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    # the command name (field 2) may contain spaces and parentheses: split after the last ')'
    return raw[raw.rindex(b")") + 2 :].decode().split()


def _start_ticks(pid: int) -> int | None:
    fields = _proc_stat(pid)
    return int(fields[19]) if fields else None


def process_state(ident: dict[str, Any] | None, boot: str | None = None) -> str | None:
    """The /proc state letter (R, S, T, Z…) of the process, or None if it is gone
    (or the pid now belongs to another process)."""
    if not ident:
        return None
    if ident.get("boot") and ident["boot"] != (boot if boot is not None else boot_id()):
        return None
    fields = _proc_stat(int(ident["pid"]))
    if not fields or int(fields[19]) != int(ident["start"]):
        return None
    return fields[0]


def session_members(ident: dict[str, Any]) -> list[int]:
    """Processes still in the session a supervisor led (its job and the job's children,
    unless they left it with setsid), started after it: what it leaves behind."""
    sid, start = int(ident["pid"]), int(ident["start"])
    now_there = _start_ticks(sid)
    if now_there is not None and now_there != start:
        # the number was given to a new process: the old session has no members left
        # (a session id stays reserved while it has any), and the new one is not ours
        return []
    members = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        fields = _proc_stat(int(entry.name))
        if fields and int(fields[3]) == sid and int(fields[19]) >= start:
            members.append(int(entry.name))
    return members


def group_states(pgid: int) -> list[str]:
    """The /proc state letters of every process in a process group."""
    states = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            fields = _proc_stat(int(entry.name))
            if fields and int(fields[2]) == pgid:
                states.append(fields[0])
    return states


def alive(ident: dict[str, Any] | None, boot: str | None = None) -> bool:
    return process_state(ident, boot) not in (None, "Z", "X")


def write_json(path: Path, data: dict[str, Any], mode: int = 0o600, durable: bool = True) -> None:
    """Write to a temp file, fsync, rename: readers see the old or the new, never half.

    ``durable=False`` skips the fsync where a host crash makes the file moot anyway."""
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, mode)
    try:
        with os.fdopen(fd, "w") as out:
            json.dump(data, out, separators=(",", ":"))
            if durable:
                out.flush()
                os.fsync(out.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        with path.open("rb") as data:
            return json.loads(data.read())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return None


# -- run slots and the queue (shared by the gateway and the supervisors) ------------------
#
# ``max_running`` slots are files ``<work_dir>/.slots/<n>`` held with flock by the
# supervisor of an executing activity: the kernel frees a slot when its holder dies, so a
# crash never leaks one. Activities that find no free slot wait as empty files
# ``<work_dir>/.queue/<submitted ns>-<id>`` and cost no process. Whoever frees a slot or
# queues an activity (a finishing supervisor, ``submit``, ``status``) calls ``dispatch``,
# which claims the oldest entries (unlink: exactly one claimer wins), locks a slot for
# each and hands the locked slot to the new supervisor it starts.
_made: set[Path] = set()


def _folder(path: Path) -> Path:
    """``path``, created once per process (a mkdir per submit costs on a busy disk)."""
    if path not in _made:
        path.mkdir(mode=0o700, exist_ok=True)
        _made.add(path)
    return path


def take_slot(work_dir: Path, limit: int) -> int | None:
    """A locked slot file descriptor, or None when all ``limit`` slots are held."""
    slots = _folder(work_dir / SLOTS)
    for n in range(limit):
        fd = os.open(slots / str(n), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno not in (errno.EWOULDBLOCK, errno.EACCES):
                raise
            continue
        return fd
    return None


def queue_entry(activity_id: str) -> str:
    """The activity's name in the queue: sorted by submission time."""
    return f"{time.time_ns():020d}-{activity_id}"


def enqueue(work_dir: Path, entry: str) -> None:
    os.close(os.open(_folder(work_dir / QUEUE) / entry, os.O_WRONLY | os.O_CREAT, 0o600))


def queued_ids(work_dir: Path) -> set[str]:
    """The ids of every queued activity (one directory listing)."""
    try:
        return {name.split("-", 1)[1] for name in os.listdir(work_dir / QUEUE) if "-" in name}
    except FileNotFoundError:
        return set()


def unqueue(work_dir: Path, activity_id: str) -> bool:
    """Take the activity out of the queue; False if it is not (or no longer) there."""
    try:
        names = [n for n in os.listdir(work_dir / QUEUE) if n.endswith(f"-{activity_id}")]
    except FileNotFoundError:
        return False
    for name in names:
        try:
            os.unlink(work_dir / QUEUE / name)
            return True
        except FileNotFoundError:
            continue
    return False


def _flock(fd: int, how: int) -> bool:
    try:
        fcntl.flock(fd, how | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno not in (errno.EWOULDBLOCK, errno.EACCES):
            raise
        return False
    return True


def barrier(work_dir: Path) -> int:
    """The file an exclusive job locks (LOCK_EX) so that nothing new starts beside it;
    dispatchers hold it shared while they start activities."""
    path = _folder(work_dir / SLOTS) / BARRIER
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)


def dispatch(work_dir: Path, limit: int, python: str) -> list[subprocess.Popen]:
    """Start supervisors for the oldest queued activities while slots are free (and no
    exclusive job holds the host)."""
    try:
        names = sorted(os.listdir(work_dir / QUEUE))
    except FileNotFoundError:
        return []
    gate = barrier(work_dir)
    try:
        if not _flock(gate, fcntl.LOCK_SH):
            return []  # an exclusive job has, or waits for, the whole host
        return _dispatch(work_dir, limit, python, names)
    finally:
        os.close(gate)


def _dispatch(work_dir: Path, limit: int, python: str, names: list[str]) -> list[subprocess.Popen]:
    started = []
    for name in names:
        slot = take_slot(work_dir, limit)
        if slot is None:
            break
        activity = name.split("-", 1)[1]
        try:
            # claim it (exactly one dispatcher wins the rename); the marker's ctime says
            # when, so that a reader does not take the short wait for launch.json as a loss
            os.rename(work_dir / QUEUE / name, work_dir / activity / DISPATCHED_FILE)
        except FileNotFoundError:
            os.close(slot)
            continue
        try:
            started.append(launch(work_dir / activity, python, slot))
        except OSError as exc:
            record_failure(work_dir / activity, f"cannot start the activity supervisor: {exc}")
        finally:
            os.close(slot)  # the supervisor holds the lock now (same open file description)
    return started


# Variables a supervisor keeps from its starter's environment (staging through a proxy);
# everything else (the gateway's secrets) stays behind.
PASSED_ENVIRONMENT = (
    "http_proxy",
    "https_proxy",
    "ftp_proxy",
    "no_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "FTP_PROXY",
    "NO_PROXY",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
)


def launch(folder: Path, python: str, slot: int | None = None) -> subprocess.Popen:
    """Start the supervisor of the activity in ``folder``, detached (own session)."""
    env = {k: v for k, v in os.environ.items() if k in PASSED_ENVIRONMENT}
    env["PATH"] = DEFAULT_PATH
    argv = [python, "-I", "-S", str(Path(__file__).resolve()), str(folder)]
    if slot is not None:
        argv.append(str(slot))
    proc = subprocess.Popen(
        argv,
        cwd=folder,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # not in its starter's process group or session
        close_fds=True,
        pass_fds=() if slot is None else (slot,),
    )
    ident = process_identity(proc.pid)
    if ident:  # moot after a host crash (the process is gone then): no fsync
        write_json(folder / LAUNCH_FILE, ident, durable=False)
    return proc


def record_failure(folder: Path, reason: str) -> None:
    state = read_json(folder / STATE_FILE) or {}
    state.update(state=FAILED, substate="", reason=reason, finished_at=now())
    write_json(folder / STATE_FILE, state)


def signal_reason(signum: int) -> str:
    try:
        name = signal.Signals(signum).name
    except ValueError:
        name = f"signal {signum}"
    meaning = SIGNAL_MEANING.get(signum)
    return f"killed by signal {name}" + (f" ({meaning})" if meaning else "")


# -- the supervisor ----------------------------------------------------------------------
class Cancelled(Exception):
    """Terminate was asked for while the supervisor was waiting or staging."""


class Supervisor:
    def __init__(self, folder: Path, slot: int | None = None) -> None:
        self.folder = folder
        self.work = folder / WORK
        job = read_json(folder / JOB_FILE)
        if not isinstance(job, dict) or not isinstance(job.get("spec"), dict):
            raise ValueError(f"{JOB_FILE} is missing or damaged")
        self.job: dict[str, Any] = job
        self.spec: dict[str, Any] = job["spec"]
        # JSDL: file names (staging, stdin/out/err) are relative to the working directory
        # (checked at submit: relative, without '..')
        self.cwd = self.work / (self.spec.get("working_directory") or "")
        self.account: dict[str, Any] | None = self.job.get("account")
        self.state: dict[str, Any] = read_json(folder / STATE_FILE) or {
            "state": PENDING,
            "submitted_at": self.job.get("submitted_at"),
        }
        self.cancel = False
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        os.set_blocking(self.wake_w, False)
        self.slot = slot
        self.held: list[int] = []  # an exclusive job's barrier and slots

    # -- state -------------------------------------------------------------------------
    def record(self, **changes: Any) -> None:
        self.state.update(changes)
        self.state["updated_at"] = now()
        write_json(self.folder / STATE_FILE, self.state)

    def finish(self, state: str, reason: str = "", exit_code: int | None = None) -> None:
        self.record(
            state=state,
            substate="",
            reason=reason,
            exit_code=exit_code,
            finished_at=now(),
        )

    # -- signals -------------------------------------------------------------------------
    def _on_terminate(self, signum: int, frame: object) -> None:
        self.cancel = True

    def install_signals(self) -> None:
        signal.set_wakeup_fd(self.wake_w, warn_on_full_buffer=False)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, self._on_terminate)
        signal.signal(signal.SIGCHLD, lambda *_: None)  # only to wake select()
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)

    def sleep(self, seconds: float) -> None:
        """Sleep until ``seconds`` pass, a child exits or terminate is asked for (by
        SIGTERM, or by the cancel file from a gateway on another host: looked for at
        least once a second)."""
        if seconds > 0 and not self.cancel:
            with contextlib.suppress(InterruptedError):
                select.select([self.wake_r], [], [], seconds)
        with contextlib.suppress(BlockingIOError):
            while os.read(self.wake_r, 512):
                pass
        if not self.cancel and (self.folder / CANCEL_FILE).exists():
            self.cancel = True

    # -- the run -------------------------------------------------------------------------
    def run(self) -> None:
        self.install_signals()
        if (self.folder / CANCEL_FILE).exists():  # asked before our handlers were there
            self.cancel = True
        self.record(supervisor=process_identity(os.getpid()), state=PENDING)
        try:
            self.take_slot()
            if self.spec.get("exclusive") and int(self.job.get("max_running") or 0) > 0:
                self.take_whole_host()
            self.make_dirs(self.cwd)  # as root, before anything of the job's ran there
            if self.spec.get("stage_in"):
                self.record(state=RUNNING, substate=STAGING_IN, started_at=now())
                self.staging("in")
            self.execute()
        except Cancelled:
            self.finish(CANCELLED, "terminated on request")
        except StagingFailed as exc:
            self.finish(FAILED, str(exc))
        except Exception as exc:  # the supervisor must always leave a final state
            self.finish(FAILED, f"internal error in the activity supervisor: {exc!r}")
        finally:
            try:
                self.delete_on_termination()
            except (Cancelled, OSError):
                pass  # the final state stands; a file left over is no reason to fail
            finally:
                self.release_slot()

    def take_slot(self) -> None:
        """Started without a slot (no limit, or by hand): wait for one if there is a limit."""
        limit = int(self.job.get("max_running") or 0)
        delay = 0.05
        while self.slot is None and limit > 0:
            if self.cancel:
                raise Cancelled
            self.slot = take_slot(self.folder.parent, limit)
            if self.slot is None:
                self.sleep(delay)
                delay = min(delay * 2, 1.0)

    def take_whole_host(self) -> None:
        """ExclusiveExecution: hold the barrier (nothing new starts), then every slot.

        The slot this supervisor was given is handed back first, so that two exclusive
        jobs never each hold what the other waits for."""
        limit = int(self.job.get("max_running") or 0)
        if self.slot is not None:
            os.close(self.slot)
            self.slot = None
        self.held.append(barrier(self.folder.parent))
        delay = 0.05
        while not _flock(self.held[0], fcntl.LOCK_EX):
            self.wait_a_little(delay)
            delay = min(delay * 2, 1.0)
        while len(self.held) < limit + 1:
            slot = take_slot(self.folder.parent, limit)
            if slot is None:
                self.wait_a_little(delay)
                delay = min(delay * 2, 1.0)
            else:
                self.held.append(slot)

    def wait_a_little(self, seconds: float) -> None:
        if self.cancel:
            raise Cancelled
        self.sleep(seconds)
        if self.cancel:
            raise Cancelled

    def release_slot(self) -> None:
        """Give the slot back and start whoever waits for it."""
        if self.slot is not None:
            os.close(self.slot)
            self.slot = None
        for fd in reversed(self.held):
            os.close(fd)
        self.held.clear()
        limit = int(self.job.get("max_running") or 0)
        if limit > 0:
            with contextlib.suppress(OSError):
                dispatch(self.folder.parent, limit, self.job.get("python") or sys.executable)

    # -- staging, in a child that runs as the account ------------------------------------
    def staging(self, direction: str) -> None:
        specs = self.spec.get("stage_in" if direction == "in" else "stage_out") or []
        from backends.execution import staging

        limits = self.job.get("staging_limits", {})
        # relative to the working directory, entered before the account switch: the
        # account may not be able to pass through the folders above it
        message = self.as_account(
            lambda: staging.transfer(direction, specs, Path(), limits), staging.preload
        )
        if message:
            raise StagingFailed(message)

    def as_account(self, task: Callable[[], str], preload: Callable[[], None] | None = None) -> str:
        """Run ``task`` in a child that is the mapped account; '' or what went wrong.

        Staging and clean-up touch the account's folder, where the job may have left
        symbolic links: done as root they could read or remove any file of the host.
        """
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # child: drop privileges, do it, report on the pipe
            os.close(read)
            message = ""
            try:
                signal.set_wakeup_fd(-1)
                for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD):
                    signal.signal(sig, signal.SIG_DFL)
                if preload:
                    preload()
                os.chdir(self.cwd)
                self.become_account()
                message = task()
            except BaseException as exc:
                message = f"{exc!r}" if not str(exc) else str(exc)
            os.write(write, message.encode()[:60000])
            os._exit(0)
        os.close(write)
        chunks: list[bytes] = []
        os.set_blocking(read, False)

        def drain() -> None:
            with contextlib.suppress(BlockingIOError):
                while chunk := os.read(read, 65536):
                    chunks.append(chunk)

        try:
            while True:
                if self.cancel:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                    os.waitpid(pid, 0)
                    raise Cancelled
                with contextlib.suppress(InterruptedError):
                    select.select([read, self.wake_r], [], [], 1.0)
                self.sleep(0)
                drain()
                done, status = os.waitpid(pid, os.WNOHANG)
                if done:
                    drain()
                    break
        finally:
            os.close(read)
        message = b"".join(chunks).decode(errors="replace")
        if not message and status != 0:
            message = f"helper process ended with status {status}"
        return message

    def become_account(self) -> None:
        """Drop to the mapped account (only when running as root and one is mapped)."""
        account = self.account
        if os.geteuid() != 0 or not account:
            return
        uid, gid = int(account["uid"]), int(account["gid"])
        os.setgroups(self.groups())
        os.setgid(gid)
        os.setuid(uid)
        os.umask(0o077)

    def groups(self) -> list[int]:
        account = self.account or {}
        gid = int(account.get("gid", os.getgid()))
        try:
            return sorted(set(os.getgrouplist(account.get("username", ""), gid)))
        except (KeyError, OSError, TypeError):
            return [gid]

    # -- the job -------------------------------------------------------------------------
    def execute(self) -> None:
        if self.cancel:
            raise Cancelled
        spec = self.spec
        if not spec.get("executable"):  # a data-staging-only job: nothing runs
            self.record(
                state=RUNNING, substate="", started_at=self.state.get("started_at") or now()
            )
            self.classify_and_stage_out(None)
            return
        self.prepare_executable()
        cwd = self.cwd
        files = self.open_std_files()
        switch = os.geteuid() == 0 and self.account is not None
        kwargs: dict[str, Any] = {}
        if switch:
            kwargs = {
                "user": int(self.account["uid"]),
                "group": int(self.account["gid"]),
                "extra_groups": self.groups(),
            }
        argv = [spec["executable"], *spec.get("arguments", [])]
        try:
            proc = subprocess.Popen(
                argv,
                cwd=cwd,
                env=self.job_environment(),
                stdin=files[0],
                stdout=files[1],
                stderr=files[2],
                process_group=0,
                close_fds=True,
                restore_signals=True,
                preexec_fn=self.limiter(switch),
                umask=0o077,
                **kwargs,
            )
        except OSError as exc:
            self.finish(
                FAILED, f"cannot start executable {spec['executable']!r}: {exc.strerror or exc}"
            )
            return
        finally:
            for fd in set(files):
                os.close(fd)
        self.record(
            state=RUNNING,
            substate="",
            started_at=self.state.get("started_at") or now(),
            job=process_identity(proc.pid),
        )
        outcome = self.wait(proc)
        if outcome is not None:
            return
        self.classify_and_stage_out(proc.returncode)

    def wait(self, proc: subprocess.Popen) -> str | None:
        """Wait for the job; enforce wall time and terminate. Returns 'cancelled' when the
        job was ended on request (its final state already recorded)."""
        wall = self.spec.get("wall_time_limit")
        grace = float(self.job.get("terminate_grace_seconds", 10))
        deadline = time.monotonic() + wall if wall else None
        kill_at: float | None = None
        why = ""
        while proc.poll() is None:
            if (self.cancel or (deadline and time.monotonic() >= deadline)) and kill_at is None:
                why = "cancel" if self.cancel else "wall"
                self.killpg(proc.pid, signal.SIGTERM)
                self.killpg(proc.pid, signal.SIGCONT)  # a stopped job must see the SIGTERM
                kill_at = time.monotonic() + grace
            if kill_at is not None and time.monotonic() >= kill_at:
                self.killpg(proc.pid, signal.SIGKILL)
                kill_at = float("inf")
            waits = [1.0]
            if deadline and kill_at is None:
                waits.append(deadline - time.monotonic())
            if kill_at is not None and kill_at != float("inf"):
                waits.append(kill_at - time.monotonic())
            self.sleep(max(0.0, min(waits)))
        # leftovers of the job (background children) do not outlive it
        self.killpg(proc.pid, signal.SIGKILL)
        if why == "cancel":
            code = proc.returncode
            self.finish(CANCELLED, "terminated on request", code if code >= 0 else 128 - code)
            return "cancelled"
        if why == "wall":
            self.state["wall_time_exceeded"] = True
        return None

    @staticmethod
    def killpg(pgid: int, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signum)

    def classify_and_stage_out(self, code: int | None) -> None:
        if code is None:
            state, reason = FINISHED, ""
        elif self.state.get("wall_time_exceeded"):
            state, reason = FAILED, f"wall time limit of {self.spec['wall_time_limit']} s exceeded"
        elif code == 0:
            state, reason = FINISHED, ""
        elif code < 0:
            state, reason = FAILED, signal_reason(-code)
        else:
            state, reason = FAILED, f"exited with status {code}"
        exit_code = None if code is None else code if code >= 0 else 128 - code
        if self.spec.get("stage_out"):
            self.record(state=RUNNING, substate=STAGING_OUT, exit_code=exit_code)
            try:
                self.staging("out")
            except StagingFailed as exc:
                reason = f"{reason}; {exc}" if reason else str(exc)
                state = FAILED
        self.finish(state, reason, exit_code)

    def prepare_executable(self) -> None:
        """A staged-in program arrives without the execute bit: give it one."""
        name = self.spec.get("executable", "")
        staged = {s.get("filename") for s in self.spec.get("stage_in") or []}
        if name in staged or name.removeprefix("./") in staged:
            path = self.cwd / name
            with contextlib.suppress(OSError):
                if path.is_file() and not path.is_symlink():
                    path.chmod(path.stat().st_mode | 0o100)

    def open_std_files(self) -> tuple[int, int, int]:
        """stdin/stdout/stderr in the working directory (never following a link)."""
        spec = self.spec
        opened: dict[str, int] = {}

        def open_one(name: str, write: bool) -> int:
            if not name:
                return os.open(os.devnull, os.O_WRONLY if write else os.O_RDONLY)
            path = self.cwd / safe_name(name)
            key = str(path)
            if key in opened:
                return opened[key]
            flags = os.O_NOFOLLOW | os.O_CLOEXEC
            if write:
                self.make_dirs(path.parent)
                flags |= os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND
            try:
                fd = os.open(path, flags, 0o600)
            except OSError as exc:
                raise StagingFailed(
                    f"cannot open {'output' if write else 'input'} file {name!r}: "
                    f"{exc.strerror or exc}"
                ) from exc
            if write and self.account and os.geteuid() == 0:
                os.fchown(fd, int(self.account["uid"]), int(self.account["gid"]))
            opened[key] = fd
            return fd

        return (
            open_one(spec.get("stdin", ""), False),
            open_one(spec.get("stdout", ""), True),
            open_one(spec.get("stderr", ""), True),
        )

    def make_dirs(self, path: Path) -> None:
        """Create folders inside the working directory, owned by the account.

        Done as root only before the job ran, when nothing in the folder is the job's."""
        missing = []
        while not path.exists() and path != self.work:
            missing.append(path)
            path = path.parent
        for folder in reversed(missing):
            folder.mkdir(mode=0o700)
            if self.account and os.geteuid() == 0:
                os.chown(folder, int(self.account["uid"]), int(self.account["gid"]))

    def job_environment(self) -> dict[str, str]:
        """A clean environment: nothing of the gateway's (it holds secrets) leaks in."""
        account = self.account or {}
        name = account.get("username") or _username(os.geteuid())
        home = account.get("home") or ""
        env = {
            "PATH": DEFAULT_PATH,
            "HOME": home if home and os.path.isdir(home) else str(self.cwd),
            "USER": name,
            "LOGNAME": name,
            "SHELL": "/bin/sh",
            "LANG": "C.UTF-8",
            "TMPDIR": str(self.cwd),
            "XTREEMGATE_ACTIVITY_ID": self.folder.name,
        }
        env.update({str(k): str(v) for k, v in (self.spec.get("environment") or {}).items()})
        return env

    def limiter(self, switch: bool):  # type: ignore[no-untyped-def]
        """setrlimit in the child before exec (after it became the account)."""
        spec = self.spec
        core = int(spec.get("core_dump_limit") or 0)  # no core files unless asked for
        limits: list[tuple[int, int, int]] = [(resource.RLIMIT_CORE, core, core)]
        for field, kind in (
            ("data_segment_limit", resource.RLIMIT_DATA),
            ("locked_memory_limit", resource.RLIMIT_MEMLOCK),
            ("open_descriptors_limit", resource.RLIMIT_NOFILE),
            ("stack_size_limit", resource.RLIMIT_STACK),
        ):
            if spec.get(field):
                limits.append((kind, int(spec[field]), int(spec[field])))
        cpu = spec.get("cpu_time_limit")
        if cpu:
            # SIGXCPU at the soft limit, SIGKILL a little later if it is ignored
            limits.append((resource.RLIMIT_CPU, int(cpu), int(cpu) + 5))
        memory = [m for m in (spec.get("memory_limit"), spec.get("virtual_memory_limit")) if m]
        if memory:
            limits.append((resource.RLIMIT_AS, int(min(memory)), int(min(memory))))
        if spec.get("file_size_limit"):
            size = int(spec["file_size_limit"])
            limits.append((resource.RLIMIT_FSIZE, size, size))
        procs = [n for n in (spec.get("process_count_limit"), spec.get("thread_count_limit")) if n]
        if procs and switch and int(self.account["uid"]) != 0:  # type: ignore[index]
            # RLIMIT_NPROC counts every task of the uid; Linux counts threads as tasks
            nproc = 1
            for n in procs:
                nproc *= int(n)
            limits.append((resource.RLIMIT_NPROC, nproc, nproc))

        def apply() -> None:
            for kind, soft, hard in limits:
                _, current_hard = resource.getrlimit(kind)
                if current_hard != resource.RLIM_INFINITY:
                    hard = min(hard, current_hard)
                    soft = min(soft, hard)
                resource.setrlimit(kind, (soft, hard))

        return apply

    def delete_on_termination(self) -> None:
        specs = [*(self.spec.get("stage_in") or []), *(self.spec.get("stage_out") or [])]
        names = [s["filename"] for s in specs if s.get("delete_on_termination")]
        if not names:
            return

        def delete() -> str:
            for name in names:
                with contextlib.suppress(OSError, ValueError):
                    os.unlink(safe_name(name))  # never follows the last link
            return ""

        self.cancel = False  # clean-up happens on terminate too
        self.as_account(delete)


class StagingFailed(Exception):
    """Stage-in or stage-out failed; the message names the file and the URL."""


def safe_name(name: str) -> str:
    path = Path(name)
    if not name or path.is_absolute() or ".." in path.parts or "\0" in name:
        raise ValueError(f"file name {name!r} leaves the working directory")
    return name


def _username(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3):
        print("usage: supervisor.py <activity folder> [<locked slot fd>]", file=sys.stderr)
        return 2
    folder = Path(argv[1]).resolve()
    if not (folder / JOB_FILE).is_file():
        print(f"no {JOB_FILE} in {folder}", file=sys.stderr)
        return 2
    slot = int(argv[2]) if len(argv) == 3 else None
    if slot is not None:
        os.set_inheritable(slot, False)
    try:
        supervisor = Supervisor(folder, slot)
    except Exception as exc:  # leave a reason behind, not only a vanished process
        record_failure(folder, f"the activity supervisor cannot start: {exc}")
        return 1
    supervisor.run()
    return 0


if __name__ == "__main__":
    # Run as a file with -I -S: make the package importable for staging.
    sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
    sys.exit(main(sys.argv))
