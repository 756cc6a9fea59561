"""Accounting and audit, append-only: every decision, execution and data access.

Writes are cheap for the caller: :meth:`AuditWriter.record` (and :meth:`AuditWriter.write`,
which decide() calls with the row as stored) appends to an in-memory queue, and one
background thread inserts what has gathered in batches (every ``vo.audit_flush_seconds``,
or at once past :attr:`AuditWriter.BATCH`), so decide() never waits for the database.
``close()`` flushes what is left. The cost: records of the last flush interval are lost if
the process is killed hard. Nothing here updates or deletes a row; on PostgreSQL a trigger
refuses UPDATE and DELETE of ``audit_records`` outright.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, select

from backends.contracts.model import Principal, Resource
from backends.store.tables.vo import AuditRecord
from backends.vo.sessions import Sessions

log = logging.getLogger("xtreemgate.audit")
CATEGORIES = ("decision", "execution", "data")


@dataclass(frozen=True)
class Usage:
    vo: str
    category: str
    action: str
    unit: str
    count: int
    quantity: float


_COLUMNS = (
    "at",
    "category",
    "principal",
    "vo",
    "action",
    "resource_kind",
    "resource_id",
    "outcome",
    "reason",
    "quantity",
    "unit",
)


def _values(entry: tuple, sqlite: bool) -> tuple:
    at, category, principal, vo, action, kind, rid, outcome, reason, quantity, unit = entry
    when = datetime.fromtimestamp(at, UTC)
    return (
        # SQLite stores what SQLAlchemy's DATETIME reads back (UTC, no zone suffix)
        when.strftime("%Y-%m-%d %H:%M:%S.%f") if sqlite else when,
        category,
        principal[:255],
        vo[:128],
        action[:64],
        kind[:64],
        rid[:255],
        outcome[:16],
        reason[:1024],
        float(quantity),
        unit[:32],
    )


class AuditWriter:
    BATCH = 1000
    MAX_QUEUE = 200_000  # beyond this the oldest unwritten records are dropped, and logged

    def __init__(self, db: Sessions, flush_seconds: float) -> None:
        self.db = db
        self.flush_seconds = flush_seconds
        self._queue: collections.deque[tuple] = collections.deque()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._flush_lock = threading.Lock()
        self.dropped = 0
        self._thread = threading.Thread(target=self._run, name="xtreemgate-audit", daemon=True)
        self._thread.start()

    def record(
        self,
        category: str,
        principal: Principal | str,
        action: str,
        resource: Resource | None = None,
        *,
        vo: str = "",
        outcome: str = "ok",
        reason: str = "",
        quantity: float = 0.0,
        unit: str = "",
    ) -> None:
        """One record of an execution ("execution") or data access ("data"), e.g.
        record("execution", p, "run", Resource("activity", id, vo="cms"),
        quantity=cpu_seconds, unit="cpu-s"); the VO is the resource's unless named."""
        resource = resource or Resource("")
        self.write(
            category,
            principal if isinstance(principal, str) else principal.name,
            action,
            vo or resource.vo,
            resource.kind,
            resource.id,
            outcome,
            reason,
            quantity,
            unit,
        )

    def write(
        self,
        category: str,
        principal: str,
        action: str,
        vo: str,
        resource_kind: str,
        resource_id: str,
        outcome: str,
        reason: str,
        quantity: float = 0.0,
        unit: str = "",
    ) -> None:
        """Queue one row as it is stored; decide() calls this directly (an append, no more)."""
        if len(self._queue) >= self.MAX_QUEUE:
            self._queue.popleft()
            self.dropped += 1
        # A bare tuple: the caller (decide) pays for an append, the writer for the rest.
        self._queue.append(
            (
                time.time(),
                category,
                principal,
                vo,
                action,
                resource_kind,
                resource_id,
                outcome,
                reason,
                quantity,
                unit,
            )
        )
        if len(self._queue) >= self.BATCH:
            self._wake.set()

    def flush(self) -> int:
        """Write everything queued now; returns how many rows were written."""
        written = 0
        with self._flush_lock:
            while self._queue:
                batch = []
                while self._queue and len(batch) < self.BATCH:
                    batch.append(self._queue.popleft())
                try:
                    self._insert(batch)
                except Exception:
                    log.exception("audit batch of %d records not written; retrying", len(batch))
                    self._queue.extendleft(reversed(batch))
                    return written
                written += len(batch)
        return written

    def _insert(self, batch: list[tuple]) -> None:
        """One executemany at the driver: SQLAlchemy's per-row parameter processing would
        cost more than the insert itself (this runs beside decide(), under the GIL)."""
        engine = self.db.engine
        sqlite = engine.dialect.name == "sqlite"
        mark = "?" if engine.dialect.paramstyle == "qmark" else "%s"
        sql = f"INSERT INTO audit_records ({', '.join(_COLUMNS)}) VALUES ({', '.join([mark] * len(_COLUMNS))})"  # noqa: S608, E501 - fixed column names
        rows = [_values(entry, sqlite) for entry in batch]
        with engine.begin() as conn:
            conn.exec_driver_sql(sql, rows)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.flush_seconds)
            self._wake.clear()
            self.flush()

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=10)
        self.flush()

    # -- reading -------------------------------------------------------------------------
    def usage(
        self, vo: str, since: datetime | None = None, until: datetime | None = None
    ) -> list[Usage]:
        self.flush()
        query = (
            select(
                AuditRecord.category,
                AuditRecord.action,
                AuditRecord.unit,
                func.count(),
                func.coalesce(func.sum(AuditRecord.quantity), 0.0),
            )
            .where(AuditRecord.vo == vo, AuditRecord.outcome != "deny")
            .group_by(AuditRecord.category, AuditRecord.action, AuditRecord.unit)
            .order_by(AuditRecord.category, AuditRecord.action, AuditRecord.unit)
        )
        if since is not None:
            query = query.where(AuditRecord.at >= since)
        if until is not None:
            query = query.where(AuditRecord.at < until)
        with self.db.session() as session:
            return [
                Usage(vo, c, a, u, int(n), float(q)) for c, a, u, n, q in session.execute(query)
            ]

    def records(
        self,
        *,
        vo: str | None = None,
        principal: str | None = None,
        limit: int = 100,
        before_id: int | None = None,
    ) -> list[AuditRecord]:
        self.flush()
        query = select(AuditRecord).order_by(AuditRecord.id.desc()).limit(limit)
        if vo is not None:
            query = query.where(AuditRecord.vo == vo)
        if principal is not None:
            query = query.where(AuditRecord.principal == principal)
        if before_id is not None:
            query = query.where(AuditRecord.id < before_id)
        with self.db.session() as session:
            return list(session.scalars(query))
