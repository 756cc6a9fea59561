"""libvirt hypervisors: the VM backend (the embedded default is ``test:///default``).

OCCI compute is a libvirt domain whose UUID is the gateway's vm_id (found again after a
restart by listing the hosts), storage is a volume ``xg-storage-<id>`` in the configured
pool, a network is a libvirt network ``xg-net-<id>`` (UUID = id) defined on every host,
and links are devices in the domain, recorded with their ids in the domain's xtreemgate
metadata (see :mod:`backends.vm.domain_xml`).

What differs between the ``test:///`` driver (embedded default, tests) and a real
``qemu:///system`` or ``qemu+ssh://host/system``:

* the test driver has no device hotplug, so links change the persistent definition only
  (a running VM sees the device after its next start); real QEMU attaches live too;
* it has no ACPI shutdown flag and no guest power management: ``stop acpioff`` falls back
  to a plain shutdown request, and ``pmsuspended`` never happens there;
* shutdown and reboot are immediate; a real guest takes its time (``stop graceful``
  returns while the domain is still "shutting down", shown as active);
* its state lives in the process (``test:///default`` shared by all connections of the
  process, ``test:///<file>`` per connection); volumes and networks are bookkeeping
  only, and free memory comes from the domains' sizes, not from the host;
* a VLAN tag on a network needs an Open vSwitch bridge or ``hostdev`` forwarding on a
  real host; the test driver accepts it on any network.
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
import secrets
import threading
import time
import uuid as uuidlib
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from backends.interfaces import (
    BackendError,
    BackendUnavailable,
    InvalidSpec,
    InvalidState,
    UnknownResource,
    VMBackend,
)
from backends.model import (
    HealthReport,
    ImageTemplate,
    NetworkInfo,
    NetworkSpec,
    StorageInfo,
    StorageSpec,
    VMInfo,
    VMSpec,
)
from backends.vm import domain_xml, states
from backends.vm.annotations import Annotations
from backends.vm.domain_xml import DomainFacts, Link
from backends.vm.events import CachedDomain, ensure_event_loop
from backends.vm.hosts import Host, is_unsupported
from backends.vm.placement import POLICIES, HostLoad

try:  # the binding needs libvirt's C library; report its absence instead of failing imports
    import libvirt
except ImportError:  # pragma: no cover - exercised only where libvirt-python is missing
    libvirt = None

GIB = 1024**3
MIB = 1024**2
_FACTS_TTL = 30.0  # seconds facts are trusted on a host without events
_TEMPLATE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_DISK_TARGET = re.compile(r"^(vd|sd|hd|xvd)[a-z]{1,2}$")
_MAC = re.compile(r"^([0-9a-f]{2}:){5}[0-9a-f]{2}$")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,63}$")
_AUTO_POOLS = ("default", "default-pool")


def _option(options: Any, name: str, default: Any) -> Any:
    value = getattr(options, name, None) if options is not None else None
    return default if value in (None, "") else value


def _size_pair(size: Any) -> tuple[int, int]:
    if isinstance(size, dict):
        return int(size["cores"]), int(size["memory_mib"])
    return int(size.cores), int(size.memory_mib)


def _canonical_id(vm_id: str, what: str = "compute") -> str:
    try:
        return str(uuidlib.UUID(vm_id))
    except (ValueError, AttributeError, TypeError):
        raise InvalidSpec(f"{what} id {vm_id!r} is not a UUID") from None


class LibvirtVMBackend(VMBackend):
    """VMs, volumes and networks on one or more libvirt hosts (``vm.uris``)."""

    name = "libvirt"

    def __init__(self, context: Any) -> None:
        super().__init__(context)
        options = context.options
        ensure_event_loop()  # before the first connection: events reach only later ones
        self.uris: list[str] = list(_option(options, "uris", None) or ["test:///default"])
        retry = float(_option(options, "retry_seconds", 10.0))
        self.hosts: dict[str, Host] = {uri: Host(uri, retry) for uri in self.uris}
        self.pool_name: str = _option(options, "pool", "")
        self.image_pool_name: str = _option(options, "image_pool", "")
        placement = _option(options, "placement", "least-loaded-memory")
        if placement not in POLICIES:
            raise InvalidSpec(f"vm.placement {placement!r} unknown; known: {', '.join(POLICIES)}")
        self.policy = POLICIES[placement]
        self.domain_type: str = _option(options, "domain_type", "")
        self.overcommit = float(_option(options, "overcommit", 1.0))
        raw_sizes = _option(options, "sizes", None)
        if raw_sizes is None:
            raw_sizes = {"small": {"cores": 1, "memory_mib": 1024}}
        self.sizes: dict[str, tuple[int, int]] = {k: _size_pair(v) for k, v in raw_sizes.items()}
        self.annotations = Annotations(context.state_dir / "libvirt-annotations.json")
        self._placement_lock = threading.Lock()
        self._save_lock = threading.Lock()
        for host in self.hosts.values():
            host.cache.on_stopped.append(self._on_stopped)

    # -- connections, pools ------------------------------------------------------------
    def connection(self, uri: str) -> Any:
        """The shared connection to one configured host (BackendUnavailable if down)."""
        return self.hosts[uri].connection()

    def _pool(self, host: Host, conn: Any, *, images: bool = False) -> Any:
        name = (self.image_pool_name if images else "") or self.pool_name
        names = (name,) if name else _AUTO_POOLS
        for candidate in names:
            try:
                pool = conn.storagePoolLookupByName(candidate)
            except libvirt.libvirtError:
                continue
            if not pool.isActive():
                pool.create()
            return pool
        key = "vm.image_pool" if images and self.image_pool_name else "vm.pool"
        raise BackendError(
            f"no storage pool {' or '.join(repr(n) for n in names)} on {host.uri}; "
            f"define it there or set {key}"
        )

    def _domain_type(self, host: Host) -> str:
        return self.domain_type or ("test" if host.is_test_driver else "kvm")

    # -- the domain cache ----------------------------------------------------------------
    def _refresh(self, host: Host) -> dict[str, CachedDomain]:
        """All domains of one host in one pass: one listAllDomains, then libvirt is asked
        only about domains whose cached state or facts an event (or age) invalidated."""
        cache = host.cache
        now = time.monotonic()
        with host.call("listing domains") as conn:
            domains = conn.listAllDomains(0)
            polled: dict[str, tuple[int, int]] | None = None
            saved: set[str] | None = None
            fresh: dict[str, CachedDomain] = {}
            for dom in domains:
                uuid = dom.UUIDString()
                entry = cache.domains.get(uuid)
                if cache.state_fresh(uuid, entry) and cache.facts_fresh(
                    uuid, entry, now, _FACTS_TTL
                ):
                    fresh[uuid] = entry  # type: ignore[assignment]
                    continue
                gen, def_gen = cache.generation(uuid)
                if entry is not None and cache.facts_fresh(uuid, entry, now, _FACTS_TTL):
                    facts, facts_gen, read_at = entry.facts, entry.facts_gen, entry.facts_read_at
                else:
                    try:
                        xml = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
                    except libvirt.libvirtError:
                        continue  # undefined meanwhile
                    facts, facts_gen, read_at = domain_xml.read_facts(xml), def_gen, now
                if polled is None:
                    polled = self._poll_states(conn, cache.events_live)
                    saved = {
                        d.UUIDString()
                        for d in conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_MANAGEDSAVE)
                    }
                raw = polled.get(uuid)
                if raw is None:
                    try:
                        raw = tuple(dom.state())
                    except libvirt.libvirtError:
                        continue
                state, message = states.occi_state(raw[0], raw[1], uuid in (saved or ()))
                fresh[uuid] = CachedDomain(facts, state, message, gen, facts_gen, read_at)
        with cache.lock:
            # entries an event touched while we read keep their older generation: dirty
            cache.domains = fresh
        return fresh

    @staticmethod
    def _poll_states(conn: Any, events_live: bool) -> dict[str, tuple[int, int]]:
        """States of all domains in one call where it pays (no events: every domain is
        read); with events only the few dirty ones are asked one by one."""
        if events_live:
            return {}
        try:
            stats = conn.getAllDomainStats(libvirt.VIR_DOMAIN_STATS_STATE)
        except libvirt.libvirtError:
            return {}
        return {
            dom.UUIDString(): (values.get("state.state", 0), values.get("state.reason", 0))
            for dom, values in stats
        }

    def _info(self, host: Host, vm_id: str, entry: CachedDomain) -> VMInfo:
        facts = entry.facts
        return VMInfo(
            id=vm_id,
            state=entry.state,
            state_message=entry.state_message,
            cores=facts.cores,
            memory_mib=facts.memory_mib,
            architecture=facts.architecture,
            hostname=facts.hostname,
            host=host.uri,
            image=facts.image,
        )

    def _read(self, host: Host, dom: Any) -> CachedDomain:
        """Re-read one domain now (after an action) and put it in the cache."""
        uuid = dom.UUIDString()
        gen, def_gen = host.cache.generation(uuid)
        facts = domain_xml.read_facts(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
        raw_state, reason = dom.state()
        saved = raw_state == states.SHUTOFF and bool(dom.hasManagedSaveImage(0))
        state, message = states.occi_state(raw_state, reason, saved)
        entry = CachedDomain(facts, state, message, gen, def_gen, time.monotonic())
        with host.cache.lock:
            host.cache.domains[uuid] = entry
        return entry

    def _locate(self, vm_id: str) -> tuple[Host, Any]:
        """The host and domain of a VM, trying the host it was last seen on first."""
        vm_id = _canonical_id(vm_id)
        ordered = sorted(self.hosts.values(), key=lambda h: vm_id not in h.cache.domains)
        down: list[str] = []
        for host in ordered:
            try:
                with host.call(f"looking up compute {vm_id}") as conn:
                    dom = conn.lookupByUUIDString(vm_id)
            except UnknownResource:
                continue
            except BackendUnavailable as exc:
                if vm_id in host.cache.domains:
                    raise
                down.append(str(exc))
                continue
            if not domain_xml.read_facts(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)).managed:
                break  # a domain the gateway did not make: not a compute of ours
            return host, dom
        if down:
            raise BackendUnavailable(
                f"compute {vm_id} is not on any reachable host; " + "; ".join(down)
            )
        raise UnknownResource(f"compute {vm_id} does not exist")

    # -- compute -----------------------------------------------------------------------
    def _resolve(self, spec: VMSpec) -> VMSpec:
        if spec.size:
            if spec.size not in self.sizes:
                known = ", ".join(sorted(self.sizes)) or "none configured"
                raise InvalidSpec(f"unknown resource_tpl (size) {spec.size!r}; known: {known}")
            cores, memory = self.sizes[spec.size]
            spec = replace(spec, cores=cores, memory_mib=memory)
        if spec.cores < 1 or spec.memory_mib < 1:
            raise InvalidSpec(
                f"cores and memory must be positive (got {spec.cores}, {spec.memory_mib} MiB)"
            )
        if spec.share is not None and not 2 <= spec.share <= 262144:
            raise InvalidSpec(f"share must be within 2..262144 (got {spec.share})")
        return spec

    def _load(self, host: Host) -> HostLoad:
        """Free memory for placement: ``memory * vm.overcommit`` minus what the gateway's
        running VMs were given, and never more than the host's own free-memory figure
        (virNodeGetFreeMemory, which counts every other process and domain) where it
        gives one. The test driver's figure is invented (0, or a few MiB on
        ``test:///default``), so there only the gateway's own VMs count."""
        entries = self._refresh(host)
        with host.call("reading host load") as conn:
            _model, memory_mib, cpus = conn.getInfo()[:3]
            real_free = 0
            if not host.is_test_driver:
                with contextlib.suppress(libvirt.libvirtError):
                    real_free = int(conn.getFreeMemory()) // MIB
        running = [
            e
            for e in entries.values()
            if e.facts.managed and (e.state == "active" or e.state_message == "paused")
        ]
        committed = sum(e.facts.memory_mib for e in running)
        free = int(memory_mib * self.overcommit) - committed
        if real_free > 0:
            free = min(free, real_free)
        return HostLoad(
            uri=host.uri,
            memory_mib=memory_mib,
            free_memory_mib=free,
            cpus=cpus,
            active_vms=len(running),
            committed_cores=sum(e.facts.cores for e in running),
        )

    def _has_image(self, host: Host, image: str) -> bool:
        with host.call(f"looking up image template {image}") as conn:
            pool = self._pool(host, conn, images=True)
            try:
                pool.storageVolLookupByName(image)
            except libvirt.libvirtError:
                return False
            return True

    def _place(self, vm_id: str, spec: VMSpec) -> Host:
        loads: list[HostLoad] = []
        down: list[str] = []
        without_image = 0
        for host in self.hosts.values():
            try:
                if spec.image and not self._has_image(host, spec.image):
                    without_image += 1
                    continue
                loads.append(self._load(host))
            except BackendUnavailable as exc:
                down.append(str(exc))
        if not loads:
            if down and not without_image:
                raise BackendUnavailable("no hypervisor is reachable: " + "; ".join(down))
            if spec.image:
                raise InvalidSpec(
                    f"unknown os_tpl (image template) {spec.image!r} on every reachable host"
                )
            raise BackendUnavailable("no hypervisor is reachable: " + "; ".join(down))
        chosen = self.policy(loads, spec)
        if chosen is None:
            free = ", ".join(f"{h.uri}: {h.free_memory_mib} MiB" for h in loads)
            raise BackendUnavailable(
                f"no hypervisor has {spec.memory_mib} MiB free for compute {vm_id} ({free})"
            )
        return self.hosts[chosen.uri]

    def create(self, vm_id: str, spec: VMSpec) -> VMInfo:
        """Place, clone the os_tpl's volume into the VM's disk, define and start.

        Nothing stays behind when a step fails: the cloned disk and the definition are
        removed again before the error is raised.
        """
        vm_id = _canonical_id(vm_id)
        spec = self._resolve(spec)
        with self._placement_lock:
            try:
                self._locate(vm_id)
            except (UnknownResource, BackendUnavailable):
                pass  # a host that is down cannot be asked; the gateway's UUIDs are fresh
            else:
                raise InvalidState(f"compute {vm_id} already exists")
            host = self._place(vm_id, spec)
            with host.call(f"creating compute {vm_id}") as conn:
                disk_path = disk_volume = ""
                disk_format = "raw"
                volume = None
                if spec.image:
                    volume, disk_format = self._clone_image(host, conn, vm_id, spec.image)
                    disk_path, disk_volume = volume.path(), volume.name()
                xml = domain_xml.build_domain(
                    vm_id,
                    spec,
                    domain_type=self._domain_type(host),
                    disk_path=disk_path,
                    disk_format=disk_format or "raw",
                    disk_volume=disk_volume,
                )
                dom = None
                try:
                    dom = conn.defineXML(xml)
                    dom.create()
                except BaseException:
                    if dom is not None:
                        _quietly(dom.undefine)
                    if volume is not None:
                        _quietly(volume.delete, 0)
                    raise
                entry = self._read(host, dom)
        return self._info(host, vm_id, entry)

    def _clone_image(self, host: Host, conn: Any, vm_id: str, image: str) -> tuple[Any, str]:
        images = self._pool(host, conn, images=True)
        pool = self._pool(host, conn)
        try:
            template = images.storageVolLookupByName(image)
        except libvirt.libvirtError:
            raise InvalidSpec(f"unknown os_tpl (image template) {image!r} on {host.uri}") from None
        fmt = domain_xml.volume_format(template.XMLDesc(0))
        capacity = template.info()[1]
        name = domain_xml.disk_volume_name(vm_id, image)
        volume = pool.createXMLFrom(domain_xml.build_volume(name, capacity, fmt), template, 0)
        return volume, fmt

    def describe(self, vm_ids: Iterable[str] | None = None) -> dict[str, VMInfo]:
        """Facts of many VMs in one pass over the hosts (one listAllDomains each).

        Ids that exist nowhere are absent from the answer. A host that cannot be reached
        shows the VMs last seen there in state ``error``, the message naming the URI; an
        asked id not found while a host is down raises :class:`BackendUnavailable`.
        """
        wanted = None if vm_ids is None else {_canonical_id(v) for v in vm_ids}
        result: dict[str, VMInfo] = {}
        down: list[str] = []
        for host in self.hosts.values():
            try:
                entries = self._refresh(host)
            except BackendUnavailable as exc:
                down.append(str(exc))
                with host.cache.lock:
                    last = dict(host.cache.domains)
                for uuid, entry in last.items():
                    if entry.facts.managed and (wanted is None or uuid in wanted):
                        info = self._info(host, uuid, entry)
                        result[uuid] = replace(info, state="error", state_message=str(exc))
                continue
            if wanted is None:
                for uuid, entry in entries.items():
                    if entry.facts.managed:
                        result[uuid] = self._info(host, uuid, entry)
            else:
                for uuid in wanted & entries.keys():
                    entry = entries[uuid]
                    if entry.facts.managed:
                        result[uuid] = self._info(host, uuid, entry)
        if wanted and down and wanted - result.keys():
            raise BackendUnavailable("; ".join(down))
        return result

    def cached(self, vm_id: str) -> VMInfo | None:
        """What the event-fed cache says now, without asking libvirt (None: not cached)."""
        vm_id = _canonical_id(vm_id)
        for host in self.hosts.values():
            with host.cache.lock:
                entry = host.cache.domains.get(vm_id)
            if entry is not None:
                return self._info(host, vm_id, entry)
        return None

    def events_live(self, uri: str) -> bool:
        """Whether the host's state is kept fresh by events (else describe polls)."""
        host = self.hosts[uri]
        return host.reachable() and host.cache.events_live

    def act(self, vm_id: str, action: str, method: str = "", **params: str) -> VMInfo:
        """OCCI compute actions on the domain (see :mod:`backends.vm.states`).

        start: create(), resume() a paused domain, destroy()+create() a crashed one (a
        hibernated one restores from its managed save). stop: graceful shutdown(),
        acpioff shutdown with the ACPI flag (plain shutdown where the driver lacks the
        flag), poweroff destroy(). restart: graceful/warm reboot(), cold reset() (or
        destroy()+create()). suspend: suspend() (paused, in memory) or hibernate
        managedSave() (memory to disk, the domain shut off). save: clone the VM's disk
        into a new image template named ``name`` (its os_tpl id); hot at once, deferred
        when the VM next stops (at once if it is not running).
        """
        if action not in states.ACTION_METHODS:
            raise InvalidSpec(
                f"unknown compute action {action!r}; actions: {', '.join(states.ACTION_METHODS)}"
            )
        methods = states.ACTION_METHODS[action]
        method = method or methods[0]
        if method not in methods:
            raise InvalidSpec(
                f"compute action {action} has no method {method!r}; "
                f"methods: {', '.join(m for m in methods if m)}"
            )
        host, dom = self._locate(vm_id)
        vm_id = dom.UUIDString()
        with host.call(f"{action} {method} on compute {vm_id}".replace("  ", " ")) as conn:
            current = self._read(host, dom)
            if current.state not in states.ACTION_STATES[action]:
                raise InvalidState(states.refusal(vm_id, action, current.state))
            raw_state = dom.state()[0]
            if action == "start":
                self._start(dom, raw_state)
            elif action == "stop":
                self._stop(dom, raw_state, method)
            elif action == "restart":
                self._restart(dom, method)
            elif action == "suspend":
                dom.suspend() if method == "suspend" else dom.managedSave(0)
            else:
                self._save(host, conn, dom, current, method, params.get("name", ""))
            entry = self._read(host, dom)
            if action == "stop" and entry.state == "inactive" and entry.facts.pending_save:
                self._complete_deferred_save(host, vm_id)
                entry = self._read(host, dom)
        return self._info(host, vm_id, entry)

    @staticmethod
    def _start(dom: Any, raw_state: int) -> None:
        if raw_state == states.PAUSED:
            dom.resume()
        elif raw_state == states.PMSUSPENDED:
            dom.pMWakeup(0)
        elif raw_state == states.CRASHED:
            dom.destroy()
            dom.create()
        else:
            dom.create()

    @staticmethod
    def _stop(dom: Any, raw_state: int, method: str) -> None:
        if raw_state == states.SHUTOFF:
            dom.managedSaveRemove(0)  # hibernated: stopping discards the saved memory
            return
        if method == "poweroff" or raw_state == states.CRASHED:
            dom.destroy()
            return
        if raw_state == states.PAUSED:
            dom.resume()  # a paused guest cannot answer a shutdown request
        if method == "acpioff":
            try:
                dom.shutdownFlags(libvirt.VIR_DOMAIN_SHUTDOWN_ACPI_POWER_BTN)
                return
            except libvirt.libvirtError as exc:
                if not is_unsupported(exc):
                    raise
        dom.shutdown()

    @staticmethod
    def _restart(dom: Any, method: str) -> None:
        if method != "cold":
            dom.reboot(0)
            return
        try:
            dom.reset(0)
        except libvirt.libvirtError as exc:
            if not is_unsupported(exc):
                raise
            dom.destroy()
            dom.create()

    def _save(
        self, host: Host, conn: Any, dom: Any, current: CachedDomain, method: str, name: str
    ) -> None:
        vm_id = dom.UUIDString()
        name = name or f"{vm_id}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"
        if not _TEMPLATE_NAME.match(name) or name.startswith("xg-"):
            raise InvalidSpec(
                f"image template name {name!r}: use letters, digits, '.', '_', '-' "
                "(at most 128, not starting with 'xg-')"
            )
        if not current.facts.disk_volume:
            raise InvalidState(f"compute {vm_id} has no disk (no os_tpl) to save")
        images = self._pool(host, conn, images=True)
        try:
            images.storageVolLookupByName(name)
        except libvirt.libvirtError:
            pass
        else:
            raise InvalidState(f"image template {name!r} already exists on {host.uri}")
        if method == "deferred" and current.state == "active":
            xml = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
            self._set_metadata(dom, xml, pending_save=name)
            return
        self._clone_disk(host, conn, current.facts, name)

    def _clone_disk(self, host: Host, conn: Any, facts: DomainFacts, name: str) -> None:
        pool = self._pool(host, conn)
        images = self._pool(host, conn, images=True)
        disk = pool.storageVolLookupByName(facts.disk_volume)
        fmt = domain_xml.volume_format(disk.XMLDesc(0))
        xml = domain_xml.build_volume(name, disk.info()[1], fmt)
        images.createXMLFrom(xml, disk, 0)

    def _on_stopped(self, uri: str, uuid: str) -> None:
        """Event thread: a VM stopped; run its deferred save, off the event loop."""
        host = self.hosts[uri]
        with host.cache.lock:
            entry = host.cache.domains.get(uuid)
        if entry is not None and entry.facts.pending_save:
            threading.Thread(
                target=_quietly,
                args=(self._complete_deferred_save, host, uuid),
                name=f"deferred-save-{uuid}",
                daemon=True,
            ).start()

    def _complete_deferred_save(self, host: Host, vm_id: str) -> None:
        with self._save_lock, host.call(f"saving the disk of compute {vm_id}") as conn:
            dom = conn.lookupByUUIDString(vm_id)
            if dom.isActive():
                return
            xml = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
            facts = domain_xml.read_facts(xml)
            if not facts.pending_save:
                return  # the other path (event or stop action) did it
            self._clone_disk(host, conn, facts, facts.pending_save)
            self._set_metadata(dom, xml, pending_save="")

    def _set_metadata(self, dom: Any, xml: str, **changes: object) -> None:
        """Rewrite the xtreemgate metadata in the persistent (and live) definition."""
        flags = libvirt.VIR_DOMAIN_AFFECT_CONFIG
        if dom.isActive():
            flags |= libvirt.VIR_DOMAIN_AFFECT_LIVE
        try:
            dom.setMetadata(
                libvirt.VIR_DOMAIN_METADATA_ELEMENT,
                domain_xml.metadata_xml(xml, **changes),
                domain_xml.XG_PREFIX,
                domain_xml.XG_NS,
                flags,
            )
        except libvirt.libvirtError as exc:
            if not is_unsupported(exc):
                raise
            dom.connect().defineXML(domain_xml.replace_metadata(xml, **changes))

    def update(self, vm_id: str, spec: VMSpec) -> VMInfo:
        """New cores, memory, hostname or size in the persistent definition: a running VM
        gets them at its next start (libvirt keeps the live definition as it is)."""
        spec = self._resolve(spec)
        host, dom = self._locate(vm_id)
        vm_id = dom.UUIDString()
        with host.call(f"updating compute {vm_id}") as conn:
            xml = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
            facts = domain_xml.read_facts(xml)
            hostname = spec.hostname or facts.hostname
            xml = domain_xml.set_resources(
                xml, cores=spec.cores, memory_mib=spec.memory_mib, title=hostname or facts.name
            )
            xml = domain_xml.replace_metadata(
                xml, hostname=hostname, name=spec.name or facts.name, size=spec.size
            )
            conn.defineXML(xml)
            entry = self._read(host, dom)
        return self._info(host, vm_id, entry)

    def delete(self, vm_id: str) -> None:
        """Destroy, undefine (with its managed save) and delete the disk made for it.
        Attached storage volumes are separate OCCI resources and stay."""
        host, dom = self._locate(vm_id)
        vm_id = dom.UUIDString()
        with host.call(f"deleting compute {vm_id}") as conn:
            facts = domain_xml.read_facts(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
            if dom.isActive():
                dom.destroy()
            try:
                dom.undefineFlags(
                    libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
                    | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
                )
            except libvirt.libvirtError as exc:
                if not is_unsupported(exc):
                    raise
                if dom.hasManagedSaveImage(0):
                    dom.managedSaveRemove(0)
                dom.undefine()
            host.cache.forget(vm_id)
            if facts.disk_volume:
                try:
                    self._pool(host, conn).storageVolLookupByName(facts.disk_volume).delete(0)
                except libvirt.libvirtError as exc:
                    if exc.get_error_code() != libvirt.VIR_ERR_NO_STORAGE_VOL:
                        raise

    def templates(self) -> list[ImageTemplate]:
        """Volumes of the image pool that the gateway did not make (not ``xg-…``), over
        every reachable host; a template on several hosts is listed once."""
        found: dict[str, ImageTemplate] = {}
        down: list[str] = []
        for host in self.hosts.values():
            try:
                with host.call("listing image templates") as conn:
                    pool = self._pool(host, conn, images=True)
                    for vol in pool.listAllVolumes(0):
                        name = vol.name()
                        if not name.startswith("xg-") and name not in found:
                            found[name] = ImageTemplate(name, name, vol.info()[1])
            except BackendUnavailable as exc:
                down.append(str(exc))
        if down and len(down) == len(self.hosts):
            raise BackendUnavailable("; ".join(down))
        return sorted(found.values(), key=lambda t: t.id)

    # -- storage -------------------------------------------------------------------------
    def _volumes(self) -> tuple[dict[str, tuple[Host, Any]], list[str]]:
        """Every gateway storage volume on every reachable host, by storage id."""
        found: dict[str, tuple[Host, Any]] = {}
        down: list[str] = []
        for host in self.hosts.values():
            try:
                with host.call("listing storage volumes") as conn:
                    for vol in self._pool(host, conn).listAllVolumes(0):
                        name = vol.name()
                        if name.startswith(domain_xml.STORAGE_PREFIX):
                            found[name[len(domain_xml.STORAGE_PREFIX) :]] = (host, vol)
            except BackendUnavailable as exc:
                down.append(str(exc))
        return found, down

    def _storage_info(self, storage_id: str, host: Host, vol: Any) -> StorageInfo:
        offline = self.annotations.get(f"storage:{storage_id}").get("offline", False)
        return StorageInfo(
            id=storage_id,
            state="offline" if offline else "online",
            size_gib=round(vol.info()[1] / GIB, 3),
            host=host.uri,
        )

    def _find_volume(self, storage_id: str) -> tuple[Host, Any]:
        found, down = self._volumes()
        if storage_id in found:
            return found[storage_id]
        if down:
            raise BackendUnavailable(
                f"storage {storage_id} is not on any reachable host; " + "; ".join(down)
            )
        raise UnknownResource(f"storage {storage_id} does not exist")

    def create_storage(self, storage_id: str, spec: StorageSpec) -> StorageInfo:
        """A raw volume on the reachable host whose pool has the most room."""
        if not _ID.match(storage_id or ""):
            raise InvalidSpec(f"storage id {storage_id!r}: letters, digits and '-' only")
        if not 0 < spec.size_gib <= 64 * 1024:
            raise InvalidSpec(f"storage size must be within (0, 65536] GiB (got {spec.size_gib})")
        size = int(spec.size_gib * GIB)
        found, down = self._volumes()
        if storage_id in found:
            raise InvalidState(f"storage {storage_id} already exists")
        best: tuple[int, Host, Any] | None = None
        for host in self.hosts.values():
            try:
                with host.call("reading pool space") as conn:
                    pool = self._pool(host, conn)
                    available = pool.info()[3]
            except BackendUnavailable:
                continue
            if available >= size and (best is None or available > best[0]):
                best = (available, host, pool)
        if best is None:
            if down and len(down) == len(self.hosts):
                raise BackendUnavailable("no hypervisor is reachable: " + "; ".join(down))
            raise BackendUnavailable(f"no storage pool has {spec.size_gib} GiB free")
        _, host, pool = best
        name = domain_xml.STORAGE_PREFIX + storage_id
        with host.call(f"creating storage {storage_id}"):
            vol = pool.createXML(domain_xml.build_volume(name, size, "raw"), 0)
        return self._storage_info(storage_id, host, vol)

    def describe_storage(self, ids: Iterable[str] | None = None) -> dict[str, StorageInfo]:
        wanted = None if ids is None else set(ids)
        found, down = self._volumes()
        result = {
            sid: self._storage_info(sid, host, vol)
            for sid, (host, vol) in found.items()
            if wanted is None or sid in wanted
        }
        if wanted and down and wanted - result.keys():
            raise BackendUnavailable("; ".join(down))
        return result

    def act_storage(self, storage_id: str, action: str) -> StorageInfo:
        """online | offline: offline storage cannot be attached; attached storage cannot
        go offline (detach it first)."""
        if action not in ("online", "offline"):
            raise InvalidSpec(f"unknown storage action {action!r}; actions: online, offline")
        host, vol = self._find_volume(storage_id)
        info = self._storage_info(storage_id, host, vol)
        if info.state == action:
            raise InvalidState(f"storage {storage_id} is already {action}")
        if action == "offline":
            self._refuse_if_linked("storage", storage_id, "take it offline")
        self.annotations.set(f"storage:{storage_id}", offline=True if action == "offline" else None)
        return self._storage_info(storage_id, host, vol)

    def delete_storage(self, storage_id: str) -> None:
        host, vol = self._find_volume(storage_id)
        self._refuse_if_linked("storage", storage_id, "delete it")
        with host.call(f"deleting storage {storage_id}"):
            vol.delete(0)
        self.annotations.drop(f"storage:{storage_id}")

    # -- networks ------------------------------------------------------------------------
    def _validate_network(self, network_id: str, spec: NetworkSpec) -> None:
        _canonical_id(network_id, "network")
        if spec.vlan is not None and not 0 <= spec.vlan <= 4095:
            raise InvalidSpec(f"vlan must be within 0..4095 (got {spec.vlan})")
        if spec.allocation not in ("dynamic", "static"):
            raise InvalidSpec(f"allocation must be dynamic or static (got {spec.allocation!r})")
        if spec.gateway and not spec.address:
            raise InvalidSpec("a gateway needs an address (the network's CIDR)")
        if spec.address:
            try:
                subnet = ipaddress.ip_network(spec.address, strict=False)
            except ValueError as exc:
                raise InvalidSpec(
                    f"address {spec.address!r} is not a CIDR network: {exc}"
                ) from None
            if spec.gateway:
                try:
                    gateway = ipaddress.ip_address(spec.gateway)
                except ValueError as exc:
                    raise InvalidSpec(f"gateway {spec.gateway!r}: {exc}") from None
                if gateway not in subnet:
                    raise InvalidSpec(f"gateway {spec.gateway} is outside {spec.address}")

    def _all_hosts(self, what: str) -> list[Host]:
        """Networks span every host: all must be reachable to change one."""
        down = []
        for host in self.hosts.values():
            try:
                host.connection()
            except BackendUnavailable as exc:
                down.append(str(exc))
        if down:
            raise BackendUnavailable(f"cannot {what} while a host is down: " + "; ".join(down))
        return list(self.hosts.values())

    def create_network(self, network_id: str, spec: NetworkSpec) -> NetworkInfo:
        """Define and start the network on every host (same VLAN tag and subnet)."""
        self._validate_network(network_id, spec)
        network_id = _canonical_id(network_id, "network")
        hosts = self._all_hosts(f"create network {network_id}")
        if network_id in self._networks()[0]:
            raise InvalidState(f"network {network_id} already exists")
        xml = domain_xml.build_network(network_id, spec)
        made: list[Any] = []
        try:
            for host in hosts:
                with host.call(f"creating network {network_id}") as conn:
                    net = conn.networkDefineXML(xml)
                    made.append(net)
                    net.create()
        except BaseException:
            for net in made:
                _quietly(net.destroy)
                _quietly(net.undefine)
            raise
        if spec.label:
            self.annotations.set(f"network:{network_id}", label=spec.label)
        return self.describe_networks([network_id])[network_id]

    def _networks(self) -> tuple[dict[str, dict[str, Any]], list[str]]:
        """Gateway networks by id: {host uri: virNetwork} on each reachable host."""
        found: dict[str, dict[str, Any]] = {}
        down: list[str] = []
        for host in self.hosts.values():
            try:
                with host.call("listing networks") as conn:
                    for net in conn.listAllNetworks(0):
                        if net.name().startswith(domain_xml.NETWORK_PREFIX):
                            found.setdefault(net.UUIDString(), {})[host.uri] = net
            except BackendUnavailable as exc:
                down.append(str(exc))
        return found, down

    def _network_info(self, network_id: str, nets: dict[str, Any], down: list[str]) -> NetworkInfo:
        first = next(iter(nets.values()))
        facts = domain_xml.read_network(first.XMLDesc(0))
        active = {uri: bool(net.isActive()) for uri, net in nets.items()}
        missing = [uri for uri in self.hosts if uri not in nets]
        reachable_missing = [u for u in missing if not any(u in d for d in down)]
        if all(active.values()) and not reachable_missing:
            state, message = "active", ""
        elif not any(active.values()) and not reachable_missing:
            state, message = "inactive", ""
        else:
            state = "error"
            parts = [f"{'up' if up else 'down'} on {uri}" for uri, up in active.items()]
            parts += [f"not defined on {uri}" for uri in reachable_missing]
            message = "; ".join(parts)
        if down:
            message = "; ".join(filter(None, [message, *down]))
        return NetworkInfo(
            id=network_id,
            state=state,
            vlan=facts.vlan,
            label=self.annotations.get(f"network:{network_id}").get("label", ""),
            address=facts.address,
            gateway=facts.gateway,
            allocation=facts.allocation if facts.address else "dynamic",
            state_message=message,
            host=next(iter(nets)),
        )

    def describe_networks(self, ids: Iterable[str] | None = None) -> dict[str, NetworkInfo]:
        wanted = None if ids is None else {_canonical_id(i, "network") for i in ids}
        found, down = self._networks()
        result = {
            nid: self._network_info(nid, nets, down)
            for nid, nets in found.items()
            if wanted is None or nid in wanted
        }
        if wanted and down and wanted - result.keys():
            raise BackendUnavailable("; ".join(down))
        return result

    def act_network(self, network_id: str, action: str) -> NetworkInfo:
        """up = create() where it is down, down = destroy() where it is up, on all hosts."""
        if action not in ("up", "down"):
            raise InvalidSpec(f"unknown network action {action!r}; actions: up, down")
        network_id = _canonical_id(network_id, "network")
        self._all_hosts(f"bring network {network_id} {action}")
        found, down = self._networks()
        if network_id not in found:
            raise UnknownResource(f"network {network_id} does not exist")
        info = self._network_info(network_id, found[network_id], down)
        target = "active" if action == "up" else "inactive"
        if info.state == target:
            raise InvalidState(f"network {network_id} is already {target}")
        for uri, net in found[network_id].items():
            with self.hosts[uri].call(f"network {network_id} {action}"):
                if action == "up" and not net.isActive():
                    net.create()
                elif action == "down" and net.isActive():
                    net.destroy()
        return self.describe_networks([network_id])[network_id]

    def delete_network(self, network_id: str) -> None:
        network_id = _canonical_id(network_id, "network")
        self._all_hosts(f"delete network {network_id}")
        found, _ = self._networks()
        if network_id not in found:
            raise UnknownResource(f"network {network_id} does not exist")
        self._refuse_if_linked("network", network_id, "delete it")
        for uri, net in found[network_id].items():
            with self.hosts[uri].call(f"deleting network {network_id}"):
                if net.isActive():
                    net.destroy()
                net.undefine()
        self.annotations.drop(f"network:{network_id}")

    # -- links ---------------------------------------------------------------------------
    def _links(self) -> dict[str, tuple[Host, str, Link]]:
        """Every link on every reachable host: link id → (host, vm_id, link)."""
        links: dict[str, tuple[Host, str, Link]] = {}
        for host in self.hosts.values():
            try:
                entries = self._refresh(host)
            except BackendUnavailable:
                continue
            for vm_id, entry in entries.items():
                for link in entry.facts.links:
                    links[link.id] = (host, vm_id, link)
        return links

    def _refuse_if_linked(self, kind: str, resource_id: str, doing: str) -> None:
        for link_id, (_host, vm_id, link) in self._links().items():
            if link.kind == kind and link.resource == resource_id:
                raise InvalidState(
                    f"{kind} {resource_id} is linked to compute {vm_id} (link {link_id}); "
                    f"detach it before you {doing}"
                )

    def attach_storage(self, link_id: str, vm_id: str, storage_id: str, device: str = "") -> str:
        """A storagelink: the volume becomes a virtio disk of the VM (same host only)."""
        if not _ID.match(link_id or ""):
            raise InvalidSpec(f"link id {link_id!r}: letters, digits and '-' only")
        if device and not _DISK_TARGET.match(device):
            raise InvalidSpec(f"device {device!r} is not a disk name like vdb or sdc")
        host, dom = self._locate(vm_id)
        vm_id = dom.UUIDString()
        links = self._links()
        if link_id in links:
            raise InvalidState(f"link {link_id} already exists")
        storage_host, vol = self._find_volume(storage_id)
        if storage_host is not host:
            raise InvalidState(
                f"storage {storage_id} is on {storage_host.uri} but compute {vm_id} on "
                f"{host.uri}; a storagelink needs both on one host"
            )
        if self._storage_info(storage_id, storage_host, vol).state == "offline":
            raise InvalidState(f"storage {storage_id} is offline; bring it online first")
        for other_id, (_h, other_vm, link) in links.items():
            if link.kind == "storage" and link.resource == storage_id:
                raise InvalidState(
                    f"storage {storage_id} is already attached to compute {other_vm} "
                    f"(link {other_id})"
                )
        with host.call(f"attaching storage {storage_id} to compute {vm_id}"):
            xml = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
            if device and device in domain_xml.disk_targets(xml):
                raise InvalidState(f"compute {vm_id} already has a disk {device}")
            target = device or domain_xml.next_disk_target(xml)
            fmt = domain_xml.volume_format(vol.XMLDesc(0)) or "raw"
            disk = domain_xml.disk_device(vol.path(), target, fmt)
            link = Link(link_id, "storage", storage_id, target)
            self._change_device(host, dom, xml, disk, link, attach=True)
        return target

    def attach_network(
        self, link_id: str, vm_id: str, network_id: str, mac: str = "", address: str = ""
    ) -> str:
        """A networkinterface on the VM's host's copy of the network; returns the MAC.
        The ipnetworkinterface ``address`` is recorded with the link, not enforced (a
        static lease needs the guest's cooperation)."""
        if not _ID.match(link_id or ""):
            raise InvalidSpec(f"link id {link_id!r}: letters, digits and '-' only")
        mac = mac.lower()
        if mac and not _MAC.match(mac):
            raise InvalidSpec(f"mac {mac!r} is not a MAC address like 52:54:00:12:34:56")
        if address:
            try:
                ipaddress.ip_address(address)
            except ValueError as exc:
                raise InvalidSpec(f"address {address!r}: {exc}") from None
        network_id = _canonical_id(network_id, "network")
        host, dom = self._locate(vm_id)
        vm_id = dom.UUIDString()
        if link_id in self._links():
            raise InvalidState(f"link {link_id} already exists")
        found, down = self._networks()
        if network_id not in found:
            if down:
                raise BackendUnavailable("; ".join(down))
            raise UnknownResource(f"network {network_id} does not exist")
        if host.uri not in found[network_id]:
            raise InvalidState(f"network {network_id} is not defined on {host.uri}")
        mac = mac or "52:54:00:" + ":".join(f"{b:02x}" for b in secrets.token_bytes(3))
        with host.call(f"attaching network {network_id} to compute {vm_id}"):
            xml = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
            iface = domain_xml.interface_device(domain_xml.network_name(network_id), mac)
            link = Link(link_id, "network", network_id, mac, address)
            self._change_device(host, dom, xml, iface, link, attach=True)
        return mac

    def detach(self, link_id: str) -> None:
        found = self._links().get(link_id)
        if found is None:
            raise UnknownResource(f"link {link_id} does not exist")
        host, vm_id, link = found
        with host.call(f"detaching link {link_id} from compute {vm_id}") as conn:
            dom = conn.lookupByUUIDString(vm_id)
            xml = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
            device = domain_xml.find_device(xml, link)
            self._change_device(
                host, dom, xml, domain_xml.parse(device) if device else None, link, attach=False
            )

    def _change_device(
        self, host: Host, dom: Any, xml: str, device: Any, link: Link, *, attach: bool
    ) -> None:
        """Attach or detach a device in the persistent definition, and in the running
        domain where the driver can hotplug. Drivers without hotplug (the test driver)
        answer "not supported": then only the persistent definition changes, with the
        device and the link's metadata in one defineXML, and a running VM sees the change
        at its next start."""
        facts = domain_xml.read_facts(xml)
        links = tuple(lk for lk in facts.links if lk.id != link.id)
        if attach:
            links += (link,)
        device_xml = domain_xml.serialize(device) if device is not None else ""
        flags = libvirt.VIR_DOMAIN_AFFECT_CONFIG
        if dom.isActive():
            flags |= libvirt.VIR_DOMAIN_AFFECT_LIVE
        try:
            if device_xml:
                if attach:
                    dom.attachDeviceFlags(device_xml, flags)
                else:
                    dom.detachDeviceFlags(device_xml, flags)
        except libvirt.libvirtError as exc:
            if not is_unsupported(exc):
                raise
            new = (
                domain_xml.add_device(xml, device)
                if attach
                else domain_xml.remove_device(xml, link)
            )
            dom.connect().defineXML(domain_xml.replace_metadata(new, links=links))
        else:
            self._set_metadata(dom, dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE), links=links)
        self._read(host, dom)

    # -- health, shutdown ------------------------------------------------------------------
    def health(self) -> HealthReport:
        problems, figures = [], {}
        for uri, host in self.hosts.items():
            try:
                with host.call("reading host facts") as conn:
                    model, memory_mib, cpus = conn.getInfo()[:3]
                figures[uri] = {
                    "cpus": cpus,
                    "memory_mib": memory_mib,
                    "model": model,
                    "events": host.cache.events_live,
                }
            except BackendError as exc:
                problems.append(str(exc))
        if problems:
            return HealthReport(False, "; ".join(problems), figures)
        return HealthReport(True, f"{len(self.uris)} hypervisor(s) reachable", figures)

    def close(self) -> None:
        for host in self.hosts.values():
            host.close()


def _quietly(func: Any, *args: Any) -> None:
    """Clean-up that must not hide the error being raised."""
    with contextlib.suppress(Exception):  # best effort, the original error matters
        func(*args)
