"""A POSIX directory tree per VO and volume: the embedded storage backend."""

from __future__ import annotations

from pathlib import Path

from backends.health import writable_dir
from backends.interfaces import StorageBackend
from backends.model import HealthReport


class PosixStorageBackend(StorageBackend):
    name = "posix"

    @property
    def root(self) -> Path:
        configured = getattr(self.context.options, "root", "")
        return Path(configured) if configured else self.context.state_dir / "volumes"

    def health(self) -> HealthReport:
        return writable_dir(self.root, "volume root")
