"""Concurrent writers against a volume's quota: real processes (multiprocessing, each with
its own backend object on the same POSIX root, as several gateway processes are) and
threads, started together on a barrier. The quota is never exceeded, every writer that
does not fit fails with QuotaExceeded leaving no file and no temp file, writers that fit
together all succeed, and a writer killed mid-write does not keep its reservation.

XtreemFS runs the same code (``backends.storage.directory_volume``); GlusterFS too, with the ledger in
the gateway's state folder (its own ``gluster volume quota`` is only a backstop)."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from backends.contracts.interfaces import BackendContext, InvalidState, QuotaExceeded
from backends.storage import quota as quota_module
from backends.storage.directory_volume import TEMP_MARK
from backends.storage.glusterfs import GlusterStorageBackend
from backends.storage.posix import PosixStorageBackend
from tests.integration.storage_support import (
    gluster_backend,
    glusterd,  # noqa: F401 - the session fixture
    remove_volumes,
    volume_name,
)

MIB = 1024 * 1024
CHUNK = 64 * 1024
SPAWN = multiprocessing.get_context("spawn")  # no fork of a process with threads


def backend(root: Path, state: Path) -> PosixStorageBackend:
    return PosixStorageBackend(BackendContext(None, state, SimpleNamespace(root=str(root))))


def rebuild(kind: str, options: dict[str, str], state: str) -> Any:
    """In a writer process: its own backend object over the same volumes."""
    cls = PosixStorageBackend if kind == "posix" else GlusterStorageBackend
    return cls(BackendContext(None, Path(state), SimpleNamespace(**options)))


def write_one(
    storage: PosixStorageBackend, volume: str, name: str, size: int, declare: bool
) -> str:
    """Write ``size`` bytes (streamed in chunks, or declared up front); what happened."""
    try:
        with storage.open_write(volume, name, size=size if declare else None) as out:
            for _ in range(size // CHUNK):
                out.write(b"x" * CHUNK)
                time.sleep(0)  # let the others interleave
    except QuotaExceeded:
        return "quota"
    except Exception as exc:  # anything else is a bug the test must show
        return f"error: {exc!r}"
    return "ok"


def process_writer(made: tuple[str, dict[str, str], str], volume: str, name: str, size: int,
                   declare: bool, threads: int, barrier: Any, results: Any) -> None:  # fmt: skip
    """One 'gateway process': its own backend, ``threads`` writers in it."""
    storage = rebuild(*made)
    outcome: dict[str, str] = {}

    def run(n: int) -> None:
        outcome[f"{name}-{n}"] = write_one(storage, volume, f"{name}-{n}", size, declare)

    workers = [threading.Thread(target=run, args=(n,)) for n in range(threads)]
    barrier.wait(timeout=60)
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    results.put(outcome)


def killed_writer(root: str, volume: str, size: int, written: Any) -> None:
    """Reserves and writes ``size`` bytes of a bigger file, then dies without cleaning up."""
    storage = backend(Path(root), Path(root).parent / "state-killed")
    with storage.open_write(volume, "killed") as out:
        out.write(b"k" * size)
        written.set()
        time.sleep(120)  # killed here


def race(tmp_path: Path, quota: int, processes: int, threads: int, size: int, declare: bool):
    root = tmp_path / "volumes"
    storage = backend(root, tmp_path / "state")
    # each process has a state folder of its own: POSIX ledgers live beside the volumes
    made = [("posix", {"root": str(root)}, str(tmp_path / f"state-{i}")) for i in range(processes)]
    return storage, *race_on(storage, made, quota, threads, size, declare)


def race_on(storage: Any, made: list, quota: int, threads: int, size: int, declare: bool):
    volume = storage.create_volume(volume_name(), "physics", quota).name
    barrier, results = SPAWN.Barrier(len(made)), SPAWN.Queue()
    procs = [
        SPAWN.Process(
            target=process_writer,
            args=(spec, volume, f"p{i}", size, declare, threads, barrier, results),
        )
        for i, spec in enumerate(made)
    ]
    for proc in procs:
        proc.start()
    outcome: dict[str, str] = {}
    for _ in procs:
        outcome |= results.get(timeout=120)
    for proc in procs:
        proc.join(timeout=30)
        assert proc.exitcode == 0
    return volume, outcome


def check_clean(storage: Any, volume: str, outcome: dict[str, str], size: int):
    """The invariants after a race: what is on the volume is exactly the successful files."""
    assert all(v in ("ok", "quota") for v in outcome.values()), outcome
    done = sorted(k for k, v in outcome.items() if v == "ok")
    files = storage.list_files(volume)
    assert sorted(f.path for f in files) == done  # no failed target, no temp file
    assert all(f.size == size for f in files)
    root = storage.local_root(volume)
    assert not [p for p in root.rglob("*") if TEMP_MARK in p.name]
    used = storage.volume(volume)
    assert used.used_bytes == len(done) * size <= used.quota_bytes
    assert storage.reserved_bytes(volume) == 0  # nothing held after everyone finished
    return done


def test_streaming_processes_over_quota_never_exceed_it(tmp_path: Path) -> None:
    size = 2 * MIB
    storage, volume, outcome = race(tmp_path, 5 * MIB, 6, 1, size, declare=False)
    check_clean(storage, volume, outcome, size)
    assert list(outcome.values()).count("quota") >= 4  # at most two 2 MiB files fit in 5
    assert "ok" in outcome.values()  # a refused writer lets go at once: not all fail


def test_processes_with_threads_declaring_sizes_fill_the_quota_exactly(tmp_path: Path) -> None:
    size = MIB
    storage, volume, outcome = race(tmp_path, 4 * MIB + MIB // 2, 3, 3, size, declare=True)
    done = check_clean(storage, volume, outcome, size)
    assert len(done) == 4  # a declared size is reserved whole, first come first served


def test_writers_that_fit_together_all_succeed(tmp_path: Path) -> None:
    size = MIB
    storage, volume, outcome = race(tmp_path, 6 * MIB, 3, 2, size, declare=False)
    assert check_clean(storage, volume, outcome, size) == sorted(outcome)
    assert storage.volume(volume).used_bytes == 6 * MIB


def test_threads_of_one_process(tmp_path: Path) -> None:
    storage = backend(tmp_path / "volumes", tmp_path / "state")
    volume = storage.create_volume("threads", "physics", 3 * MIB).name
    outcome: dict[str, str] = {}
    barrier = threading.Barrier(8)

    def run(n: int) -> None:
        barrier.wait(timeout=30)
        outcome[f"t{n}"] = write_one(storage, volume, f"t{n}", MIB // 2, n % 2 == 0)

    workers = [threading.Thread(target=run, args=(n,)) for n in range(8)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    done = check_clean(storage, volume, outcome, MIB // 2)
    assert 1 <= len(done) <= 6


def test_a_killed_writer_does_not_keep_its_reservation(tmp_path: Path) -> None:
    root = tmp_path / "volumes"
    storage = backend(root, tmp_path / "state")
    volume = storage.create_volume("crash", "physics", 2 * MIB).name
    written = SPAWN.Event()
    proc = SPAWN.Process(target=killed_writer, args=(str(root), volume, MIB, written))
    proc.start()
    try:
        assert written.wait(timeout=60)
        assert storage.reserved_bytes(volume) == MIB  # it holds what it wrote
        with pytest.raises(QuotaExceeded, match="1048576 free"):
            write_one_raising(storage, volume, "big", 2 * MIB)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.join(timeout=30)
    assert [p.name for p in storage.local_root(volume).iterdir()]  # its temp file, until…
    assert write_one(storage, volume, "big", 2 * MIB, declare=True) == "ok"  # …it is dropped
    assert [p.name for p in storage.local_root(volume).iterdir()] == ["big"]
    assert storage.reserved_bytes(volume) == 0


def write_one_raising(storage: PosixStorageBackend, volume: str, name: str, size: int) -> None:
    with storage.open_write(volume, name, size=size) as out:
        out.write(b"y" * size)


def test_a_lapsed_lease_of_another_host_is_dropped(tmp_path: Path) -> None:
    storage = backend(tmp_path / "volumes", tmp_path / "state")
    volume = storage.create_volume("lease", "physics", MIB).name
    ledger = storage.ledger_dir / f"{volume}.ledger"
    other = {"bytes": MIB, "credit": 0, "target": "x", "temp": "/nonexistent/x", "pid": 1}
    other |= {"host": "elsewhere", "start": "1", "expires": time.time() + 60}
    ledger.write_text(json.dumps({"used": 0, "walked_at": 0, "entries": {"w": other}}))
    assert write_one(storage, volume, "a", MIB, declare=True) == "quota"  # its lease holds
    other["expires"] = time.time() - 1
    ledger.write_text(json.dumps({"used": 0, "walked_at": 0, "entries": {"w": other}}))
    assert write_one(storage, volume, "a", MIB, declare=True) == "ok"
    assert quota_module.LEASE >= 60  # a writer renews on every chunk; this is the idle bound


def test_a_quota_below_the_writes_in_flight_is_refused(tmp_path: Path) -> None:
    storage = backend(tmp_path / "volumes", tmp_path / "state")
    volume = storage.create_volume("resize", "physics", 4 * MIB).name
    with storage.open_write(volume, "f") as out:
        out.write(b"z" * MIB)
        with pytest.raises(InvalidState, match="writes in progress"):
            storage.resize_volume(volume, MIB // 2)
    assert storage.resize_volume(volume, MIB).quota_bytes == MIB


def test_processes_with_threads_on_a_glusterfs_volume(glusterd: Any, tmp_path: Path) -> None:  # noqa: F811
    """The same path over a real GlusterFS FUSE mount: gateway processes on one host
    share the ledger through the state folder."""
    storage = gluster_backend(glusterd, tmp_path)
    options = {
        k: str(getattr(storage.options, k))
        for k in ("server", "brick_root", "mount_root", "gluster")
    }
    try:
        made = [("glusterfs", options, str(tmp_path / "state"))] * 2
        size = MIB
        volume, outcome = race_on(storage, made, 2 * MIB + MIB // 2, 3, size, declare=False)
        done = check_clean(storage, volume, outcome, size)
        assert 1 <= len(done) <= 2 and len(outcome) == 6
    finally:
        remove_volumes(storage)
