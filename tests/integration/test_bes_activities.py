"""The activity records (backends/store/activities.py, backends/services/) on the real store and real processes:
one backend poll per refresh, no half-written state, cancellation racing the launcher."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import update

from backends.contracts.interfaces import BackendError, BackendUnavailable, InvalidSpec
from backends.contracts.model import JobSpec, JobState
from backends.services.activities import ActivityService
from backends.services.launcher import Launcher
from backends.store.activities import ActivityStore
from backends.store.flags import ServiceFlags
from backends.store.tables.activities import Activity
from backends.store.tables.base import utcnow


class CountingBackend:
    """The real local backend, counting its status calls (a spy, not a mock)."""

    def __init__(self, real):
        self.real = real
        self.name = real.name
        self.status_calls = 0
        self.gate = threading.Event()
        self.gate.set()

    def submit(self, activity_id, job, account):
        self.gate.wait(10)
        return self.real.submit(activity_id, job, account)

    def status(self, ids):
        self.status_calls += 1
        return self.real.status(ids)

    def terminate(self, backend_id):
        return self.real.terminate(backend_id)


@pytest.fixture
def store(runtime):
    return ActivityStore(runtime.db.engine)


@pytest.fixture
def backend(runtime):
    return CountingBackend(runtime.backends["execution"])


def record(store, backend, n=1):
    ids = [f"test-{i}-{time.monotonic_ns()}" for i in range(n)]
    return store.record(ids, backend=backend.name, owner="alice", vo="", jsdl="<x/>")


def test_refresh_asks_the_backend_once_for_many(store, backend):
    records = record(store, backend, 20)
    for r in records:
        ActivityService(store, backend).hand_over(r.id, JobSpec("/bin/true"))
    deadline = time.monotonic() + 10
    while True:
        backend.status_calls = 0
        fresh = ActivityService(store, backend).refresh([store.get(r.id) for r in records])
        assert backend.status_calls == 1
        if all(r.state is JobState.FINISHED for r in fresh.values()):
            break
        assert time.monotonic() < deadline
        time.sleep(0.05)
    # written back: a new reader sees Finished without asking the backend
    assert {store.get(r.id).state for r in records} == {JobState.FINISHED}
    backend.status_calls = 0
    ActivityService(store, backend).refresh([store.get(r.id) for r in records])
    assert backend.status_calls == 0  # terminal records are not polled


def test_a_refused_submit_turns_failed_with_the_reason(store, backend):
    (r,) = record(store, backend)
    job = JobSpec("/bin/true", working_directory="/etc")  # the backend refuses it
    ActivityService(store, backend).hand_over(r.id, job)
    failed = store.get(r.id)
    assert failed.state is JobState.FAILED
    assert failed.reason.startswith("not started: ")
    assert "/etc" in failed.reason


# -- #16.13: handing over again what a dead process left -----------------------------------
ONCE = JobSpec("/bin/sh", ("-c", "echo ran >> ran.txt"))


def expire(runtime, activity_id):
    """The claim of the process that recorded it ran out (that process died)."""
    with runtime.db.session() as session:
        session.execute(
            update(Activity)
            .where(Activity.id == activity_id)
            .values(lease_until=utcnow() - timedelta(seconds=1))
        )


def finished_once(store, backend, activity_id, timeout=15.0):
    service = ActivityService(store, backend)
    deadline = time.monotonic() + timeout
    while (state := service.refresh([store.get(activity_id)])[activity_id].state) in (
        JobState.PENDING,
        JobState.RUNNING,
    ):
        assert time.monotonic() < deadline, state
        time.sleep(0.05)
    assert state is JobState.FINISHED, store.get(activity_id).reason
    ran = backend.real.work_dir / activity_id / "work" / "ran.txt"
    assert ran.read_text() == "ran\n"  # exactly once


def test_a_job_submitted_before_the_crash_is_found_not_run_twice(store, backend, runtime):
    """The window: backend.submit done, the gateway killed before the backend id was
    written. Another process takes the record once its claim ran out and hands it over
    again: the job is found (same backend id), never started a second time."""
    dead = ActivityService(store, backend)
    (r,) = dead.record([ONCE], owner="alice", vo="", jsdl="<x/>", account=None)
    assert backend.real.submit(r.id, ONCE, None) == r.id  # ... and then kill -9
    assert store.get(r.id).backend_id == ""
    alive = ActivityService(store, backend)
    assert alive.unclaimed() == []  # the dead one's claim still holds
    expire(runtime, r.id)
    (launch,) = alive.unclaimed()
    assert launch == (r.id, ONCE, None)
    assert ActivityService(store, backend).unclaimed() == []  # taken by one process only
    alive.hand_over(*launch)
    assert store.get(r.id).backend_id == r.id
    finished_once(store, backend, r.id)


def test_a_half_submitted_job_is_completed_and_runs(store, backend, runtime):
    """Killed inside submit (its folder made, no job file yet): completed, run once."""
    dead = ActivityService(store, backend)
    (r,) = dead.record([ONCE], owner="alice", vo="", jsdl="<x/>", account=None)
    backend.real.work_dir.mkdir(parents=True, exist_ok=True)
    (backend.real.work_dir / r.id).mkdir(mode=0o711)
    expire(runtime, r.id)
    alive = ActivityService(store, backend)
    alive.hand_over(*alive.unclaimed()[0])
    finished_once(store, backend, r.id)


def test_a_new_launcher_hands_over_what_a_dead_process_left(store, backend, runtime):
    """At start (and while it runs) a launcher takes the records of a dead process; the
    live process's own records are renewed, not taken; a stale record with a launch is
    never failed as an orphan."""
    dead = ActivityService(store, backend)
    left = dead.record([ONCE, ONCE], owner="alice", vo="", jsdl="<x/>", account=None)
    for r in left:
        expire(runtime, r.id)
        with runtime.db.session() as session:  # long ago: past ORPHAN_AFTER too
            session.execute(
                update(Activity)
                .where(Activity.id == r.id)
                .values(updated_at=utcnow() - timedelta(hours=1))
            )
    fresh = ActivityService(store, backend).refresh([store.get(r.id) for r in left])
    assert {f.state for f in fresh.values()} == {JobState.PENDING}
    launcher = Launcher(ActivityService(store, backend), workers=1)
    try:
        for r in left:
            finished_once(store, backend, r.id)
    finally:
        launcher.close()


def test_cancelled_while_waiting_is_never_started(store, backend):
    (r,) = record(store, backend)
    assert store.cancel_waiting(r.id, "terminated by alice")
    ActivityService(store, backend).hand_over(r.id, JobSpec("/bin/sleep", ("30",)))
    cancelled = store.get(r.id)
    assert cancelled.state is JobState.CANCELLED and cancelled.backend_id == ""
    assert not (backend.real.work_dir / r.id).exists()


def test_cancel_racing_the_backend_stops_the_started_job(store, backend):
    (r,) = record(store, backend)
    backend.gate.clear()  # the backend is slow to submit
    worker = threading.Thread(
        target=ActivityService(store, backend).hand_over,
        args=(r.id, JobSpec("/bin/sleep", ("30",))),
    )
    worker.start()
    time.sleep(0.1)
    assert store.cancel_waiting(r.id, "terminated by alice")
    backend.gate.set()
    worker.join(10)
    final = store.get(r.id)
    assert final.state is JobState.CANCELLED
    assert final.backend_id == r.id  # where it ran is kept
    status = backend.real.status([r.id])[r.id]
    assert status.state is JobState.CANCELLED


def test_an_orphaned_record_turns_failed(store, backend, runtime):
    (r,) = record(store, backend)
    with runtime.db.session() as session:
        session.execute(
            update(Activity)
            .where(Activity.id == r.id)
            .values(updated_at=utcnow() - timedelta(hours=1))
        )
    fresh = ActivityService(store, backend).refresh([store.get(r.id)])[r.id]
    assert fresh.state is JobState.FAILED
    assert "never reached the execution backend" in fresh.reason


def test_the_launcher_is_bounded_and_finishes_what_it_accepted(store, backend):
    records = record(store, backend, 6)
    launcher = Launcher(ActivityService(store, backend), workers=1, capacity=2)
    backend.gate.clear()
    started = threading.Event()

    def start_all():
        launcher.start([(r.id, JobSpec("/bin/true"), None) for r in records])
        started.set()

    threading.Thread(target=start_all).start()
    assert not started.wait(0.3)  # blocked: two waiting, no room for more
    backend.gate.set()
    assert started.wait(10)
    launcher.close()
    assert all(store.get(r.id).backend_id for r in records)


def test_service_flags_first_writer_wins(runtime):
    flags = ServiceFlags(runtime.db.engine)
    assert flags.setdefault("x", "first") == "first"
    assert flags.setdefault("x", "second") == "first"
    flags.set("x", "third")
    assert flags.get("x") == "third"


class BatchingBackend(CountingBackend):
    """The real local backend behind a ``submit_many`` of its own, as a batch system has
    (it counts its calls; jobs whose executable is "/nonexistent" are refused)."""

    def __init__(self, real, fault=BackendError):
        super().__init__(real)
        self.batches: list[list[str]] = []
        self.fault = fault

    def submit_many(self, jobs, account):
        self.gate.wait(10)
        self.batches.append([activity_id for activity_id, _ in jobs])
        if any(job.executable == "/nonexistent" for _, job in jobs):
            raise self.fault("no such program: /nonexistent")
        return [self.real.submit(activity_id, job, account) for activity_id, job in jobs]

    def submit(self, activity_id, job, account):
        if job.executable == "/nonexistent":
            raise InvalidSpec("no such program: /nonexistent")
        return super().submit(activity_id, job, account)


def launch_while_busy(store, backend, jobs):
    """One launch holds the backend; the others arrive meanwhile, one request each."""
    records = record(store, backend, 1 + len(jobs))
    launcher = Launcher(ActivityService(store, backend), workers=2, batch=50, batch_window=0.5)
    backend.gate.clear()
    launcher.start([(records[0].id, JobSpec("/bin/true"), None)])
    deadline = time.monotonic() + 10
    while not launcher._in_flight and time.monotonic() < deadline:
        time.sleep(0.01)
    for r, job in zip(records[1:], jobs, strict=True):
        launcher.start([(r.id, job, None)])
    backend.gate.set()
    launcher.close()
    return records, launcher


def test_launches_arriving_while_one_is_in_flight_go_together(store, runtime):
    backend = BatchingBackend(runtime.backends["execution"])
    records, launcher = launch_while_busy(store, backend, [JobSpec("/bin/true")] * 6)
    assert launcher.batches == 2  # the first alone, the six that waited in one call
    assert backend.batches == [[r.id for r in records[1:]]]
    handed = [store.get(r.id) for r in records]
    assert all(r.backend_id and r.state is JobState.PENDING for r in handed)
    assert len({r.backend_id for r in handed}) == len(records)


def test_a_refused_batch_is_handed_over_request_by_request(store, runtime):
    backend = BatchingBackend(runtime.backends["execution"])
    jobs = [JobSpec("/bin/true"), JobSpec("/nonexistent"), JobSpec("/bin/true")]
    records, _ = launch_while_busy(store, backend, jobs)
    good, bad, other = (store.get(r.id) for r in records[1:])
    assert good.backend_id and other.backend_id  # another request's bad job fails only it
    assert bad.state is JobState.FAILED and not bad.backend_id
    assert bad.reason == "not started: no such program: /nonexistent"


def test_an_unreachable_backend_fails_the_whole_batch_at_once(store, runtime):
    backend = BatchingBackend(runtime.backends["execution"], fault=BackendUnavailable)
    jobs = [JobSpec("/bin/true"), JobSpec("/nonexistent")]
    records, _ = launch_while_busy(store, backend, jobs)
    assert len(backend.batches) == 1  # not retried one by one: alone they fail the same
    for r in records[1:]:
        failed = store.get(r.id)
        assert failed.state is JobState.FAILED
        assert failed.reason == "not started: no such program: /nonexistent"


def test_a_sweep_refused_fails_all_its_points(store, runtime):
    backend = BatchingBackend(runtime.backends["execution"])
    records = record(store, backend, 3)
    launcher = Launcher(ActivityService(store, backend), workers=1)
    jobs = [JobSpec("/bin/true"), JobSpec("/nonexistent"), JobSpec("/bin/true")]
    launcher.start([(r.id, job, None) for r, job in zip(records, jobs, strict=True)])
    launcher.close()
    assert backend.batches == [[r.id for r in records]]  # one request: all or nothing
    assert {store.get(r.id).state for r in records} == {JobState.FAILED}


def test_cancel_racing_a_batch_stops_only_that_job(store, runtime):
    backend = BatchingBackend(runtime.backends["execution"])
    records = record(store, backend, 3)
    backend.gate.clear()
    worker = threading.Thread(
        target=ActivityService(store, backend).hand_over_many,
        args=([(r.id, JobSpec("/bin/sleep", ("30",)), None) for r in records],),
    )
    worker.start()
    time.sleep(0.1)
    assert store.cancel_waiting(records[1].id, "terminated by alice")
    backend.gate.set()
    worker.join(10)
    kept, cancelled, other = (store.get(r.id) for r in records)
    assert cancelled.state is JobState.CANCELLED and cancelled.backend_id == records[1].id
    assert backend.real.status([records[1].id])[records[1].id].state is JobState.CANCELLED
    for r in (kept, other):
        assert r.state is JobState.PENDING and r.backend_id == r.id
        ActivityService(store, backend).terminate(r, "alice")


def test_concurrent_records_commit_together_and_fail_alone(store, backend):
    """Group commit: requests recording at once share transactions; one request whose
    rows cannot be written (a duplicate id) gets its own error, the others are stored."""
    (existing,) = record(store, backend)
    ids = [[f"group-{n}-{i}-{time.monotonic_ns()}" for i in range(3)] for n in range(12)]
    ids[5][1] = existing.id  # this request (a sweep of three) must fail as a whole
    errors: dict[int, Exception] = {}
    barrier = threading.Barrier(len(ids))

    def one(n):
        barrier.wait()
        try:
            store.record(ids[n], backend=backend.name, owner="alice", vo="", jsdl="<x/>")
        except Exception as exc:
            errors[n] = exc

    threads = [threading.Thread(target=one, args=(n,)) for n in range(len(ids))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert list(errors) == [5]
    assert store.get(ids[5][0]) is None and store.get(ids[5][2]) is None
    stored = store.get_many(i for n, group in enumerate(ids) if n != 5 for i in group)
    assert len(stored) == 33 and {r.state for r in stored.values()} == {JobState.PENDING}
