"""Health checks shared by backends that keep files in a folder."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from backends.contracts.model import HealthReport


def writable_dir(path: Path, what: str) -> HealthReport:
    """Create ``path`` if needed and prove it writable by writing a file in it."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".health-"):
            pass
        usage = os.statvfs(path)
    except OSError as exc:
        return HealthReport(False, f"{what} {path} is not writable: {exc.strerror or exc}")
    return HealthReport(
        True, f"{what} {path} is writable", {"free_bytes": usage.f_bavail * usage.f_frsize}
    )
