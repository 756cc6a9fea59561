"""Activities handed to the execution backend: the one place that calls its ``submit``,
``terminate`` and ``status`` for a recorded activity, for every job front end (BES, the
job-control API, the portal, and TES next).

The order of writes around each backend call is what keeps state whole: a record is
inserted Pending before the backend is asked, then completed with the backend's id, or
turned Failed with the reason when the backend refuses. The record keeps what to hand
over (the job and the account) and which process is handing it over, under a lease that
process renews while it lives; when it dies before the backend's id is written (kill -9
under load), any process (it too, restarted) takes the records whose lease ran out and
hands them over again. ``ExecutionBackend.submit`` is idempotent per activity id, so a
job the dead process had already started is found, never started twice. Only a record
with nothing to hand over again is turned Failed after ``ORPHAN_AFTER``.
The rows themselves are read and written by :class:`backends.store.activities.ActivityStore`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import uuid
from collections.abc import Iterable, Sequence
from datetime import timedelta

from backends.contracts.interfaces import (
    BackendError,
    BackendUnavailable,
    ExecutionBackend,
    InvalidState,
    PartlySubmitted,
)
from backends.contracts.model import (
    JobSpec,
    JobState,
    JobStatus,
    LocalAccount,
    job_from_plain,
    to_plain,
)
from backends.store.activities import ActivityRecord, ActivityStore, new_activity_id
from backends.store.tables.base import utcnow

# A record still without a backend id after this long, and with nothing to hand over
# again, was never handed over: the process that accepted it stopped before its launcher
# got to it (or is badly overloaded).
ORPHAN_AFTER = timedelta(seconds=600)
# How long a process's claim on the records it hands over holds without renewal.
LEASE = timedelta(seconds=30)

log = logging.getLogger("xtreemgate.activities")

Launch = tuple[str, JobSpec, LocalAccount | None]


class NotTerminable(InvalidState):
    """The activity has ended already (or ended while being terminated); ``state`` is
    the state it is in (BES: CantApplyOperationToCurrentState)."""

    def __init__(self, message: str, state: JobState) -> None:
        super().__init__(message)
        self.state = state


class RefusedBatch(Exception):
    """The backend refused a batch of several requests' activities; nothing was written."""


def _reason(exc: Exception) -> str:
    """Why a backend did not start a job, as the Failed record says it."""
    reason = str(exc) if isinstance(exc, BackendError) else f"{type(exc).__name__}: {exc}"
    return f"not started: {reason}"


class ActivityService:
    """The activity records of one store on one execution backend; one per process."""

    def __init__(
        self, store: ActivityStore, backend: ExecutionBackend, *, lease: timedelta = LEASE
    ) -> None:
        self.store = store
        self.backend = backend
        self.lease = lease
        # who claims records in the store: unique per process lifetime (host, pid, run)
        self.handler = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"[-128:]
        self._busy: set[str] = set()  # ids this process is handing over now
        self._busy_lock = threading.Lock()

    # -- the claim on records being handed over -------------------------------------------
    def _hold(self, ids: Iterable[str]) -> None:
        with self._busy_lock:
            self._busy.update(ids)

    def _release(self, ids: Iterable[str]) -> None:
        with self._busy_lock:
            self._busy.difference_update(ids)

    def record(
        self,
        jobs: Sequence[JobSpec],
        *,
        owner: str,
        vo: str,
        jsdl: str,
        account: LocalAccount | None,
        ids: Sequence[str] = (),
    ) -> list[ActivityRecord]:
        """Record ``jobs`` Pending in one transaction, with what to hand over, claimed by
        this process: until it hands them over (or dies) they are its to hand over."""
        ids = list(ids) or [new_activity_id() for _ in jobs]
        plain_account = to_plain(account)
        launches = [json.dumps({"job": to_plain(j), "account": plain_account}) for j in jobs]
        self._hold(ids)
        try:
            return self.store.record(
                ids,
                backend=self.backend.name,
                owner=owner,
                vo=vo,
                jsdl=jsdl,
                launches=launches,
                handler=self.handler,
                lease_until=utcnow() + self.lease,
            )
        except BaseException:
            self._release(ids)
            raise

    def heartbeat(self) -> None:
        """Renew this process's claim on the records it is handing over."""
        with self._busy_lock:
            busy = list(self._busy)
        if busy:
            self.store.renew(busy, self.handler, utcnow() + self.lease)

    def unclaimed(self, limit: int = 200) -> list[Launch]:
        """Take the records whose process died before handing them over (their claim ran
        out), claimed now by this process: the launches to hand over again. A record
        whose launch cannot be read is turned Failed saying so."""
        won = self.store.take_unclaimed(
            self.backend.name, self.handler, utcnow() + self.lease, limit=limit
        )
        launches: list[Launch] = []
        for activity_id, text in won:
            try:
                data = json.loads(text)
                job = job_from_plain(data["job"])
                account = LocalAccount(**data["account"]) if data["account"] else None
            except (ValueError, TypeError, KeyError) as exc:
                self.store.fail_waiting(
                    [activity_id], f"not started: its recorded launch is unreadable ({exc})"
                )
                continue
            launches.append((activity_id, job, account))
        self._hold(a for a, _, _ in launches)
        if launches:
            log.info(
                "handing %d activities over again (their gateway process stopped first)",
                len(launches),
            )
        return launches

    def submit(
        self,
        job: JobSpec,
        *,
        owner: str,
        vo: str,
        jsdl: str,
        account: LocalAccount | None = None,
        activity_id: str | None = None,
    ) -> ActivityRecord:
        """Record, then hand to the backend at once (no launcher); a refusal leaves a
        Failed record saying why, and raises."""
        activity_id = activity_id or new_activity_id()
        (record,) = self.record(
            [job], owner=owner, vo=vo, jsdl=jsdl, account=account, ids=[activity_id]
        )
        try:
            backend_id = self.backend.submit(activity_id, job, account)
        except Exception as exc:
            self.store.fail_waiting([activity_id], _reason(exc))
            raise
        finally:
            self._release([activity_id])
        self.store.claim(activity_id, backend_id)
        updated = utcnow()
        return ActivityRecord(
            **{**record.__dict__, "backend_id": backend_id, "updated_at": updated}
        )

    def hand_over(
        self, activity_id: str, job: JobSpec, account: LocalAccount | None = None
    ) -> None:
        """Submit a recorded Pending activity, unless it was cancelled in the meantime.

        A refusal turns the record Failed with the backend's reason. A job started for a
        record that was cancelled while the backend worked is terminated again. Handing
        over again a job that was started already finds it (submit is idempotent).
        """
        try:
            if not self.store.waiting([activity_id]):
                return
            try:
                backend_id = self.backend.submit(activity_id, job, account)
            except Exception as exc:
                self.store.fail_waiting([activity_id], _reason(exc))
                return
            if not self.store.claim(activity_id, backend_id):
                with contextlib.suppress(BackendError):
                    self.backend.terminate(backend_id)
        finally:
            self._release([activity_id])

    def hand_over_many(self, launches: Sequence[Launch], *, refusal: bool = True) -> None:
        """Like :meth:`hand_over` for several activities with one account, in ONE backend
        call (``submit_many``) and one transaction. A refusal fails all of them with the
        reason (a parameter sweep is all or nothing) or, with ``refusal=False`` (the
        launcher's batch of several requests), raises :class:`RefusedBatch` having written
        nothing, so that each request is handed over on its own; a backend that cannot be
        reached fails them all either way (alone they would fail the same). A backend that
        started only some (:class:`PartlySubmitted`) gets each handed over on its own."""
        try:
            self._hand_over_many(launches, refusal=refusal)
        finally:
            self._release(a for a, _, _ in launches)

    def _hand_over_many(self, launches: Sequence[Launch], *, refusal: bool) -> None:
        waiting = self.store.waiting([activity_id for activity_id, _, _ in launches])
        todo = [item for item in launches if item[0] in waiting]
        if not todo:
            return
        if len(todo) == 1:
            self.hand_over(*todo[0])
            return
        account = todo[0][2]
        try:
            backend_ids = self.backend.submit_many([(a, j) for a, j, _ in todo], account)
        except PartlySubmitted:
            # some are running: each again on its own (the started ones are found, not
            # started twice; the others are started or fail with their own reason)
            for launch in todo:
                self.hand_over(*launch)
            return
        except Exception as exc:
            if not refusal and not isinstance(exc, BackendUnavailable):
                raise RefusedBatch(str(exc)) from exc
            self.store.fail_waiting([a for a, _, _ in todo], _reason(exc))
            return
        where = dict(zip([a for a, _, _ in todo], backend_ids, strict=True))
        for backend_id in self.store.claim_many(where):
            with contextlib.suppress(BackendError):
                self.backend.terminate(backend_id)

    def terminate(self, record: ActivityRecord, by: str) -> None:
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
            if self.store.cancel_waiting(record.id, reason):
                return  # it never started
            record = self.store.get(record.id) or record  # the launcher just handed it over
            if record.state.terminal or not record.backend_id:
                raise NotTerminable(
                    f"activity {record.id} is already {record.state.value}", record.state
                )
        try:
            self.backend.terminate(record.backend_id)
        except InvalidState as exc:
            raise NotTerminable(f"activity {record.id}: {exc}", record.state) from exc
        self.store.set_status(record.id, JobStatus(JobState.CANCELLED, reason=reason))

    def refresh(self, records: Sequence[ActivityRecord]) -> dict[str, ActivityRecord]:
        """Ask the backend once about every non-terminal record and write what changed.

        Returns the records by id, updated. A backend that cannot be reached leaves the
        records as they were (their last known state), never guessed.
        """
        backend = self.backend
        result = {r.id: r for r in records}
        live = [r for r in records if not r.state.terminal and r.backend == backend.name]
        handed = [r for r in live if r.backend_id]
        now = utcnow()
        changes: dict[str, JobStatus] = {}
        stale = [r.id for r in live if not r.backend_id and now - r.updated_at > ORPHAN_AFTER]
        # a stale record with a launch is handed over again by a live process: never failed
        lost = self.store.unrecoverable(stale) if stale else set()
        for r in live:
            if r.id in lost:
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
            self.store.set_statuses(changes)
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
