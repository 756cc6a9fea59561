"""Quota reservations for the writes the gateway makes on a volume, safe across threads
and across gateway processes sharing the volume.

Checking "used + this file <= quota" when a write starts lets two concurrent writers
both pass and together overrun the quota. Instead every write *reserves* its bytes before
writing them, in a small ledger per volume (``<folder>/<volume>.ledger``, JSON) that is
read and changed only while holding ``fcntl.flock`` on that file. flock
locks belong to an open file description, so two threads of one process exclude each
other just as two processes do. The rule kept under the lock:

    bytes in committed files + bytes reserved by in-flight writes <= quota

A write reserves exactly what it is about to write (its declared size at once, or each
chunk as it streams), so writers that fit the quota together all succeed and the one that
does not fit fails before its bytes are written. A write becomes the file (rename) while
holding the lock, and its reservation turns into committed bytes in the same step.

The bytes in committed files are walked from the volume, and cached in the ledger for
:data:`REFRESH` seconds (walking a large volume per chunk would be slow); a reservation
that would fail is decided on a fresh walk, so a stale figure never refuses a write.
Files written past the gateway (e.g. by jobs on the mount) are seen at the next walk.

A crashed writer's reservation does not leak: each entry names its host, pid and the
pid's start time (so a reused pid does not keep it alive), and has a lease renewed while
it writes. An entry whose lease ran out (any host) is dropped by the next writer; one
whose process is gone (same host) as soon as its bytes are what stands in another
writer's way (checking /proc for every entry on every chunk would cost more than the
write). A dead writer's temp file is removed with its entry.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

REFRESH = 2.0  # seconds the walked usage is trusted
LEASE = 600.0  # seconds a reservation lives without being renewed
HOST = socket.gethostname()


def process_start(pid: int) -> str:
    """The start time of ``pid`` in clock ticks since boot ('' if it does not exist),
    so that a pid reused by another process is not taken for the writer."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            data = stat.read()
    except OSError:
        return ""
    return data[data.rindex(b")") + 2 :].split()[19].decode()


@dataclass
class Entry:
    """One in-flight write: ``bytes`` reserved; ``credit`` the size of the file it will
    replace (its bytes are already counted as used)."""

    bytes: int
    credit: int
    target: str
    temp: str
    host: str
    pid: int
    start: str
    expires: float

    @property
    def net(self) -> int:
        return max(0, self.bytes - self.credit)

    def alive(self, now: float) -> bool:
        if self.expires < now:
            return False
        if self.host != HOST:
            return True  # another host's writer: only its lease tells
        return process_start(self.pid) == self.start

    def dead_here(self) -> bool:
        return self.host == HOST and process_start(self.pid) != self.start


class QuotaLedger:
    """The reservations of one volume, kept in ``folder`` (see the module's docstring).

    One instance per write stream: it keeps its own descriptor of the ledger file open,
    so its flock excludes every other stream, thread or process. :meth:`close` it."""

    def __init__(self, folder: Path, volume: str, usage: Callable[[], int]) -> None:
        self.folder = folder
        self.volume = volume
        self.usage = usage  # walks the volume: bytes in committed files
        self.path = folder / f"{volume}.ledger"
        self._fd: int | None = None

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    @contextlib.contextmanager
    def locked(self) -> Iterator[dict[str, Any]]:
        """The ledger, with lapsed entries dropped, written back when the block ends
        without an exception (in place: it is small, one write)."""
        if self._fd is None:
            self.folder.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        fd = self._fd
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            state = self._load(fd)
            now = time.time()
            self._drop(state, lambda entry: entry.expires < now)
            yield state
            self._save(fd, state)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)

    @staticmethod
    def _drop(state: dict[str, Any], gone: Callable[[Entry], bool]) -> None:
        """Drop the entries ``gone`` says; a dead writer's temp file goes with its entry."""
        for key, entry in list(state["entries"].items()):
            if gone(entry):
                del state["entries"][key]
                if entry.dead_here():
                    with contextlib.suppress(OSError):
                        os.unlink(entry.temp)

    @staticmethod
    def _load(fd: int) -> dict[str, Any]:
        size = os.fstat(fd).st_size
        raw: dict[str, Any] = {}
        if size:
            with contextlib.suppress(ValueError):
                # raw_decode: a writer killed between write and truncate leaves a tail
                raw, _ = json.JSONDecoder().raw_decode(os.pread(fd, size, 0).decode())
        entries = {k: Entry(**v) for k, v in raw.get("entries", {}).items()}
        return {"used": raw.get("used"), "walked_at": raw.get("walked_at", 0.0), "entries": entries}

    @staticmethod
    def _save(fd: int, state: dict[str, Any]) -> None:
        data = {
            "used": state["used"],
            "walked_at": state["walked_at"],
            "entries": {k: asdict(e) for k, e in state["entries"].items()},
        }
        payload = json.dumps(data).encode()
        os.pwrite(fd, payload, 0)
        os.ftruncate(fd, len(payload))

    def _used(self, state: dict[str, Any], *, fresh: bool) -> int:
        now = time.time()
        if fresh or state["used"] is None or now - state["walked_at"] > REFRESH:
            state["used"], state["walked_at"] = self.usage(), now
        return int(state["used"])

    @staticmethod
    def _room(state: dict[str, Any], used: int, quota: int, key: str) -> int:
        held = sum(e.net for k, e in state["entries"].items() if k != key)
        return quota - used - held

    def reserved(self) -> int:
        """Bytes held by in-flight writes now."""
        with self.locked() as state:
            self._drop(state, lambda e: not e.alive(time.time()))
            return sum(e.net for e in state["entries"].values())

    def reserve(
        self, key: str, total: int, quota: int, *, target: str, temp: str, credit: int
    ) -> int:
        """Hold ``total`` bytes for write ``key`` (growing or renewing its entry); -1, or
        when that does not fit the bytes that were free for it (its entry is dropped)."""
        with self.locked() as state:
            entry = state["entries"].get(key)
            if entry is None:
                if any(e.target == target and e.credit for e in state["entries"].values()):
                    credit = 0  # another write replacing the same file has the credit
                entry = Entry(0, credit, target, temp, HOST, os.getpid(), "", 0.0)
                entry.start = process_start(entry.pid)
            want = max(0, total - entry.credit)
            for fresh in (False, True):  # refuse only on fresh figures, dead writers gone
                if fresh:
                    self._drop(state, lambda e: not e.alive(time.time()))
                room = self._room(state, self._used(state, fresh=fresh), quota, key)
                if want <= room:
                    entry.bytes, entry.expires = total, time.time() + LEASE
                    state["entries"][key] = entry
                    return -1
            # refused: the write fails, so its bytes go in this same step (were they
            # released later, writers refused together could all fail on each other)
            state["entries"].pop(key, None)
            return max(0, room + entry.credit)

    def settle(self, key: str, size: int, quota: int, commit: Callable[[], int]) -> int:
        """Make the write the file (``commit`` renames it and returns the bytes it adds
        to the volume) and drop its reservation, in one step under the lock. A write
        whose reservation was dropped meanwhile (its lease ran out) commits only if its
        ``size`` still fits: else nothing is committed and the free bytes are returned."""
        with self.locked() as state:
            entry = state["entries"].pop(key, None)
            if entry is None or entry.bytes < size:
                self._drop(state, lambda e: not e.alive(time.time()))
                room = self._room(state, self._used(state, fresh=True), quota, key)
                credit = entry.credit if entry is not None else 0
                if size - credit > room:
                    return max(0, room + credit)
            added = commit()
            if state["used"] is not None:
                state["used"] = int(state["used"]) + added
            return -1

    def release(self, key: str) -> None:
        """A failed write: its reservation goes (its temp file is the caller's)."""
        with self.locked() as state:
            state["entries"].pop(key, None)
