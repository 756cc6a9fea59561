"""Local execution backend: submit rate and one status() call for 1000 activities.

Figures, each beside a baseline from the same run:
- submit() per second (into the run queue), beside spawning and reaping ``/bin/true``
  with subprocess per second (what any process-starting backend pays at least);
- one status() call for 1000 activities, beside 1000 status() calls of one id each,
  both on a fresh backend instance (nothing cached, as after a gateway restart), and the
  same single call again on a warm instance (final states cached).

Run: ``.venv/bin/python benchmarks/bench_local_execution.py`` (about a minute; it starts
real supervisors and jobs, and cleans up after itself).
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from backends.contracts.interfaces import BackendContext, InvalidState
from backends.contracts.model import JobSpec, JobState
from backends.execution.local.backend import LocalExecutionBackend

SLOTS = 4
FINISHED = 200
TOTAL = 1000
SUBMITS = 500


def backend(root: Path) -> LocalExecutionBackend:
    options = SimpleNamespace(work_dir=str(root / "activities"), max_running=SLOTS)
    return LocalExecutionBackend(BackendContext(None, root, options))


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="xg-bench-"))
    root.chmod(0o711)
    try:
        run(root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def run(root: Path) -> None:
    gateway = backend(root)
    # 200 activities that really ran to the end
    finished = [gateway.submit(uuid.uuid4().hex, JobSpec("true"), None) for _ in range(FINISHED)]
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if all(s.state.terminal for s in gateway.status(finished).values()):
            break
        time.sleep(0.2)
    # every slot busy, the rest queued
    blockers = [
        gateway.submit(uuid.uuid4().hex, JobSpec("sleep", ("120",)), None) for _ in range(SLOTS)
    ]
    while not all(s.state is JobState.RUNNING for s in gateway.status(blockers).values()):
        time.sleep(0.05)

    started = time.perf_counter()
    queued = [gateway.submit(uuid.uuid4().hex, JobSpec("true"), None) for _ in range(SUBMITS)]
    submit_rate = SUBMITS / (time.perf_counter() - started)

    started = time.perf_counter()
    for _ in range(SUBMITS):
        subprocess.Popen(["/bin/true"]).wait()
    spawn_rate = SUBMITS / (time.perf_counter() - started)

    extra = TOTAL - FINISHED - SLOTS - SUBMITS
    queued += [gateway.submit(uuid.uuid4().hex, JobSpec("true"), None) for _ in range(extra)]
    ids = finished + blockers + queued
    assert len(ids) == TOTAL

    cold = backend(root)
    started = time.perf_counter()
    answer = cold.status(ids)
    one_call = time.perf_counter() - started
    assert len(answer) == TOTAL

    started = time.perf_counter()
    answer = cold.status(ids)
    warm_call = time.perf_counter() - started

    single = backend(root)
    started = time.perf_counter()
    for activity in ids:
        single.status([activity])
    single_calls = time.perf_counter() - started

    counts = {state.value: 0 for state in JobState}
    for status in answer.values():
        counts[status.state.value] += 1
    print(f"activities: {TOTAL} ({', '.join(f'{k} {v}' for k, v in counts.items() if v)})")
    print(f"submit():                      {submit_rate:8.0f} /s")
    ratio = submit_rate / spawn_rate
    print(f"  baseline Popen(true)+wait:   {spawn_rate:8.0f} /s   (ratio {ratio:.2f}x)")
    print(f"status() of {TOTAL}, one call:     {one_call * 1000:8.1f} ms (fresh instance)")
    print(f"  same call, warm instance:    {warm_call * 1000:8.1f} ms")
    ratio = single_calls / one_call
    print(
        f"  baseline {TOTAL} single calls:   {single_calls * 1000:8.1f} ms   (ratio {ratio:.1f}x)"
    )

    for activity, status in gateway.status(blockers + queued).items():
        if not status.state.terminal:
            with contextlib.suppress(InvalidState):  # it may have ended meanwhile
                gateway.terminate(activity)


if __name__ == "__main__":
    main()
