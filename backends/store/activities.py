"""Activity rows in the SQL store: what every front end (BES, the job-control API, the
portal) reads and writes about a job, so that any gateway process, before or after a
restart, tells a client the same thing.

Only row operations live here: record Pending, claim a backend id, fail or cancel the
waiting ones, write statuses, read. Asking the execution backend is the job of
:class:`backends.services.activities.ActivityService`, which decides the order of writes
around each backend call.
"""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, bindparam, func, insert, select, update
from sqlalchemy.orm import Session, sessionmaker

from backends.contracts.model import JobState, JobStatus, Resource
from backends.store.tables.activities import Activity
from backends.store.tables.base import utcnow

TERMINAL = tuple(s.value for s in JobState if s.terminal)
ACTIVITIES = Activity.__table__


# The columns a record is made of, and those taken as they are.
_PLAIN = ("id", "owner", "vo", "substate", "exit_code", "reason", "backend", "backend_id")
_COLUMNS = (*_PLAIN, "state", "jsdl", "created_at", "updated_at")


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
        """The record of an ORM row."""
        return cls.of_columns({name: getattr(row, name) for name in _COLUMNS})

    @classmethod
    def of_columns(cls, row: Mapping[str, Any], *, with_document: bool = True) -> ActivityRecord:
        """The record of a row's columns by name (Core selects: batches of thousands)."""
        return cls(
            **{name: row[name] for name in _PLAIN},
            state=JobState(row["state"]),
            jsdl=row["jsdl"] if with_document else "",
            created_at=_utc(row["created_at"]),
            updated_at=_utc(row["updated_at"]),
        )

    def resource(self) -> Resource:
        """What VO policy is asked about for this activity, by every front end."""
        return Resource(kind="activity", id=self.id, owner=self.owner, vo=self.vo)


def _utc(value: datetime) -> datetime:
    """Core selects bypass the column type on SQLite: make the timestamp aware UTC."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class _Pending:
    """One request's rows waiting for a group commit."""

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows = rows
        self.done = threading.Event()
        self.error: Exception | None = None


def _waiting(activity_id: Any) -> Any:
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

    def __init__(self, engine: Engine) -> None:
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
        skipped = {"launch", "handler", "lease_until"} | (set() if with_documents else {"jsdl"})
        columns = [c for c in ACTIVITIES.columns if c.name not in skipped]
        found: dict[str, ActivityRecord] = {}
        with self.engine.connect() as conn:
            for start in range(0, len(wanted), 500):  # bounded IN lists
                chunk = wanted[start : start + 500]
                query = select(*columns).where(ACTIVITIES.c.id.in_(chunk))
                for row in conn.execute(query).mappings():
                    found[row["id"]] = ActivityRecord.of_columns(row, with_document=with_documents)
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

    def waiting(self, ids: Sequence[str]) -> set[str]:
        """Those of ``ids`` still Pending and not handed to a backend (nor cancelled)."""
        with self.engine.connect() as conn:
            return set(
                conn.scalars(
                    select(ACTIVITIES.c.id).where(
                        ACTIVITIES.c.id.in_(list(ids))
                        & (ACTIVITIES.c.state == JobState.PENDING.value)
                        & (ACTIVITIES.c.backend_id == "")
                    )
                )
            )

    # -- writing -----------------------------------------------------------------------
    def record(
        self,
        ids: Sequence[str],
        *,
        backend: str,
        owner: str,
        vo: str,
        jsdl: str,
        launches: Sequence[str] = (),
        handler: str = "",
        lease_until: datetime | None = None,
    ) -> list[ActivityRecord]:
        """Record activities Pending, all in one transaction (a sweep is all or nothing).

        ``launches`` (one per id: what to hand over, as text) claimed by ``handler`` until
        ``lease_until`` let another process hand them over again if this one dies."""
        now = utcnow()
        launches = list(launches) or [""] * len(ids)
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
                "launch": launch,
                "handler": handler,
                "lease_until": lease_until,
            }
            for activity_id, launch in zip(ids, launches, strict=True)
        ]
        self._commit_together(rows)
        own = {"launch", "handler", "lease_until", "state"}
        return [
            ActivityRecord(  # type: ignore[arg-type]
                **{k: v for k, v in row.items() if k not in own}, state=JobState.PENDING
            )
            for row in rows
        ]

    # -- handing over again after a crash --------------------------------------------------
    def renew(self, ids: Iterable[str], handler: str, until: datetime) -> None:
        """Extend ``handler``'s claim on those of ``ids`` it is still handing over."""
        wanted = list(ids)
        with self._writing() as conn:
            for start in range(0, len(wanted), 500):  # bounded IN lists
                conn.execute(
                    update(ACTIVITIES)
                    .where(
                        ACTIVITIES.c.id.in_(wanted[start : start + 500])
                        & (ACTIVITIES.c.handler == handler)
                        & (ACTIVITIES.c.state == JobState.PENDING.value)
                        & (ACTIVITIES.c.backend_id == "")
                    )
                    .values(lease_until=until)
                )

    def take_unclaimed(
        self, backend: str, handler: str, until: datetime, *, limit: int = 200
    ) -> list[tuple[str, str]]:
        """Claim for ``handler`` Pending activities of ``backend`` that no backend has
        received and whose claim ran out (their process died): (id, launch) of each won.
        Each row is taken by one compare-and-set, so two processes never both win it."""
        now = utcnow()
        expired = (
            (ACTIVITIES.c.state == JobState.PENDING.value)
            & (ACTIVITIES.c.backend_id == "")
            & (ACTIVITIES.c.backend == backend)
            & (ACTIVITIES.c.launch != "")
            & (ACTIVITIES.c.lease_until.is_(None) | (ACTIVITIES.c.lease_until < now))
        )
        with self.engine.connect() as conn:
            candidates = list(
                conn.execute(
                    select(ACTIVITIES.c.id, ACTIVITIES.c.launch)
                    .where(expired)
                    .order_by(ACTIVITIES.c.created_at)
                    .limit(limit)
                )
            )
        won = []
        for activity_id, launch in candidates:
            with self._writing() as conn:
                taken = conn.execute(
                    update(ACTIVITIES)
                    .where(expired & (ACTIVITIES.c.id == activity_id))
                    .values(handler=handler, lease_until=until)
                ).rowcount
            if taken:
                won.append((activity_id, launch))
        return won

    def unrecoverable(self, ids: Sequence[str]) -> set[str]:
        """Those of ``ids`` waiting without anything to hand over again (recorded before
        launches were kept, or by a caller that kept none)."""
        with self.engine.connect() as conn:
            return set(
                conn.scalars(
                    select(ACTIVITIES.c.id).where(
                        ACTIVITIES.c.id.in_(list(ids)) & (ACTIVITIES.c.launch == "")
                    )
                )
            )

    def set_backend_id(self, activity_id: str, backend_id: str) -> datetime:
        """Record where an activity runs, whatever its state; returns the update time."""
        updated = utcnow()
        with self._session() as session:
            session.execute(
                update(Activity)
                .where(Activity.id == activity_id)
                .values(backend_id=backend_id, updated_at=updated)
            )
        return updated

    def claim(self, activity_id: str, backend_id: str) -> bool:
        """Record where a waiting activity runs; False (keeping where it ran) when it was
        cancelled while the backend worked: the caller then stops the job."""
        with self._writing() as conn:
            return self._claim(conn, activity_id, backend_id)

    @staticmethod
    def _claim(conn: Any, activity_id: str, backend_id: str) -> bool:
        claimed = conn.execute(
            update(ACTIVITIES)
            .where(_waiting(activity_id))
            .values(backend_id=backend_id, launch="", updated_at=utcnow())
        ).rowcount
        if not claimed:
            before = conn.execute(
                select(ACTIVITIES.c.backend_id).where(ACTIVITIES.c.id == activity_id)
            ).scalar()
            if before == backend_id:  # handed over again: the same job, claimed already
                return True
            conn.execute(  # cancelled meanwhile: keep where it ran, for the caller to stop
                update(ACTIVITIES)
                .where((ACTIVITIES.c.id == activity_id) & (ACTIVITIES.c.backend_id == ""))
                .values(backend_id=backend_id)
            )
        return bool(claimed)

    def claim_many(self, where: Mapping[str, str]) -> list[str]:
        """:meth:`claim` for several activities (activity id -> backend id) in one
        statement; returns the backend ids of those cancelled meanwhile, to be stopped."""
        now = utcnow()
        with self._writing() as conn:  # one statement, executemany: no per-row ORM work
            claimed = conn.execute(
                update(ACTIVITIES)
                .where(_waiting(bindparam("activity")))
                .values(backend_id=bindparam("job"), launch="", updated_at=now),
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
                    mine = where[activity_id]
                    if backend_id != mine and not self._claim(conn, activity_id, mine):
                        cancelled.append(mine)
        return cancelled

    def fail_waiting(self, ids: Sequence[str], reason: str) -> None:
        """Turn Failed, with ``reason``, those of ``ids`` that no backend has received."""
        with self._writing() as conn:
            conn.execute(
                update(ACTIVITIES)
                .where(
                    ACTIVITIES.c.id.in_(list(ids))
                    & (ACTIVITIES.c.state == JobState.PENDING.value)
                    & (ACTIVITIES.c.backend_id == "")
                )
                .values(state=JobState.FAILED.value, reason=reason, launch="", updated_at=utcnow())
            )

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
                    .values(
                        state=JobState.CANCELLED.value,
                        reason=reason,
                        launch="",
                        updated_at=utcnow(),
                    )
                ).rowcount
            )

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

    def set_statuses(self, changes: Mapping[str, JobStatus]) -> None:
        """Write several activities' statuses in one transaction (a refresh's changes)."""
        with self._session() as session:
            for activity_id, status in changes.items():
                self._write(activity_id, status, session)
