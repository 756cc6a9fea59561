"""One hypervisor host: its libvirt connection, its event registration, its errors.

A host that cannot be reached is remembered as down for ``retry_seconds``: calls fail at
once with :class:`BackendUnavailable` naming the URI (instead of waiting for a TCP or SSH
timeout on every request), and placement skips it. libvirt errors are translated into
the contract's exceptions in one place, :func:`translate`.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any

from backends.contracts.interfaces import (
    BackendError,
    BackendUnavailable,
    InvalidSpec,
    InvalidState,
    NotSupported,
    UnknownResource,
)
from backends.vm.libvirt.events import DomainCache

try:
    import libvirt
except ImportError:  # pragma: no cover - only where libvirt-python is missing
    libvirt = None

# virErrorNumber values (stable ABI) that mean "the host is not there", not "asked wrong"
_UNREACHABLE = {
    5,  # VIR_ERR_NO_CONNECT
    38,  # VIR_ERR_SYSTEM_ERROR (connection refused, no such socket, I/O error)
    39,  # VIR_ERR_RPC
    45,  # VIR_ERR_AUTH_FAILED
    68,  # VIR_ERR_OPERATION_TIMEOUT
    79,  # VIR_ERR_AUTH_CANCELLED
    94,  # VIR_ERR_AUTH_UNAVAILABLE
}
_NO_SUPPORT = {3}  # VIR_ERR_NO_SUPPORT
_UNSUPPORTED_ARG = {8, 74}  # VIR_ERR_INVALID_ARG ("unsupported flags"), ARGUMENT_UNSUPPORTED
_NOT_FOUND = {42, 43, 49, 50}  # NO_DOMAIN, NO_NETWORK, NO_STORAGE_POOL, NO_STORAGE_VOL
_INVALID_STATE = {55}  # VIR_ERR_OPERATION_INVALID
_CONFLICT = {28, 90}  # VIR_ERR_DOM_EXIST, VIR_ERR_STORAGE_VOL_EXIST
_BAD_SPEC = {27, 35, 67}  # XML_ERROR, XML_DETAIL, CONFIG_UNSUPPORTED (e.g. unknown arch)


def is_unsupported(exc: Exception) -> bool:
    """The driver lacks the call, or the flags we passed (test driver: hotplug, ACPI)."""
    if libvirt is None or not isinstance(exc, libvirt.libvirtError):
        return False
    return exc.get_error_code() in _NO_SUPPORT | _UNSUPPORTED_ARG


def translate(exc: Exception, uri: str, what: str) -> BackendError:
    """The contract's exception for a libvirt error met while doing ``what`` on ``uri``."""
    if libvirt is None or not isinstance(exc, libvirt.libvirtError):
        return BackendError(f"{what} on {uri} failed: {exc}")
    code = exc.get_error_code()
    message = exc.get_error_message() or str(exc)
    if code in _NOT_FOUND:
        return UnknownResource(f"{what}: {message}")
    if code in _BAD_SPEC:
        return InvalidSpec(f"{what}: {message}")
    if code in _INVALID_STATE | _CONFLICT:
        return InvalidState(f"{what}: {message}")
    if code in _NO_SUPPORT:
        return NotSupported(f"{what} is not supported by the hypervisor at {uri}: {message}")
    if code in _UNREACHABLE:
        return BackendUnavailable(f"hypervisor {uri} is unreachable: {message}")
    return BackendError(f"{what} on {uri} failed: {message}")


class Host:
    """A libvirt host (URI) with one shared, thread-safe connection."""

    def __init__(self, uri: str, retry_seconds: float) -> None:
        self.uri = uri
        self.retry_seconds = retry_seconds
        self.cache = DomainCache(uri)
        self._conn: Any = None
        self._lock = threading.Lock()
        self._down_since: float | None = None
        self._down_reason = ""
        self._callback_id: int | None = None

    @property
    def is_test_driver(self) -> bool:
        return self.uri.startswith("test:")

    def connection(self) -> Any:
        """The open connection, reopened when libvirt says it died; BackendUnavailable
        (at once, for ``retry_seconds``) when the host cannot be reached."""
        if libvirt is None:
            raise BackendUnavailable("the libvirt-python binding is not installed")
        with self._lock:
            if self._conn is not None:
                try:
                    if self._conn.isAlive():
                        return self._conn
                except libvirt.libvirtError:
                    pass
                self._drop()
            now = time.monotonic()
            if self._down_since is not None and now - self._down_since < self.retry_seconds:
                raise BackendUnavailable(
                    f"hypervisor {self.uri} is unreachable: {self._down_reason}"
                )
            try:
                conn = libvirt.open(self.uri)
            except libvirt.libvirtError as exc:
                self._down_since = now
                self._down_reason = exc.get_error_message() or str(exc)
                raise BackendUnavailable(
                    f"hypervisor {self.uri} is unreachable: {self._down_reason}"
                ) from exc
            self._down_since = None
            self._conn = conn
            self._watch(conn)
            return conn

    def _watch(self, conn: Any) -> None:
        """Keepalive for remote hosts, a close callback, and lifecycle events if offered."""
        with contextlib.suppress(libvirt.libvirtError):
            conn.setKeepAlive(5, 3)
        with contextlib.suppress(libvirt.libvirtError):
            conn.registerCloseCallback(lambda _c, _reason, _o: self.cache.lost(), None)
        self.cache.lost()  # whatever was cached came from an older connection
        try:
            self._callback_id = conn.domainEventRegisterAny(
                None, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, self.cache.lifecycle, None
            )
            self.cache.events_live = True
        except libvirt.libvirtError:
            self._callback_id = None  # no events from this driver: describe polls

    def _drop(self) -> None:
        self.cache.lost()
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(libvirt.libvirtError):
                if self._callback_id is not None:
                    conn.domainEventDeregisterAny(self._callback_id)
            with contextlib.suppress(libvirt.libvirtError):
                conn.unregisterCloseCallback()
            with contextlib.suppress(libvirt.libvirtError):
                conn.close()
        self._callback_id = None

    def reachable(self) -> bool:
        try:
            self.connection()
        except BackendUnavailable:
            return False
        return True

    @contextlib.contextmanager
    def call(self, what: str) -> Iterator[Any]:
        """``with host.call("starting compute X") as conn:`` — libvirt errors translated."""
        conn = self.connection()
        try:
            yield conn
        except BackendError:
            raise
        except Exception as exc:
            if libvirt is not None and isinstance(exc, libvirt.libvirtError):
                error = translate(exc, self.uri, what)
                if isinstance(error, BackendUnavailable):
                    with self._lock:
                        self._drop()
                raise error from exc
            raise

    def close(self) -> None:
        with self._lock:
            self._drop()
