"""What libvirt cannot hold for volumes and networks: a small state table in a file.

libvirt storage volumes have no metadata, and network metadata needs libvirt 9.7. So the
OCCI storage ``state`` (online/offline: offline only means the gateway refuses to attach
it) and the network ``label`` live here, one JSON document in the backend's state folder,
keyed by the gateway's id. Why a file and not the SQL store: it is the backend's own
state (``BackendContext.state_dir``), it needs no schema migration shared with the front
ends, and it is tiny (only offline volumes and labelled networks have a row).

Writes take an exclusive ``flock`` and replace the file atomically, so gateway processes
sharing one state folder never lose each other's writes. Gateways on *different*
machines need a shared state folder for these two facts (everything else is in libvirt).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any


class Annotations:
    def __init__(self, path: Path) -> None:
        self.path = path

    def _read(self) -> dict[str, dict[str, Any]]:
        try:
            return json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}

    @contextlib.contextmanager
    def _locked(self) -> Iterator[dict[str, dict[str, Any]]]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_suffix(".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            data = self._read()
            yield data
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(data, sort_keys=True, indent=1), encoding="utf-8")
            os.replace(tmp, self.path)

    def get(self, key: str) -> dict[str, Any]:
        return dict(self._read().get(key, {}))

    def all(self) -> dict[str, dict[str, Any]]:
        return self._read()

    def set(self, key: str, **values: Any) -> None:
        """Merge ``values`` into the row of ``key``; a value of None removes that field."""
        with self._locked() as data:
            row = data.setdefault(key, {})
            for name, value in values.items():
                if value is None:
                    row.pop(name, None)
                else:
                    row[name] = value
            if not row:
                data.pop(key, None)

    def drop(self, key: str) -> None:
        with self._locked() as data:
            data.pop(key, None)
