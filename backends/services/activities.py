"""Activity records in the SQL store: what every front end (BES, the job-control API)
reads and writes about a job, so that any gateway process, before or after a restart,
tells a client the same thing.

The order of writes is what keeps state whole: a record is inserted Pending before the
backend is asked, then completed with the backend's id, or turned Failed with the reason
when the backend refuses. A record that a crash left without a backend id is turned
Failed by the next refresh, never left Pending for ever.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.orm import Session, sessionmaker

from backends.contracts.interfaces import (
    BackendError,
    BackendUnavailable,
    ExecutionBackend,
    InvalidState,
    PartlySubmitted,
)
from backends.contracts.model import JobSpec, JobState, JobStatus, LocalAccount
from backends.store.tables.activities import Activity, ServiceFlag
from backends.store.tables.base import utcnow

# A record still without a backend id after this long was never handed over: the process
# that accepted it stopped before its launcher got to it (or is badly overloaded).
ORPHAN_AFTER = timedelta(seconds=600)
TERMINAL = tuple(s.value for s in JobState if s.terminal)
log = logging.getLogger("xtreemgate.activities")


@dataclass(frozen=True)
class ActivityRecord:
    id: str
    owner: str
    vo: str
    state: JobState
    substate: str
    exit_code: int | None
    reason: str
    jsdl: str
    backend: str
    backend_id: str
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: Activity) -> ActivityRecord:
        return cls(
            id=row.id,
            owner=row.owner,
            vo=row.vo,
            state=JobState(row.state),
            substate=row.substate,
            exit_code=row.exit_code,
            reason=row.reason,
            jsdl=row.jsdl,
            backend=row.backend,
            backend_id=row.backend_id,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )


def _utc(value: datetime) -> datetime:
    """Core selects bypass the column type on SQLite: make the timestamp aware UTC."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class NotTerminable(InvalidState):
    """The activity has ended already (or ended while being terminated); ``state`` is
    the state it is in (BES: CantApplyOperationToCurrentState)."""

    def __init__(self, message: str, state: JobState) -> None:
        super().__init__(message)
        self.state = state


class _Pending:
    """One request's rows waiting for a group commit."""

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows = rows
        self.done = threading.Event()
        self.error: Exception | None = None


class RefusedBatch(Exception):
    """The backend refused a batch of several requests' activities; nothing was written."""


ACTIVITIES = Activity.__table__


def _waiting(activity_id: str) -> Any:
    """The row of an activity not handed to the backend yet (nor cancelled)."""
    return (
        (ACTIVITIES.c.id == activity_id)
        & (ACTIVITIES.c.state == JobState.PENDING.value)
        & (ACTIVITIES.c.backend_id == "")
    )


def new_activity_id() -> str:
    return str(uuid.uuid4())


class ActivityStore:
    """Reads and writes activity rows; one instance per gateway process."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        # SQLite has one writer at a time and makes the others poll with growing sleeps
        # (1, 2, 5, 10 ms ...): this process's writers queue on a lock instead.
        self._leader = threading.Lock()
        self._group_lock = threading.Lock()
        self._group: list[_Pending] = []
        self._write_lock = (
            threading.Lock() if engine.dialect.name == "sqlite" else contextlib.nullcontext()
        )

    def _commit_together(self, rows: list[dict[str, Any]]) -> None:
        """Insert one request's rows, durably, before returning (group commit).

        Concurrent requests' rows are committed in ONE transaction: the first waiting
        request commits for all that queued up meanwhile, so a burst of CreateActivity
        pays one commit (and one turn at SQLite's single writer) per group instead of one
        per request. Each request's rows stay all or nothing: if a group's transaction
        fails, each request is committed on its own again and gets its own error.
        """
        entry = _Pending(rows)
        with self._group_lock:
            self._group.append(entry)
        while not entry.done.is_set():
            with self._leader:  # one committer at a time; others queue behind it
                if entry.done.is_set():
                    break
                with self._group_lock:
                    group, self._group = self._group, []
                self._commit_group(group)
        if entry.error is not None:
            raise entry.error

    def _commit_group(self, group: list[_Pending]) -> None:
        try:
            with self._writing() as conn:  # Core: one executemany, no ORM flush
                conn.execute(insert(ACTIVITIES), [row for e in group for row in e.rows])
        except Exception as exc:
            if len(group) > 1:
                for entry in group:
                    self._commit_group([entry])
                return
            group[0].error = exc
        for entry in group:
            entry.done.set()

    @contextlib.contextmanager
    def _writing(self) -> Iterator[Any]:
        """A Core transaction for the hot write paths (recording, handing over)."""
        with self._write_lock, self.engine.begin() as conn:
            yield conn

    def _session(self) -> Session:
        return self._sessions.begin()  # type: ignore[return-value]

    # -- reading -----------------------------------------------------------------------
    def get(self, activity_id: str) -> ActivityRecord | None:
        with self._sessions() as session:
            row = session.get(Activity, activity_id)
            return ActivityRecord.of(row) if row else None

    def get_many(
        self, ids: Iterable[str], *, with_documents: bool = True
    ) -> dict[str, ActivityRecord]:
        """Records by id, read with plain column selects (batches of thousands are common:
        no ORM identity map, and the JSDL text only when asked for)."""
        wanted = list(dict.fromkeys(ids))
        columns = [c for c in Activity.__table__.columns if with_documents or c.name != "jsdl"]
        found: dict[str, ActivityRecord] = {}
        with self.engine.connect() as conn:
            for start in range(0, len(wanted), 500):  # bounded IN lists
                chunk = wanted[start : start + 500]
                query = select(*columns).where(Activity.__table__.c.id.in_(chunk))
                for row in conn.execute(query).mappings():
                    found[row["id"]] = ActivityRecord(
                        id=row["id"],
                        owner=row["owner"],
                        vo=row["vo"],
                        state=JobState(row["state"]),
                        substate=row["substate"],
                        exit_code=row["exit_code"],
                        reason=row["reason"],
                        jsdl=row["jsdl"] if with_documents else "",
                        backend=row["backend"],
                        backend_id=row["backend_id"],
                        created_at=_utc(row["created_at"]),
                        updated_at=_utc(row["updated_at"]),
                    )
        return found

    def list(
        self, owner: str | None = None, *, limit: int = 100, offset: int = 0
    ) -> list[ActivityRecord]:
        query = select(Activity).order_by(Activity.created_at.desc(), Activity.id)
        if owner is not None:
            query = query.where(Activity.owner == owner)
        with self._sessions() as session:
            rows = session.scalars(query.limit(limit).offset(offset))
            return [ActivityRecord.of(r) for r in rows]

    def count(self, owner: str | None = None, *, active_only: bool = False) -> int:
        query = select(func.count()).select_from(Activity)
        if owner is not None:
            query = query.where(Activity.owner == owner)
        if active_only:
            query = query.where(Activity.state.not_in(TERMINAL))
        with self._sessions() as session:
            return int(session.scalar(query) or 0)

    # -- writing -----------------------------------------------------------------------
    def submit(
        self,
        backend: ExecutionBackend,
        job: JobSpec,
        *,
        owner: str,
        vo: str,
        jsdl: str,
        account: LocalAccount | None = None,
        activity_id: str | None = None,
    ) -> ActivityRecord:
        """Record, then hand to the backend; a refusal leaves a Failed record saying why."""
        activity_id = activity_id or new_activity_id()
        now = utcnow()
        row = Activity(
            id=activity_id,
            owner=owner,
            vo=vo,
            state=JobState.PENDING.value,
            substate="",
            exit_code=None,
            reason="",
            jsdl=jsdl,
            backend=backend.name,
            backend_id="",
            created_at=now,
            updated_at=now,
        )
        with self._session() as session:
            session.add(row)
        try:
            backend_id = backend.submit(activity_id, job, account)
        except Exception as exc:
            reason = str(exc) if isinstance(exc, BackendError) else f"{type(exc).__name__}: {exc}"
            self._write(activity_id, JobStatus(JobState.FAILED, reason=f"not started: {reason}"))
            raise
        updated = utcnow()
        with self._session() as session:
            session.execute(
                update(Activity)
                .where(Activity.id == activity_id)
                .values(backend_id=backend_id, updated_at=updated)
            )
        record = ActivityRecord.of(row)
        return ActivityRecord(
            **{**record.__dict__, "backend_id": backend_id, "updated_at": updated}
        )

    def record(
        self, ids: Sequence[str], *, backend: str, owner: str, vo: str, jsdl: str
    ) -> list[ActivityRecord]:
        """Record activities Pending, all in one transaction (a sweep is all or nothing)."""
        now = utcnow()
        rows = [
            {
                "id": activity_id,
                "owner": owner,
                "vo": vo,
                "state": JobState.PENDING.value,
                "substate": "",
                "exit_code": None,
                "reason": "",
                "jsdl": jsdl,
                "backend": backend,
                "backend_id": "",
                "created_at": now,
                "updated_at": now,
            }
            for activity_id in ids
        ]
        self._commit_together(rows)
        return [
            ActivityRecord(**{**row, "state": JobState.PENDING})  # type: ignore[arg-type]
            for row in rows
        ]

    def hand_over(
        self,
        backend: ExecutionBackend,
        activity_id: str,
        job: JobSpec,
        account: LocalAccount | None = None,
    ) -> None:
        """Submit a recorded Pending activity, unless it was cancelled in the meantime.

        A refusal turns the record Failed with the backend's reason. A job started for a
        record that was cancelled while the backend worked is terminated again.
        """
        table = ACTIVITIES
        with self.engine.connect() as conn:
            current = conn.execute(
                select(table.c.state, table.c.backend_id).where(table.c.id == activity_id)
            ).first()
        if current is None or current.state != JobState.PENDING.value or current.backend_id:
            return
        try:
            backend_id = backend.submit(activity_id, job, account)
        except Exception as exc:
            reason = str(exc) if isinstance(exc, BackendError) else f"{type(exc).__name__}: {exc}"
            with self._writing() as conn:
                conn.execute(
                    update(table)
                    .where(_waiting(activity_id))
                    .values(
                        state=JobState.FAILED.value,
                        reason=f"not started: {reason}",
                        updated_at=utcnow(),
                    )
                )
            return
        with self._writing() as conn:
            claimed = self._claim(conn, activity_id, backend_id)
        if not claimed:
            with contextlib.suppress(BackendError):
                backend.terminate(backend_id)

    @staticmethod
    def _claim(conn: Any, activity_id: str, backend_id: str) -> bool:
        """Record where a waiting activity runs; False (keeping where it ran) when it was
        cancelled while the backend worked: the caller then stops the job."""
        claimed = conn.execute(
            update(ACTIVITIES)
            .where(_waiting(activity_id))
            .values(backend_id=backend_id, updated_at=utcnow())
        ).rowcount
        if not claimed:
            conn.execute(
                update(ACTIVITIES)
                .where(ACTIVITIES.c.id == activity_id)
                .values(backend_id=backend_id)
            )
        return bool(claimed)

    def hand_over_many(
        self,
        backend: ExecutionBackend,
        launches: Sequence[tuple[str, JobSpec, LocalAccount | None]],
        *,
        refusal: bool = True,
    ) -> None:
        """Like :meth:`hand_over` for several activities with one account, in ONE backend
        call (``submit_many``) and one transaction. A refusal fails all of them with the
        reason (a parameter sweep is all or nothing) or, with ``refusal=False`` (the
        launcher's batch of several requests), raises :class:`RefusedBatch` having written
        nothing, so that each request is handed over on its own; a backend that cannot be
        reached fails them all either way (alone they would fail the same). A backend that
        started only some (:class:`PartlySubmitted`) gets each handed over on its own."""
        ids = [activity_id for activity_id, _, _ in launches]
        with self.engine.connect() as conn:
            waiting_ids = set(
                conn.scalars(
                    select(Activity.id).where(
                        Activity.id.in_(ids)
                        & (Activity.state == JobState.PENDING.value)
                        & (Activity.backend_id == "")
                    )
                )
            )
        todo = [item for item in launches if item[0] in waiting_ids]
        if not todo:
            return
        if len(todo) == 1:
            self.hand_over(backend, *todo[0])
            return
        account = todo[0][2]
        try:
            backend_ids = backend.submit_many([(a, j) for a, j, _ in todo], account)
        except PartlySubmitted:
            # some are running: each again on its own (the started ones are found, not
            # started twice; the others are started or fail with their own reason)
            for launch in todo:
                self.hand_over(backend, *launch)
            return
        except Exception as exc:
            if not refusal and not isinstance(exc, BackendUnavailable):
                raise RefusedBatch(str(exc)) from exc
            reason = str(exc) if isinstance(exc, BackendError) else f"{type(exc).__name__}: {exc}"
            with self._session() as session:
                session.execute(
                    update(Activity)
                    .where(
                        Activity.id.in_([a for a, _, _ in todo])
                        & (Activity.state == JobState.PENDING.value)
                        & (Activity.backend_id == "")
                    )
                    .values(
                        state=JobState.FAILED.value,
                        reason=f"not started: {reason}",
                        updated_at=utcnow(),
                    )
                )
            return
        where = dict(zip([a for a, _, _ in todo], backend_ids, strict=True))
        now = utcnow()
        with self._writing() as conn:  # one statement, executemany: no per-row ORM work
            claimed = conn.execute(
                update(ACTIVITIES)
                .where(
                    (ACTIVITIES.c.id == bindparam("activity"))
                    & (ACTIVITIES.c.state == JobState.PENDING.value)
                    & (ACTIVITIES.c.backend_id == "")
                )
                .values(backend_id=bindparam("job"), updated_at=now),
                [{"activity": a, "job": b} for a, b in where.items()],
            ).rowcount
            cancelled = []
            if claimed != len(where) or not conn.dialect.supports_sane_multi_rowcount:
                # some were cancelled while the backend worked
                rows = conn.execute(
                    select(ACTIVITIES.c.id, ACTIVITIES.c.backend_id).where(
                        ACTIVITIES.c.id.in_(list(where))
                    )
                )
                for activity_id, backend_id in rows:
                    if backend_id != where[activity_id]:
                        self._claim(conn, activity_id, where[activity_id])
                        cancelled.append(where[activity_id])
        for backend_id in cancelled:
            with contextlib.suppress(BackendError):
                backend.terminate(backend_id)

    def cancel_waiting(self, activity_id: str, reason: str) -> bool:
        """Cancel an activity the backend has not received yet; False if it has."""
        with self._session() as session:
            return bool(
                session.execute(
                    update(Activity)
                    .where(
                        (Activity.id == activity_id)
                        & (Activity.state == JobState.PENDING.value)
                        & (Activity.backend_id == "")
                    )
                    .values(state=JobState.CANCELLED.value, reason=reason, updated_at=utcnow())
                ).rowcount
            )

    def terminate(self, backend: ExecutionBackend, record: ActivityRecord, by: str) -> None:
        """Stop an activity for good, for every front end (BES TerminateActivities, the
        portal): one not yet handed to the backend is cancelled in the store (the launcher
        then skips it), a running one is terminated by the backend, then recorded
        Cancelled. Raises :class:`NotTerminable` when it has ended, the backend's
        InvalidState or BackendError when the backend refuses; then nothing is written."""
        reason = f"terminated by {by}"
        if record.state.terminal:
            raise NotTerminable(
                f"activity {record.id} is already {record.state.value}; only Pending or "
                "Running activities can be terminated",
                record.state,
            )
        if not record.backend_id:
            if self.cancel_waiting(record.id, reason):
                return  # it never started
            record = self.get(record.id) or record  # the launcher just handed it over
            if record.state.terminal or not record.backend_id:
                raise NotTerminable(
                    f"activity {record.id} is already {record.state.value}", record.state
                )
        try:
            backend.terminate(record.backend_id)
        except InvalidState as exc:
            raise NotTerminable(f"activity {record.id}: {exc}", record.state) from exc
        self.set_status(record.id, JobStatus(JobState.CANCELLED, reason=reason))

    def _write(self, activity_id: str, status: JobStatus, session: Session | None = None) -> None:
        values = {
            "state": status.state.value,
            "substate": status.substate,
            "exit_code": status.exit_code,
            "reason": status.reason,
            "updated_at": utcnow(),
        }
        statement = update(Activity).where(Activity.id == activity_id).values(**values)
        if session is not None:
            session.execute(statement)
            return
        with self._session() as own:
            own.execute(statement)

    def set_status(self, activity_id: str, status: JobStatus) -> None:
        self._write(activity_id, status)

    def refresh(
        self, backend: ExecutionBackend, records: Sequence[ActivityRecord]
    ) -> dict[str, ActivityRecord]:
        """Ask the backend once about every non-terminal record and write what changed.

        Returns the records by id, updated. A backend that cannot be reached leaves the
        records as they were (their last known state), never guessed.
        """
        result = {r.id: r for r in records}
        live = [r for r in records if not r.state.terminal and r.backend == backend.name]
        handed = [r for r in live if r.backend_id]
        now = utcnow()
        changes: dict[str, JobStatus] = {}
        for r in live:
            if not r.backend_id and now - r.updated_at > ORPHAN_AFTER:
                changes[r.id] = JobStatus(
                    JobState.FAILED,
                    reason=(
                        "the job never reached the execution backend: the gateway process "
                        "that accepted it stopped (or was overloaded) before handing it over"
                    ),
                )
        if handed:
            statuses = backend.status([r.backend_id for r in handed])
            for r in handed:
                status = statuses.get(r.backend_id)
                if status is None:
                    status = JobStatus(
                        JobState.FAILED,
                        reason=f"the {backend.name} backend no longer knows job {r.backend_id}",
                    )
                if (status.state, status.substate, status.exit_code, status.reason) != (
                    r.state,
                    r.substate,
                    r.exit_code,
                    r.reason,
                ):
                    changes[r.id] = status
        if changes:
            with self._session() as session:
                for activity_id, status in changes.items():
                    self._write(activity_id, status, session)
            for activity_id, status in changes.items():
                old = result[activity_id]
                result[activity_id] = ActivityRecord(
                    **{
                        **old.__dict__,
                        "state": status.state,
                        "substate": status.substate,
                        "exit_code": status.exit_code,
                        "reason": status.reason,
                        "updated_at": now,
                    }
                )
        return result


class ServiceFlags:
    """Named values shared by all gateway processes through the store."""

    def __init__(self, engine: object) -> None:
        self._sessions = sessionmaker(engine, expire_on_commit=False)  # type: ignore[call-overload]

    def get(self, name: str, default: str = "") -> str:
        with self._sessions() as session:
            row = session.get(ServiceFlag, name)
            return row.value if row else default

    def set(self, name: str, value: str) -> None:
        with self._sessions.begin() as session:
            row = session.get(ServiceFlag, name)
            if row is None:
                session.add(ServiceFlag(name=name, value=value, updated_at=utcnow()))
            else:
                row.value, row.updated_at = value, utcnow()

    def setdefault(self, name: str, value: str) -> str:
        """The stored value, storing ``value`` first if there is none (first writer wins)."""
        current = self.get(name)
        if current:
            return current
        try:
            with self._sessions.begin() as session:
                session.add(ServiceFlag(name=name, value=value, updated_at=utcnow()))
        except Exception:  # another process inserted it first: read the winner
            return self.get(name)
        return value


Launch = tuple[str, JobSpec, LocalAccount | None]


class Launcher:
    """Hands recorded activities to the execution backend off the request path.

    CreateActivity answers as soon as the activity is durably recorded Pending (what
    Pending means in BES); a few worker threads then hand activities to the backend. The
    queue is bounded: when ``capacity`` requests' launches wait, :meth:`start` blocks the
    caller until one is done, so a burst slows clients down instead of growing memory
    without end.

    Micro-batching, for a backend that submits several jobs as one unit (``submit_many``:
    Slurm makes one job array of jobs with the same resources): launches that arrive
    while another submission is in flight wait up to ``batch_window`` seconds and go to
    the backend together, at most ``batch`` of them, in one backend call and one store
    transaction. A submission costs a batch system one client process and one controller
    round trip whatever its size, so under load this turns N submissions into one, and
    when the gateway is idle a launch goes at once. If the backend refuses a batch made
    of several requests' launches (other than being unreachable), each request is handed
    over again on its own: one request's bad job never fails another's.
    """

    def __init__(
        self,
        store: ActivityStore,
        backend: ExecutionBackend,
        *,
        workers: int = 2,
        capacity: int = 10000,
        batch: int = 100,
        batch_window: float = 0.02,
    ) -> None:
        self.store = store
        self.backend = backend
        default = ExecutionBackend.submit_many
        self.together = getattr(type(backend), "submit_many", default) is not default
        self.batch = max(1, batch) if self.together else 1
        self.batch_window = batch_window
        self._slots = threading.BoundedSemaphore(capacity)
        self._queue: deque[list[Launch]] = deque()
        self._ready = threading.Condition()
        self._in_flight = 0
        self.batches = 0  # backend hand-overs so far (for the tests and the benchmark)
        self.closed = False
        self._threads = [
            threading.Thread(target=self._work, name=f"bes-launch_{i}", daemon=True)
            for i in range(workers)
        ]
        for thread in self._threads:
            thread.start()

    def start(self, launches: Sequence[Launch]) -> None:
        """Queue the launches of one request. Several (a parameter sweep) with one
        account go to the backend together, in one call; otherwise one by one."""
        if not launches:
            return
        accounts = {a for _, _, a in launches}
        units = [list(launches)] if self.together and len(accounts) == 1 else []
        units = units or [[launch] for launch in launches]
        for unit in units:
            self._slots.acquire()
            with self._ready:
                if self.closed:  # shutting down: the record stays Pending, then orphaned
                    self._slots.release()
                    raise RuntimeError("the launcher is closed")
                self._queue.append(unit)
                self._ready.notify()

    def _take(self) -> list[list[Launch]] | None:
        """The next batch: requests' launches with the same account, up to ``batch``."""
        with self._ready:
            while not self._queue:
                if self.closed:
                    return None
                self._ready.wait()
            if self.batch > 1 and self._in_flight and not self.closed:
                # another submission is under way: collect what arrives meanwhile
                deadline = time.monotonic() + self.batch_window
                while sum(len(u) for u in self._queue) < self.batch:
                    left = deadline - time.monotonic()
                    if left <= 0 or not self._ready.wait(left):
                        break
                if not self._queue:  # another worker took them
                    return []
            first = self._queue.popleft()
            units, size = [first], len(first)
            account = first[0][2]
            kept: deque[list[Launch]] = deque()
            while self._queue and size < self.batch:
                unit = self._queue.popleft()
                if unit[0][2] == account and size + len(unit) <= self.batch:
                    units.append(unit)
                    size += len(unit)
                else:
                    kept.append(unit)
            self._queue.extendleft(reversed(kept))
            self._in_flight += 1
            self.batches += 1
            return units

    def _work(self) -> None:
        while True:
            units = self._take()
            if units is None:
                return
            if not units:
                continue
            try:
                self._hand_over(units)
            finally:
                with self._ready:
                    self._in_flight -= 1
                for _ in units:
                    self._slots.release()

    def _hand_over(self, units: list[list[Launch]]) -> None:
        launches = [launch for unit in units for launch in unit]
        try:
            if len(launches) == 1:
                self.store.hand_over(self.backend, *launches[0])
            else:
                self.store.hand_over_many(self.backend, launches, refusal=len(units) == 1)
        except RefusedBatch:  # several requests' launches: each on its own again
            for unit in units:
                self._hand_over([unit])
        except Exception:
            log.exception(
                "handing %d activities to the %s backend failed", len(launches), self.backend.name
            )

    def close(self) -> None:
        """Finish the launches already accepted (their clients hold EPRs for them)."""
        with self._ready:
            self.closed = True
            self._ready.notify_all()
        for thread in self._threads:
            thread.join()
