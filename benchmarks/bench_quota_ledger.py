"""What the quota reservations cost a write to a POSIX volume.

Figure: MiB/s of a 128 MiB write through ``open_write`` on a volume with a quota (the
ledger under flock): with the size declared (one reservation), and streamed without a
size in 1 MiB and in 64 KiB chunks (a reservation per chunk). Baseline: the same write on
a volume without a quota (no ledger at all), same process, rounds alternated.

    .venv/bin/python benchmarks/bench_quota_ledger.py
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

from backends.contracts.interfaces import BackendContext
from backends.storage.posix import PosixStorageBackend

MIB = 1024 * 1024
TOTAL = 128 * MIB
ROUNDS = 9


def write(storage: PosixStorageBackend, volume: str, chunk: int, declare: bool) -> float:
    data = b"q" * chunk
    os.sync()  # the previous round's write-back must not land on this one
    started = time.perf_counter()
    with storage.open_write(volume, "f", size=TOTAL if declare else None) as out:
        for _ in range(TOTAL // chunk):
            out.write(data)
    elapsed = time.perf_counter() - started
    storage.delete(volume, "f")
    return TOTAL / MIB / elapsed


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        storage = PosixStorageBackend(
            BackendContext(None, root / "state", SimpleNamespace(root=str(root / "volumes")))
        )
        storage.create_volume("free", "bench", None)
        storage.create_volume("capped", "bench", 4 * TOTAL)
        cases = {
            "no quota (baseline), 1 MiB chunks": ("free", MIB, False),
            "quota, size declared, 1 MiB chunks": ("capped", MIB, True),
            "quota, streamed, 1 MiB chunks": ("capped", MIB, False),
            "no quota (baseline), 64 KiB chunks": ("free", 64 * 1024, False),
            "quota, streamed, 64 KiB chunks": ("capped", 64 * 1024, False),
        }
        rates: dict[str, list[float]] = {name: [] for name in cases}
        names = list(cases)
        for round_no in range(ROUNDS):  # each round starts with another case (the first
            for name in names[round_no:] + names[:round_no]:  # after a delete is slow)
                volume, chunk, declare = cases[name]
                rates[name].append(write(storage, volume, chunk, declare))
        print(f"write of {TOTAL // MIB} MiB to a POSIX volume, {ROUNDS} rounds alternated")
        medians = {name: statistics.median(r) for name, r in rates.items()}
        for name, rounds in rates.items():
            base = medians[f"no quota (baseline), {name.rsplit(', ', 1)[1]}"]
            every = " ".join(f"{r:.0f}" for r in rounds)
            print(
                f"  {name:38s} {medians[name]:7.0f} MiB/s  "
                f"{medians[name] / base:5.2f}x baseline   rounds: {every}"
            )


if __name__ == "__main__":
    main()
