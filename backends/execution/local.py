"""Local processes: the embedded execution backend (filled in by the BES issue)."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

from backends.health import writable_dir
from backends.interfaces import ExecutionBackend
from backends.model import HealthReport


class LocalExecutionBackend(ExecutionBackend):
    name = "local"

    @property
    def work_dir(self) -> Path:
        configured = getattr(self.context.options, "work_dir", "")
        return Path(configured) if configured else self.context.state_dir / "activities"

    def health(self) -> HealthReport:
        return writable_dir(self.work_dir, "activity folder")

    def resources(self) -> dict[str, Any]:
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        return {
            "cpu_count": os.cpu_count() or 1,
            "physical_memory": pages,
            "operating_system": platform.system(),
            "os_version": platform.release(),
            "architecture": platform.machine(),
        }
