"""OCCI links on libvirt: storagelink = a disk, networkinterface = an interface device.

Each link is recorded with its id in the domain's xtreemgate metadata (libvirt has no
place for it), so that ``detach(link_id)`` finds it after a restart.
"""

from __future__ import annotations

import ipaddress
import secrets
import threading
from typing import TYPE_CHECKING, Any

from backends.contracts.interfaces import (
    BackendUnavailable,
    InvalidSpec,
    InvalidState,
    UnknownResource,
)
from backends.vm.libvirt import domain_xml
from backends.vm.libvirt.checks import DISK_TARGET, MAC, canonical_id, plain_id
from backends.vm.libvirt.domain_xml import Link
from backends.vm.libvirt.hosts import is_unsupported

try:
    import libvirt
except ImportError:  # pragma: no cover - only where libvirt-python is missing
    libvirt = None

if TYPE_CHECKING:
    from backends.vm.libvirt.hosts import Host


class DeviceLinks:
    """Link part of :class:`LibvirtVMBackend` (a mixin)."""

    hosts: dict[str, Host]
    _link_lock: threading.Lock  # one link change at a time: checks and change atomic

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
        with self._link_lock:
            return self._attach_storage(link_id, vm_id, storage_id, device)

    def attach_network(
        self, link_id: str, vm_id: str, network_id: str, mac: str = "", address: str = ""
    ) -> str:
        """A networkinterface on the VM's host's copy of the network; returns the MAC.
        The ipnetworkinterface ``address`` is recorded with the link, not enforced (a
        static lease needs the guest's cooperation)."""
        with self._link_lock:
            return self._attach_network(link_id, vm_id, network_id, mac, address)

    def detach(self, link_id: str) -> None:
        """Remove the device. On real QEMU a live disk detach completes when the guest
        releases the device; the persistent definition changes at once."""
        with self._link_lock:
            self._detach(link_id)

    def _attach_storage(self, link_id: str, vm_id: str, storage_id: str, device: str) -> str:
        plain_id(link_id, "link")
        if device and not DISK_TARGET.match(device):
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

    def _attach_network(
        self, link_id: str, vm_id: str, network_id: str, mac: str, address: str
    ) -> str:
        plain_id(link_id, "link")
        mac = mac.lower()
        if mac and not MAC.match(mac):
            raise InvalidSpec(f"mac {mac!r} is not a MAC address like 52:54:00:12:34:56")
        if address:
            try:
                ipaddress.ip_address(address)
            except ValueError as exc:
                raise InvalidSpec(f"address {address!r}: {exc}") from None
        network_id = canonical_id(network_id, "network")
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

    def _detach(self, link_id: str) -> None:
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
