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
import uuid
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session, sessionmaker

from backends.interfaces import BackendError, ExecutionBackend, InvalidState
from backends.model import JobSpec, JobState, JobStatus, LocalAccount
from backends.store.models import Activity, ServiceFlag, utcnow

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


def new_activity_id() -> str:
    return str(uuid.uuid4())


class ActivityStore:
    """Reads and writes activity rows; one instance per gateway process."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)

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
        with self._session() as session:
            session.execute(insert(Activity), rows)  # Core: one executemany, no ORM flush
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
        with self._sessions() as session:
            current = session.execute(
                select(Activity.state, Activity.backend_id).where(Activity.id == activity_id)
            ).first()
        if current is None or current.state != JobState.PENDING.value or current.backend_id:
            return
        waiting = (
            (Activity.id == activity_id)
            & (Activity.state == JobState.PENDING.value)
            & (Activity.backend_id == "")
        )
        try:
            backend_id = backend.submit(activity_id, job, account)
        except Exception as exc:
            reason = str(exc) if isinstance(exc, BackendError) else f"{type(exc).__name__}: {exc}"
            with self._session() as session:
                session.execute(
                    update(Activity)
                    .where(waiting)
                    .values(
                        state=JobState.FAILED.value,
                        reason=f"not started: {reason}",
                        updated_at=utcnow(),
                    )
                )
            return
        with self._session() as session:
            claimed = session.execute(
                update(Activity).where(waiting).values(backend_id=backend_id, updated_at=utcnow())
            ).rowcount
            if not claimed:  # cancelled meanwhile: remember where it ran, then stop it
                session.execute(
                    update(Activity).where(Activity.id == activity_id).values(backend_id=backend_id)
                )
        if not claimed:
            with contextlib.suppress(BackendError):
                backend.terminate(backend_id)

    def hand_over_many(
        self,
        backend: ExecutionBackend,
        launches: Sequence[tuple[str, JobSpec, LocalAccount | None]],
    ) -> None:
        """Like :meth:`hand_over` for activities of one request, in ONE backend call
        (``submit_many``); a refusal fails all of them with the reason."""
        ids = [activity_id for activity_id, _, _ in launches]
        with self._sessions() as session:
            waiting_ids = set(
                session.scalars(
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
        except Exception as exc:
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
        cancelled = []
        with self._session() as session:
            for (activity_id, _, _), backend_id in zip(todo, backend_ids, strict=True):
                claimed = session.execute(
                    update(Activity)
                    .where(
                        (Activity.id == activity_id)
                        & (Activity.state == JobState.PENDING.value)
                        & (Activity.backend_id == "")
                    )
                    .values(backend_id=backend_id, updated_at=utcnow())
                ).rowcount
                if not claimed:
                    session.execute(
                        update(Activity)
                        .where(Activity.id == activity_id)
                        .values(backend_id=backend_id)
                    )
                    cancelled.append(backend_id)
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


class Launcher:
    """Hands recorded activities to the execution backend off the request path.

    CreateActivity answers as soon as the activity is durably recorded Pending (what
    Pending means in BES); a few worker threads then call ``backend.submit``. The queue
    is bounded: when ``capacity`` launches wait, :meth:`start` blocks the caller until
    one is done, so a burst slows clients down instead of growing memory without end.
    """

    def __init__(
        self,
        store: ActivityStore,
        backend: ExecutionBackend,
        *,
        workers: int = 2,
        capacity: int = 10000,
    ) -> None:
        self.store = store
        self.backend = backend
        self._slots = threading.BoundedSemaphore(capacity)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="bes-launch")
        self.closed = False

    def start(self, launches: Sequence[tuple[str, JobSpec, LocalAccount | None]]) -> None:
        """Several launches from one request (a parameter sweep) go to the backend
        together (``submit_many``: one Slurm job array); single ones in parallel."""
        default = ExecutionBackend.submit_many
        together = getattr(type(self.backend), "submit_many", default) is not default
        if together and len(launches) > 1 and len({id(a) for _, _, a in launches}) == 1:
            self._slots.acquire()
            try:
                self._pool.submit(self._run_many, list(launches))
            except RuntimeError:
                self._slots.release()
                raise
            return
        for activity_id, job, account in launches:
            self._slots.acquire()
            try:
                self._pool.submit(self._run, activity_id, job, account)
            except RuntimeError:  # shutting down: the record stays Pending, then orphaned
                self._slots.release()
                raise

    def _run_many(self, launches: list[tuple[str, JobSpec, LocalAccount | None]]) -> None:
        try:
            self.store.hand_over_many(self.backend, launches)
        except Exception:
            log.exception(
                "handing %d activities to the %s backend failed", len(launches), self.backend.name
            )
        finally:
            self._slots.release()

    def _run(self, activity_id: str, job: JobSpec, account: LocalAccount | None) -> None:
        try:
            self.store.hand_over(self.backend, activity_id, job, account)
        except Exception:
            log.exception(
                "handing activity %s to the %s backend failed", activity_id, self.backend.name
            )
        finally:
            self._slots.release()

    def close(self) -> None:
        """Finish the launches already accepted (their clients hold EPRs for them)."""
        self.closed = True
        self._pool.shutdown(wait=True)
