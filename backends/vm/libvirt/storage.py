"""OCCI storage on libvirt: a volume ``xg-storage-<id>`` in the pool of one host.

The host is the reachable one whose pool has the most room. A volume has no state in
libvirt; online/offline lives in the backend's annotations (see
:mod:`backends.vm.libvirt.annotations`): offline storage cannot be attached.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from backends.contracts.interfaces import (
    BackendUnavailable,
    InvalidSpec,
    InvalidState,
    UnknownResource,
)
from backends.contracts.model import StorageInfo, StorageSpec
from backends.vm.libvirt import domain_xml
from backends.vm.libvirt.checks import GIB, plain_id

try:
    import libvirt
except ImportError:  # pragma: no cover - only where libvirt-python is missing
    libvirt = None

if TYPE_CHECKING:
    from backends.vm.libvirt.annotations import Annotations
    from backends.vm.libvirt.hosts import Host


class StorageVolumes:
    """Storage part of :class:`LibvirtVMBackend` (a mixin: it uses the hosts and pools)."""

    hosts: dict[str, Host]
    annotations: Annotations
    _link_lock: threading.Lock

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
        plain_id(storage_id, "storage")
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
                raise BackendUnavailable("no hypervisor can take it: " + "; ".join(down))
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
        with self._link_lock:  # no attach between the check and the change
            if action == "offline":
                self._refuse_if_linked("storage", storage_id, "take it offline")
            offline = True if action == "offline" else None
            self.annotations.set(f"storage:{storage_id}", offline=offline)
        return self._storage_info(storage_id, host, vol)

    def delete_storage(self, storage_id: str) -> None:
        host, vol = self._find_volume(storage_id)
        with self._link_lock:
            self._refuse_if_linked("storage", storage_id, "delete it")
            with host.call(f"deleting storage {storage_id}"):
                vol.delete(0)
        self.annotations.drop(f"storage:{storage_id}")
