"""OCCI network on libvirt: a network ``xg-net-<id>`` (UUID = id) on *every* host.

An OCCI network is a site-wide segment: each hypervisor has its own bridge with the same
VLAN tag and subnet, so a VM on any host can join it. Creating, changing or deleting one
therefore needs every host reachable (else :class:`BackendUnavailable`, and nothing is
left half-made). The label lives in the annotations: network metadata needs libvirt 9.7.
"""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from backends.contracts.interfaces import (
    BackendUnavailable,
    InvalidSpec,
    InvalidState,
    UnknownResource,
)
from backends.contracts.model import NetworkInfo, NetworkSpec
from backends.vm.libvirt import domain_xml
from backends.vm.libvirt.checks import canonical_id, quietly

try:
    import libvirt
except ImportError:  # pragma: no cover - only where libvirt-python is missing
    libvirt = None

if TYPE_CHECKING:
    from backends.vm.libvirt.annotations import Annotations
    from backends.vm.libvirt.hosts import Host


class Networks:
    """Network part of :class:`LibvirtVMBackend` (a mixin)."""

    hosts: dict[str, Host]
    annotations: Annotations
    _link_lock: threading.Lock

    def _validate_network(self, network_id: str, spec: NetworkSpec) -> None:
        canonical_id(network_id, "network")
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
        network_id = canonical_id(network_id, "network")
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
                quietly(net.destroy)
                quietly(net.undefine)
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
        wanted = None if ids is None else {canonical_id(i, "network") for i in ids}
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
        network_id = canonical_id(network_id, "network")
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
        network_id = canonical_id(network_id, "network")
        self._all_hosts(f"delete network {network_id}")
        found, _ = self._networks()
        if network_id not in found:
            raise UnknownResource(f"network {network_id} does not exist")
        with self._link_lock:
            self._refuse_if_linked("network", network_id, "delete it")
            for uri, net in found[network_id].items():
                with self.hosts[uri].call(f"deleting network {network_id}"):
                    if net.isActive():
                        net.destroy()
                    net.undefine()
        self.annotations.drop(f"network:{network_id}")
