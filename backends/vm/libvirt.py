"""libvirt hypervisors: the VM backend (the embedded default is ``test:///default``)."""

from __future__ import annotations

import threading
from typing import Any

from backends.interfaces import VMBackend
from backends.model import HealthReport

try:  # the binding needs libvirt's C library; report its absence instead of failing imports
    import libvirt
except ImportError:  # pragma: no cover - exercised only where libvirt-python is missing
    libvirt = None


class LibvirtVMBackend(VMBackend):
    name = "libvirt"

    def __init__(self, context: Any) -> None:
        super().__init__(context)
        self.uris: list[str] = list(getattr(context.options, "uris", None) or ["test:///default"])
        self._connections: dict[str, Any] = {}
        self._lock = threading.Lock()

    def connection(self, uri: str) -> Any:
        """One open connection per host, reopened when libvirt says it died."""
        if libvirt is None:
            raise RuntimeError("the libvirt-python binding is not installed")
        with self._lock:
            conn = self._connections.get(uri)
            if conn is None or not conn.isAlive():
                conn = libvirt.open(uri)
                self._connections[uri] = conn
            return conn

    def health(self) -> HealthReport:
        problems, figures = [], {}
        for uri in self.uris:
            try:
                conn = self.connection(uri)
                model, memory_mib, cpus = conn.getInfo()[:3]
                figures[uri] = {"cpus": cpus, "memory_mib": memory_mib, "model": model}
            except Exception as exc:  # libvirt.libvirtError, or the binding missing
                problems.append(f"{uri}: {exc}")
        if problems:
            return HealthReport(False, "hypervisor unreachable: " + "; ".join(problems), figures)
        return HealthReport(True, f"{len(self.uris)} hypervisor(s) reachable", figures)

    def close(self) -> None:
        with self._lock:
            for conn in self._connections.values():
                try:
                    conn.close()
                except Exception:  # noqa: S112 - closing a dead connection may fail
                    continue
            self._connections.clear()
