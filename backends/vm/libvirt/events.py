"""libvirt's event loop in a thread, and the per-host domain cache its events keep fresh.

libvirt delivers domain lifecycle events only to connections opened *after*
``virEventRegisterDefaultImpl()`` and only while a thread runs
``virEventRunDefaultImpl()``. :func:`ensure_event_loop` does both once per process, before
the backend opens its first connection.

Consistency (what :class:`DomainCache` guarantees to ``describe``):

* An event never becomes the state shown by itself. It bumps the domain's generation,
  which makes its entry *dirty*, and records the state it implies as a hint (for
  ``cached()`` peeks and placement's memory totals); the next ``describe`` re-reads
  every dirty domain from libvirt.
* So with events, a state shown was read from libvirt after the last event delivered
  for that domain, and is never older than the last action this backend took (actions
  store the state they read back, and such a read beats a listing pass that began
  before it). A change whose event is still in flight shows once it is delivered:
  staleness is bounded by event latency (milliseconds on a live connection).
* A host without events (a driver that has none, or a connection being re-opened) is
  *polled*: every describe reads all its states in one call (getAllDomainStats), and
  definitions are re-read when older than a TTL.
* Events are not reordered per connection; a late event costs one extra re-read.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any

from backends.vm.libvirt.domain_xml import DomainFacts

try:
    import libvirt
except ImportError:  # pragma: no cover - only where libvirt-python is missing
    libvirt = None

log = logging.getLogger(__name__)

_loop_lock = threading.Lock()
_loop_thread: threading.Thread | None = None


def ensure_event_loop() -> bool:
    """Start libvirt's default event loop in a daemon thread (once per process)."""
    global _loop_thread
    if libvirt is None:
        return False
    with _loop_lock:
        if _loop_thread is None:
            # libvirt prints every error to stderr unless a handler is set; errors reach
            # the caller as exceptions anyway.
            libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
            libvirt.virEventRegisterDefaultImpl()
            _loop_thread = threading.Thread(target=_run, name="libvirt-events", daemon=True)
            _loop_thread.start()
    return True


def _run() -> None:
    while True:
        try:
            libvirt.virEventRunDefaultImpl()
        except Exception:  # the loop must survive a failing callback
            log.exception("libvirt event loop iteration failed")


# virDomainEventType → the OCCI state (and message) it implies: a hint until describe
# re-reads the domain
_EVENT_STATE = {
    2: ("active", ""),  # STARTED
    3: ("suspended", "paused"),  # SUSPENDED
    4: ("active", ""),  # RESUMED
    5: ("inactive", ""),  # STOPPED (detail SAVED: managed save, below)
    7: ("suspended", "suspended by guest power management"),  # PMSUSPENDED
    8: ("error", "the domain crashed"),  # CRASHED
}
_HIBERNATED = ("suspended", "hibernated (memory saved to disk)")
_EVENT_UNDEFINED = 1
_EVENT_DEFINED = 0
_EVENT_STOPPED = 5
_STOPPED_SAVED = 4


@dataclass
class CachedDomain:
    """What the backend knows of one domain on one host."""

    facts: DomainFacts
    state: str
    state_message: str = ""
    state_gen: int = 0  # the domain's event generation when the state was read
    facts_gen: int = 0  # its definition generation when the facts were read
    facts_read_at: float = 0.0  # monotonic time the facts were read
    state_read_at: float = 0.0  # monotonic time the state was read
    info: Any = None  # the VMInfo built from this entry (backends.vm.libvirt.backend._info)


@dataclass
class DomainCache:
    """Domains of one host by UUID, with a generation counter per domain that every
    lifecycle event bumps: an entry whose ``state_gen`` differs is dirty."""

    uri: str
    domains: dict[str, CachedDomain] = field(default_factory=dict)
    generations: dict[str, int] = field(default_factory=dict)
    definitions: dict[str, int] = field(default_factory=dict)
    events_live: bool = False
    events_seen: int = 0
    refreshed_at: float = 0.0  # monotonic time of the last full pass over the host
    lock: threading.Lock = field(default_factory=threading.Lock)
    on_stopped: list = field(default_factory=list)  # callbacks(uri, uuid) on STOPPED
    usage: dict[str, tuple[int, int]] = field(default_factory=dict)  # see _account
    committed_mib: int = 0
    committed_cores: int = 0

    def lifecycle(self, _conn: object, dom: object, event: int, detail: int, _opaque: object):
        """virConnectDomainEventCallback: runs in the event loop thread."""
        uuid = dom.UUIDString()  # type: ignore[attr-defined]
        with self.lock:
            self.events_seen += 1
            self.generations[uuid] = self.generations.get(uuid, 0) + 1
            if event in (_EVENT_DEFINED, _EVENT_UNDEFINED):
                self.definitions[uuid] = self.definitions.get(uuid, 0) + 1
            entry = self.domains.get(uuid)
            if event == _EVENT_UNDEFINED:
                self.domains.pop(uuid, None)
                self._account(uuid, None)
            elif entry is not None:
                hint = _EVENT_STATE.get(event)
                if event == _EVENT_STOPPED and detail == _STOPPED_SAVED:
                    hint = _HIBERNATED
                if hint is not None:
                    entry.state, entry.state_message = hint
                    self._account(uuid, entry)
        if event == _EVENT_STOPPED:
            for callback in list(self.on_stopped):
                try:
                    callback(self.uri, uuid)
                except Exception:  # a failing follow-up must not stop the loop
                    log.exception("handling the stop of %s on %s failed", uuid, self.uri)

    def generation(self, uuid: str) -> tuple[int, int]:
        """(event generation, definition generation) of a domain, read before libvirt is
        asked, so that an event arriving meanwhile leaves the entry dirty."""
        with self.lock:
            return self.generations.get(uuid, 0), self.definitions.get(uuid, 0)

    def state_fresh(self, uuid: str, entry: CachedDomain | None) -> bool:
        return (
            self.events_live
            and entry is not None
            and entry.state_gen == self.generations.get(uuid, 0)
        )

    def facts_fresh(self, uuid: str, entry: CachedDomain | None, now: float, ttl: float) -> bool:
        if entry is None:
            return False
        if not self.events_live:
            return now - entry.facts_read_at < ttl
        return entry.facts_gen == self.definitions.get(uuid, 0)

    def forget(self, uuid: str) -> None:
        with self.lock:
            self.domains.pop(uuid, None)
            self._account(uuid, None)

    def put(self, uuid: str, entry: CachedDomain) -> None:
        """An entry read just now (after an action)."""
        with self.lock:
            self.domains[uuid] = entry
            self._account(uuid, entry)

    def replace_all(self, fresh: dict[str, CachedDomain], started: float) -> None:
        """The result of a full pass that began at ``started``. An action's own read that
        finished after the pass began is newer than what the pass saw: it wins. Entries
        an event touched meanwhile keep the generation read before libvirt was asked, so
        they stay dirty."""
        with self.lock:
            for uuid, entry in self.domains.items():
                if entry.state_read_at > started:
                    fresh[uuid] = entry
            self.domains = fresh
            self.refreshed_at = started
            self.usage.clear()
            self.committed_mib = self.committed_cores = 0
            for uuid, entry in fresh.items():
                self._account(uuid, entry)

    def _account(self, uuid: str, entry: CachedDomain | None) -> None:
        """Keep the totals of what running VMs hold (lock held): placement reads them
        in O(1) instead of summing thousands of entries per create."""
        old = self.usage.pop(uuid, None)
        if old is not None:
            self.committed_mib -= old[0]
            self.committed_cores -= old[1]
        if entry is not None and entry.facts.managed and holds_memory(entry):
            self.usage[uuid] = (entry.facts.memory_mib, entry.facts.cores)
            self.committed_mib += entry.facts.memory_mib
            self.committed_cores += entry.facts.cores

    def committed(self) -> tuple[int, int, int]:
        """(MiB, cores, VMs) held by the gateway's running or paused VMs on this host."""
        with self.lock:
            return self.committed_mib, self.committed_cores, len(self.usage)

    def lost(self) -> None:
        """The connection closed: nothing cached can be trusted until re-read, but the
        entries stay, so that a host that went away still shows what it last held."""
        with self.lock:
            self.events_live = False
            for uuid in self.domains:
                self.generations[uuid] = self.generations.get(uuid, 0) + 1
                self.definitions[uuid] = self.definitions.get(uuid, 0) + 1


def holds_memory(entry: CachedDomain) -> bool:
    """Running, paused and guest-suspended VMs keep their memory; hibernated ones not."""
    return entry.state == "active" or entry.state_message in (
        "paused",
        "suspended by guest power management",
    )
