"""libvirt hypervisors: the VM backend (the embedded default is ``test:///default``).

OCCI compute is a libvirt domain whose UUID is the gateway's vm_id (found again after a
restart by listing the hosts), storage is a volume ``xg-storage-<id>`` in the configured
pool, a network is a libvirt network ``xg-net-<id>`` (UUID = id) defined on every host,
and links are devices in the domain, recorded with their ids in the domain's xtreemgate
metadata (see :mod:`backends.vm.libvirt.domain_xml`).

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
  real host; the test driver accepts it on any network;
* it never opens a disk: a VM made from a volume image gets its real qcow2 overlay (made
  by qemu-img) and the domain names it, but nothing boots from it.

An os_tpl is either a volume of the image pool (cloned into the VM's disk by libvirt) or
the URL of an image uploaded onto a storage volume (``xtreemgate image upload``): then the
VM's disk is a qcow2 overlay over that image, made with qemu-img in ``vm.disk_dir`` (see
:mod:`backends.vm.libvirt.overlays`) and removed with the VM. The gateway makes the overlay on its
own host, so a remote hypervisor must see ``vm.disk_dir`` and the volume mounts at the
same paths (a shared file system, as XtreemFS and GlusterFS are meant to be).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any, NamedTuple

from backends.contracts import volume_urls as urls
from backends.contracts.interfaces import (
    BackendContext,
    BackendError,
    BackendUnavailable,
    InvalidRequest,
    InvalidSpec,
    InvalidState,
    StorageBackend,
    UnknownResource,
    VMBackend,
)
from backends.contracts.model import (
    HealthReport,
    ImageTemplate,
    VMInfo,
    VMSpec,
)
from backends.contracts.platform import OCCI_MACHINES
from backends.vm.libvirt import domain_xml, overlays, states
from backends.vm.libvirt.annotations import Annotations
from backends.vm.libvirt.checks import MIB, TEMPLATE_NAME, canonical_id, quietly
from backends.vm.libvirt.domain_xml import DomainFacts
from backends.vm.libvirt.events import CachedDomain, ensure_event_loop
from backends.vm.libvirt.hosts import Host, is_unsupported
from backends.vm.libvirt.links import DeviceLinks
from backends.vm.libvirt.networks import Networks
from backends.vm.libvirt.placement import POLICIES, HostLoad
from backends.vm.libvirt.settings import VMSettings
from backends.vm.libvirt.storage import StorageVolumes

try:  # the binding needs libvirt's C library; report its absence instead of failing imports
    import libvirt
except ImportError:  # pragma: no cover - exercised only where libvirt-python is missing
    libvirt = None

_FACTS_TTL = 30.0  # seconds facts are trusted on a host without events
_BULK_STATES = 16  # more stale domains than this (and 5 %): all states in one call
_LOAD_REFRESH = 5.0  # seconds placement trusts the event-fed cache without a full pass
_AUTO_POOLS = ("default", "default-pool")


def is_volume_url(image: str) -> bool:
    """An os_tpl naming an image on a storage volume (not a volume of the image pool)."""
    scheme, sep, _ = image.partition("://")
    return bool(sep) and scheme.lower() in urls.SCHEMES


class _Saved(NamedTuple):
    name: str
    done: bool


class LibvirtVMBackend(StorageVolumes, Networks, DeviceLinks, VMBackend):
    """VMs, volumes and networks on one or more libvirt hosts (``vm.uris``)."""

    name = "libvirt"
    settings = VMSettings

    def __init__(self, context: BackendContext[VMSettings]) -> None:
        super().__init__(context)
        options = VMSettings.of(context.settings)
        ensure_event_loop()  # before the first connection: events reach only later ones
        self.uris: list[str] = list(options.uris)
        retry = float(options.retry_seconds)
        self.hosts: dict[str, Host] = {uri: Host(uri, retry) for uri in self.uris}
        self.pool_name: str = options.pool
        self.image_pool_name: str = options.image_pool
        self.policy = POLICIES[options.placement]
        self.domain_type: str = options.domain_type
        self.overcommit = float(options.overcommit)
        self.sizes: dict[str, tuple[int, int]] = {
            name: (size.cores, size.memory_mib) for name, size in options.sizes.items()
        }
        self.annotations = Annotations(context.state_dir / "libvirt-annotations.json")
        self.disk_dir = Path(options.disk_dir or context.state_dir / "vm-disks")
        self.storage: StorageBackend | None = None
        self._placement_lock = threading.Lock()
        self._save_lock = threading.Lock()
        self._link_lock = threading.Lock()
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
        raise BackendUnavailable(
            f"no storage pool {' or '.join(repr(n) for n in names)} on {host.uri}; "
            f"define it there or set {key}"
        )

    def use_storage(self, storage: StorageBackend) -> None:
        """The storage backend whose volume URLs may be os_tpl images (wired at start)."""
        self.storage = storage

    def _volume_image(self, url: str) -> overlays.Image:
        """The local file and format of an os_tpl image on a storage volume; InvalidSpec
        (the client's os_tpl cannot be used) when it is gone, outside its volume, or not a
        standalone qcow2/raw image."""
        if self.storage is None:
            raise InvalidSpec(f"os_tpl {url!r} is on a storage volume, and no storage is set up")
        try:
            path = self.storage.local_file(url, "image")
        except (UnknownResource, InvalidRequest) as exc:
            raise InvalidSpec(f"os_tpl image {url}: {exc}; upload it again") from None
        return overlays.probe(path, url)

    def _domain_type(self, host: Host) -> str:
        return self.domain_type or ("test" if host.is_test_driver else "kvm")

    # -- the domain cache ----------------------------------------------------------------
    def _refresh(self, host: Host) -> dict[str, CachedDomain]:
        """All domains of one host in one pass: one listAllDomains, then libvirt is asked
        only about domains whose cached state or facts an event (or age) invalidated.

        States are read in one call (getAllDomainStats) when the host has no events or
        many entries are stale (a cold cache), else one by one for the few dirty ones.
        Definitions are read per domain (libvirt has no bulk call for XML): that cost is
        paid once per domain and again only after a "defined" event.
        """
        cache = host.cache
        started = time.monotonic()
        with host.call("listing domains") as conn:
            fresh: dict[str, CachedDomain] = {}
            stale: list[tuple[str, Any, CachedDomain | None]] = []
            domains = conn.listAllDomains(0)
            for dom in domains:
                uuid = dom.UUIDString()
                entry = cache.domains.get(uuid)
                if cache.state_fresh(uuid, entry) and cache.facts_fresh(
                    uuid, entry, started, _FACTS_TTL
                ):
                    fresh[uuid] = entry  # type: ignore[assignment]
                else:
                    stale.append((uuid, dom, entry))
            if stale:
                many = len(stale) > _BULK_STATES and len(stale) * 20 > len(domains)
                bulk = many or not cache.events_live
                polled = self._poll_states(conn) if bulk else {}
                saved = {
                    d.UUIDString()
                    for d in conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_MANAGEDSAVE)
                }
            for uuid, dom, entry in stale:
                gen, def_gen = cache.generation(uuid)
                if entry is not None and cache.facts_fresh(uuid, entry, started, _FACTS_TTL):
                    facts, facts_gen, read_at = entry.facts, entry.facts_gen, entry.facts_read_at
                else:
                    try:
                        xml = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
                    except libvirt.libvirtError:
                        continue  # undefined meanwhile
                    facts, facts_gen, read_at = domain_xml.read_facts(xml), def_gen, started
                raw = polled.get(uuid)
                if raw is None:
                    try:
                        raw = tuple(dom.state())
                    except libvirt.libvirtError:
                        continue
                state, message = states.occi_state(raw[0], raw[1], uuid in saved)
                fresh[uuid] = CachedDomain(
                    facts, state, message, gen, facts_gen, read_at, state_read_at=started
                )
        cache.replace_all(fresh, started)
        return fresh

    @staticmethod
    def _poll_states(conn: Any) -> dict[str, tuple[int, int]]:
        """States of all domains in one call ({} where the driver lacks the call)."""
        try:
            stats = conn.getAllDomainStats(libvirt.VIR_DOMAIN_STATS_STATE)
        except libvirt.libvirtError:
            return {}
        return {
            dom.UUIDString(): (values.get("state.state", 0), values.get("state.reason", 0))
            for dom, values in stats
        }

    def _info(self, host: Host, vm_id: str, entry: CachedDomain) -> VMInfo:
        """The VMInfo of a cache entry, built once per entry (entries are replaced, not
        changed, when libvirt is re-read; an event's hint drops it)."""
        info = entry.info
        if info is None or (info.state, info.state_message) != (entry.state, entry.state_message):
            facts = entry.facts
            info = VMInfo(
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
            entry.info = info
        return info

    def _read(self, host: Host, dom: Any) -> CachedDomain:
        """Re-read one domain now (after an action) and put it in the cache."""
        uuid = dom.UUIDString()
        gen, def_gen = host.cache.generation(uuid)
        facts = domain_xml.read_facts(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
        raw_state, reason = dom.state()
        saved = raw_state == states.SHUTOFF and bool(dom.hasManagedSaveImage(0))
        state, message = states.occi_state(raw_state, reason, saved)
        now = time.monotonic()
        entry = CachedDomain(facts, state, message, gen, def_gen, now, state_read_at=now)
        host.cache.put(uuid, entry)
        return entry

    def _locate(self, vm_id: str) -> tuple[Host, Any]:
        """The host and domain of a VM, trying the host it was last seen on first."""
        vm_id = canonical_id(vm_id)
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
        """Size (resource_tpl) applied, OCCI's architecture words in libvirt's, checked."""
        if spec.architecture in OCCI_MACHINES:
            spec = replace(spec, architecture=OCCI_MACHINES[spec.architecture])
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
        cache = host.cache
        if not (cache.events_live and time.monotonic() - cache.refreshed_at < _LOAD_REFRESH):
            self._refresh(host)  # else events kept the totals fresh
        committed_mib, committed_cores, running = cache.committed()
        with host.call("reading host load") as conn:
            _model, memory_mib, cpus = conn.getInfo()[:3]
            real_free = 0
            if not host.is_test_driver:
                with contextlib.suppress(libvirt.libvirtError):
                    real_free = int(conn.getFreeMemory()) // MIB
        free = int(memory_mib * self.overcommit) - committed_mib
        if real_free > 0:
            free = min(free, real_free)
        return HostLoad(
            uri=host.uri,
            memory_mib=memory_mib,
            free_memory_mib=free,
            cpus=cpus,
            active_vms=running,
            committed_cores=committed_cores,
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
                pooled = spec.image and not is_volume_url(spec.image)
                if pooled and not self._has_image(host, spec.image):
                    without_image += 1
                    continue
                loads.append(self._load(host))
            except BackendUnavailable as exc:
                down.append(str(exc))
        if not loads:
            if down and not without_image:
                raise BackendUnavailable("no hypervisor can take it: " + "; ".join(down))
            if spec.image:
                raise InvalidSpec(
                    f"unknown os_tpl (image template) {spec.image!r} on every reachable host"
                )
            raise BackendUnavailable("no hypervisor can take it: " + "; ".join(down))
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
        vm_id = canonical_id(vm_id)
        spec = self._resolve(spec)
        image = self._volume_image(spec.image) if is_volume_url(spec.image) else None
        with self._placement_lock:
            try:
                self._locate(vm_id)
            except (UnknownResource, BackendUnavailable):
                pass  # a host that is down cannot be asked; the gateway's UUIDs are fresh
            else:
                raise InvalidState(f"compute {vm_id} already exists")
            host = self._place(vm_id, spec)
            with host.call(f"creating compute {vm_id}") as conn:
                disk_path = disk_volume = overlay = ""
                disk_format = "raw"
                volume = backing = None
                if image is not None:
                    overlay = str(self.disk_dir / f"{domain_xml.VM_DISK_PREFIX}{vm_id}.qcow2")
                    overlays.create_overlay(image, Path(overlay))
                    disk_path, disk_format = overlay, "qcow2"
                    backing = (str(image.path), image.format)
                elif spec.image:
                    volume, disk_format = self._clone_image(host, conn, vm_id, spec.image)
                    disk_path, disk_volume = volume.path(), volume.name()
                dom = None
                try:
                    xml = domain_xml.build_domain(
                        vm_id,
                        spec,
                        domain_type=self._domain_type(host),
                        disk_path=disk_path,
                        disk_format=disk_format or "raw",
                        disk_volume=disk_volume,
                        overlay=overlay,
                        backing=backing,
                    )
                    dom = conn.defineXML(xml)
                    dom.create()
                except BaseException:
                    if dom is not None:
                        quietly(dom.undefine)
                    if volume is not None:
                        quietly(volume.delete, 0)
                    if overlay:
                        overlays.remove_overlay(Path(overlay), self.disk_dir)
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
        wanted = None if vm_ids is None else {canonical_id(v) for v in vm_ids}
        if wanted is not None and not wanted:
            return {}
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
        vm_id = canonical_id(vm_id)
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
        """OCCI compute actions on the domain (see :mod:`backends.vm.libvirt.states`).

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
                saved = self._save(host, conn, dom, current, method, params.get("name", ""))
            entry = self._read(host, dom)
            if action == "stop" and entry.state == "inactive" and entry.facts.pending_save:
                self._complete_deferred_save(host, vm_id)
                entry = self._read(host, dom)
        info = self._info(host, vm_id, entry)
        if action == "save":  # the caller learns the new os_tpl's id here
            when = "saved" if saved.done else "to be saved when the compute stops"
            info = replace(info, state_message=f"image template (os_tpl) {saved.name} {when}")
        return info

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
    ) -> _Saved:
        vm_id = dom.UUIDString()
        name = name or f"{vm_id}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"
        if not TEMPLATE_NAME.match(name) or name.startswith("xg-"):
            raise InvalidSpec(
                f"image template name {name!r}: use letters, digits, '.', '_', '-' "
                "(at most 128, not starting with 'xg-')"
            )
        if current.facts.overlay:
            raise InvalidState(
                f"compute {vm_id} runs on an overlay over a volume image ({current.facts.image})"
                "; save works for VMs made from the hypervisor's own image templates only"
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
            return _Saved(name, done=False)
        self._clone_disk(host, conn, current.facts, name)
        return _Saved(name, done=True)

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
                target=quietly,
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
            if facts.overlay:
                overlays.remove_overlay(Path(facts.overlay), self.disk_dir)
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

    # -- health, shutdown ------------------------------------------------------------------
    def health(self) -> HealthReport:
        problems, figures = [], {}
        for uri, host in self.hosts.items():
            try:
                with host.call("reading host facts") as conn:
                    model, memory_mib, cpus = conn.getInfo()[:3]
                    pool = self._pool(host, conn).name()
                    self._pool(host, conn, images=True)
                figures[uri] = {
                    "pool": pool,
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
