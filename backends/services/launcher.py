"""Handing recorded activities to the execution backend off the request path, in a few
worker threads per gateway process, with micro-batching for batch systems."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Sequence

from backends.contracts.interfaces import ExecutionBackend
from backends.contracts.model import JobSpec, LocalAccount
from backends.services.activities import ActivityService, Launch, RefusedBatch

log = logging.getLogger("xtreemgate.activities")


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

    A keeper thread renews this process's claim on the activities it holds every third
    of the lease and, from the start on, takes the activities whose process died before
    handing them over (their claim ran out) and queues them again, each on its own.
    """

    def __init__(
        self,
        service: ActivityService,
        *,
        workers: int = 2,
        capacity: int = 10000,
        batch: int = 100,
        batch_window: float = 0.02,
    ) -> None:
        self.service = service
        self.backend = service.backend
        default = ExecutionBackend.submit_many
        self.together = getattr(type(self.backend), "submit_many", default) is not default
        self.batch = max(1, batch) if self.together else 1
        self.batch_window = batch_window
        self.workers = workers
        self._slots = threading.BoundedSemaphore(capacity)
        self._queue: deque[list[Launch]] = deque()
        self._ready = threading.Condition()
        self._in_flight = 0
        self.batches = 0  # backend hand-overs so far (for the tests and the benchmark)
        self.closed = True
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()
        self.open()

    def open(self) -> None:
        """Start the worker threads; again after :meth:`close` (a runtime served again)."""
        with self._ready:
            if not self.closed:
                return
            self.closed = False
            self._stopping.clear()
            self._threads = [
                threading.Thread(target=self._work, name=f"bes-launch_{i}", daemon=True)
                for i in range(self.workers)
            ]
            self._threads.append(
                threading.Thread(target=self._keep, name="bes-handover", daemon=True)
            )
        for thread in self._threads:
            thread.start()

    def accept(
        self,
        jobs: Sequence[JobSpec],
        *,
        owner: str,
        vo: str,
        document: str,
        account: LocalAccount | None,
    ) -> list[str]:
        """Record ``jobs`` Pending (one transaction: a sweep all or nothing), then queue
        them for the backend; returns their activity ids. This is what a front end's
        "create" is once it has parsed, authorised and admitted the jobs: a refusal by
        the backend later turns an activity Failed with the reason."""
        records = self.service.record(jobs, owner=owner, vo=vo, jsdl=document, account=account)
        created = [r.id for r in records]
        self.start([(i, job, account) for i, job in zip(created, jobs, strict=True)])
        return created

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

    def _keep(self) -> None:
        """Renew this process's claims; hand over again what dead processes left."""
        interval = max(0.2, self.service.lease.total_seconds() / 3)
        while True:
            try:
                self.service.heartbeat()
                for launch in self.service.unclaimed():
                    self.start([launch])
            except RuntimeError:  # closed while queueing: the claims run out, others take
                return
            except Exception:
                log.exception("renewing or taking over activity hand-overs failed")
            if self._stopping.wait(interval):
                return

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
                self.service.hand_over(*launches[0])
            else:
                self.service.hand_over_many(launches, refusal=len(units) == 1)
        except RefusedBatch:  # several requests' launches: each on its own again
            for unit in units:
                self._hand_over([unit])
        except Exception:
            log.exception(
                "handing %d activities to the %s backend failed", len(launches), self.backend.name
            )

    def close(self) -> None:
        """Finish the launches already accepted (their clients hold EPRs for them)."""
        self._stopping.set()
        with self._ready:
            self.closed = True
            self._ready.notify_all()
            threads = self._threads
        for thread in threads:
            thread.join()
