"""libvirt domain, network and volume XML: built from the neutral model, read back into it.

Everything the gateway needs to find again after a restart lives in libvirt itself: the
gateway's vm_id is the domain UUID, the hostname is the domain title, and an
``<xg:vm>`` element in the domain's ``<metadata>`` (namespace :data:`XG_NS`) holds what
libvirt has no field for (the OCCI title, os_tpl, resource_tpl, the disk created for the
VM, the links and their ids, a pending deferred save). Parsing uses lxml with entities,
DTDs and network access off, although the XML comes from libvirt, not from a client.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

from lxml import etree

from backends.contracts.model import NetworkSpec, VMSpec

XG_NS = "urn:xtreemgate:vm:1"
XG_PREFIX = "xg"
_XG = f"{{{XG_NS}}}"
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)

# Volumes and networks the gateway makes carry these prefixes; other volumes in the image
# pool are image templates (os_tpl).
VM_DISK_PREFIX = "xg-vm-"
STORAGE_PREFIX = "xg-storage-"
NETWORK_PREFIX = "xg-net-"


def parse(xml: str) -> etree._Element:
    return etree.fromstring(xml.encode(), _PARSER)


def serialize(element: etree._Element) -> str:
    return etree.tostring(element, encoding="unicode")


@dataclass(frozen=True)
class Link:
    """A storagelink or networkinterface as recorded in the domain's metadata."""

    id: str
    kind: str  # "storage" | "network"
    resource: str  # storage_id or network_id
    device: str  # target dev (vdb) for storage, MAC for network
    address: str = ""  # ipnetworkinterface address, as asked (libvirt does not hold it)


@dataclass(frozen=True)
class DomainFacts:
    """What the persistent definition of a domain says, in the neutral model's words."""

    id: str
    name: str
    cores: int
    memory_mib: int
    architecture: str
    hostname: str
    image: str = ""
    size: str = ""
    share: int | None = None
    disk_volume: str = ""
    overlay: str = ""  # path of the qcow2 overlay made for it over a volume image
    links: tuple[Link, ...] = ()
    pending_save: str = ""
    managed: bool = False  # carries the xtreemgate metadata element
    extra: dict[str, str] = field(default_factory=dict)


def domain_name(vm_id: str) -> str:
    """libvirt wants unique names per host; the gateway's id makes them unique."""
    return f"xg-{vm_id}"


def disk_volume_name(vm_id: str, template_name: str) -> str:
    suffix = template_name.rsplit(".", 1)[1] if "." in template_name else "img"
    return f"{VM_DISK_PREFIX}{vm_id}.{suffix}"


def build_domain(
    vm_id: str,
    spec: VMSpec,
    *,
    domain_type: str,
    disk_path: str = "",
    disk_format: str = "qcow2",
    disk_volume: str = "",
    overlay: str = "",
    backing: tuple[str, str] | None = None,
) -> str:
    """A persistent domain definition for ``spec`` (cores/memory already resolved).
    ``backing`` (path, format) is the image under a qcow2 overlay disk, stated in the
    XML so libvirt uses exactly that chain instead of probing it."""
    dom = etree.Element("domain", type=domain_type)
    etree.SubElement(dom, "name").text = domain_name(vm_id)
    etree.SubElement(dom, "uuid").text = vm_id
    etree.SubElement(dom, "title").text = spec.hostname or spec.name
    metadata = etree.SubElement(dom, "metadata")
    metadata.append(
        build_metadata(
            name=spec.name,
            hostname=spec.hostname,
            image=spec.image,
            size=spec.size,
            disk_volume=disk_volume,
            overlay=overlay,
            user_data=spec.user_data,
            ssh_keys=spec.ssh_keys,
        )
    )
    etree.SubElement(dom, "memory", unit="MiB").text = str(spec.memory_mib)
    etree.SubElement(dom, "currentMemory", unit="MiB").text = str(spec.memory_mib)
    etree.SubElement(dom, "vcpu").text = str(spec.cores)
    if spec.share is not None:
        etree.SubElement(etree.SubElement(dom, "cputune"), "shares").text = str(spec.share)
    os_el = etree.SubElement(dom, "os")
    etree.SubElement(os_el, "type", arch=spec.architecture).text = "hvm"
    etree.SubElement(os_el, "boot", dev="hd")
    etree.SubElement(dom, "on_poweroff").text = "destroy"
    etree.SubElement(dom, "on_reboot").text = "restart"
    etree.SubElement(dom, "on_crash").text = "preserve"  # keep it visible as "error"
    devices = etree.SubElement(dom, "devices")
    if disk_path:
        devices.append(disk_device(disk_path, "vda", disk_format, backing))
    return serialize(dom)


def build_metadata(
    *,
    name: str = "",
    hostname: str = "",
    image: str = "",
    size: str = "",
    disk_volume: str = "",
    overlay: str = "",
    user_data: str = "",
    ssh_keys: tuple[str, ...] = (),
    links: tuple[Link, ...] = (),
    pending_save: str = "",
) -> etree._Element:
    root = etree.Element(_XG + "vm", nsmap={XG_PREFIX: XG_NS})
    for tag, value in (
        ("name", name),
        ("hostname", hostname),
        ("image", image),
        ("size", size),
        ("disk", disk_volume),
        ("overlay", overlay),
        ("user-data", user_data),
        ("pending-save", pending_save),
    ):
        if value:
            etree.SubElement(root, _XG + tag).text = value
    for key in ssh_keys:
        etree.SubElement(root, _XG + "ssh-key").text = key
    for link in links:
        attrs = {"id": link.id, "kind": link.kind, "resource": link.resource}
        attrs["device"] = link.device
        if link.address:
            attrs["address"] = link.address
        etree.SubElement(root, _XG + "link", attrs)
    return root


def _metadata_element(dom: etree._Element) -> etree._Element | None:
    return dom.find(f"metadata/{_XG}vm")


def read_facts(xml: str) -> DomainFacts:
    """Facts of a domain from its (inactive) XML description, in one pass over the
    top-level elements (describe reads thousands of these on a cold start)."""
    dom = parse(xml)
    top: dict[str, etree._Element] = {}
    for child in dom:
        if isinstance(child.tag, str):
            top.setdefault(child.tag, child)
    meta_values: dict[str, str] = {}
    links: list[Link] = []
    meta = None
    container = top.get("metadata")
    if container is not None:
        meta = container.find(_XG + "vm")
    if meta is not None:
        for el in meta:
            if not isinstance(el.tag, str):
                continue
            tag = el.tag[len(_XG) :] if el.tag.startswith(_XG) else el.tag
            if tag == "link":
                links.append(
                    Link(
                        id=el.get("id", ""),
                        kind=el.get("kind", ""),
                        resource=el.get("resource", ""),
                        device=el.get("device", ""),
                        address=el.get("address", ""),
                    )
                )
            elif tag != "ssh-key":
                meta_values[tag] = el.text or ""

    def text(tag: str, default: str = "") -> str:
        el = top.get(tag)
        return (el.text or default) if el is not None else default

    memory = top.get("memory")
    memory_kib = _to_kib(int(memory.text), memory.get("unit", "KiB")) if memory is not None else 0
    os_el = top.get("os")
    os_type = os_el.find("type") if os_el is not None else None
    cputune = top.get("cputune")
    shares = cputune.findtext("shares") if cputune is not None else None
    return DomainFacts(
        id=text("uuid"),
        name=meta_values.get("name") or text("name"),
        cores=int(text("vcpu", "1")),
        memory_mib=memory_kib // 1024,
        architecture=os_type.get("arch", "") if os_type is not None else "",
        hostname=meta_values.get("hostname") or text("title"),
        image=meta_values.get("image", ""),
        size=meta_values.get("size", ""),
        share=int(shares) if shares else None,
        disk_volume=meta_values.get("disk", ""),
        overlay=meta_values.get("overlay", ""),
        links=tuple(links),
        pending_save=meta_values.get("pending-save", ""),
        managed=meta is not None,
    )


_UNITS = {"b": 1 / 1024, "bytes": 1 / 1024, "k": 1, "kib": 1, "kb": 1000 / 1024}
_UNITS |= {"m": 1024, "mib": 1024, "mb": 1000**2 / 1024, "g": 1024**2, "gib": 1024**2}


def _to_kib(value: int, unit: str) -> int:
    return int(value * _UNITS.get(unit.lower(), 1))


def replace_metadata(xml: str, **changes: object) -> str:
    """The domain XML with its ``<xg:vm>`` element rewritten (facts kept unless changed)."""
    dom = parse(xml)
    facts = read_facts(xml)
    meta = _metadata_element(dom)
    ssh_keys = (
        tuple(el.text or "" for el in meta.findall(_XG + "ssh-key")) if meta is not None else ()
    )
    user_data = meta.findtext(_XG + "user-data", "") if meta is not None else ""
    values: dict[str, object] = {
        "name": facts.name,
        "hostname": facts.hostname,
        "image": facts.image,
        "size": facts.size,
        "disk_volume": facts.disk_volume,
        "overlay": facts.overlay,
        "user_data": user_data,
        "ssh_keys": ssh_keys,
        "links": facts.links,
        "pending_save": facts.pending_save,
    }
    values.update(changes)
    new_meta = build_metadata(**values)  # type: ignore[arg-type]
    container = dom.find("metadata")
    if container is None:
        container = etree.Element("metadata")
        dom.insert(3, container)
    if meta is not None:
        container.remove(meta)
    container.append(new_meta)
    return serialize(dom)


def metadata_xml(xml: str, **changes: object) -> str:
    """Only the rewritten ``<xg:vm>`` element, without namespace, for virDomainSetMetadata
    (libvirt puts every element of it into the namespace it is given)."""
    dom = parse(replace_metadata(xml, **changes))
    meta = _metadata_element(dom)
    assert meta is not None
    for el in meta.iter():
        el.tag = etree.QName(el).localname
    etree.cleanup_namespaces(meta)
    return serialize(meta)


def set_resources(xml: str, *, cores: int, memory_mib: int, title: str) -> str:
    """The domain XML with new cores, memory and title (for update)."""
    dom = parse(xml)
    dom.find("vcpu").text = str(cores)
    for tag in ("memory", "currentMemory"):
        el = dom.find(tag)
        if el is None:
            el = etree.SubElement(dom, tag)
        el.set("unit", "MiB")
        el.text = str(memory_mib)
    title_el = dom.find("title")
    if title_el is None:
        title_el = etree.Element("title")
        dom.find("uuid").addnext(title_el)
    title_el.text = title
    return serialize(dom)


def disk_device(
    path: str, target: str, disk_format: str = "raw", backing: tuple[str, str] | None = None
) -> etree._Element:
    disk = etree.Element("disk", type="file", device="disk")
    etree.SubElement(disk, "driver", name="qemu", type=disk_format)
    etree.SubElement(disk, "source", file=path)
    if backing is not None:
        store = etree.SubElement(disk, "backingStore", type="file")
        etree.SubElement(store, "format", type=backing[1])
        etree.SubElement(store, "source", file=backing[0])
    etree.SubElement(disk, "target", dev=target, bus="virtio")
    return disk


def interface_device(network_name: str, mac: str) -> etree._Element:
    iface = etree.Element("interface", type="network")
    etree.SubElement(iface, "mac", address=mac)
    etree.SubElement(iface, "source", network=network_name)
    etree.SubElement(iface, "model", type="virtio")
    return iface


def disk_targets(xml: str) -> list[str]:
    return [t.get("dev", "") for t in parse(xml).findall("devices/disk/target")]


def next_disk_target(xml: str) -> str:
    """The first free virtio disk name (vdb, vdc, …) in the definition."""
    used = set(disk_targets(xml))
    for letter in "bcdefghijklmnopqrstuvwxyz":
        if f"vd{letter}" not in used:
            return f"vd{letter}"
    raise ValueError("no free disk target left (vdb..vdz all used)")


def add_device(xml: str, device: etree._Element) -> str:
    dom = parse(xml)
    devices = dom.find("devices")
    if devices is None:
        devices = etree.SubElement(dom, "devices")
    devices.append(device)
    return serialize(dom)


def find_device(xml: str, link: Link) -> str:
    """The XML of the device a link stands for, as libvirt holds it ("" if gone)."""
    dom = parse(xml)
    if link.kind == "storage":
        for disk in dom.findall("devices/disk"):
            target = disk.find("target")
            if target is not None and target.get("dev") == link.device:
                return serialize(disk)
    else:
        for iface in dom.findall("devices/interface"):
            mac = iface.find("mac")
            if mac is not None and mac.get("address", "").lower() == link.device.lower():
                return serialize(iface)
    return ""


def remove_device(xml: str, link: Link) -> str:
    dom = parse(xml)
    device_xml = find_device(xml, link)
    if not device_xml:
        return xml
    for el in dom.find("devices"):
        if serialize(el) == device_xml:
            dom.find("devices").remove(el)
            break
    return serialize(dom)


# -- networks ----------------------------------------------------------------------------
def network_name(network_id: str) -> str:
    return f"{NETWORK_PREFIX}{network_id}"


def build_network(network_id: str, spec: NetworkSpec) -> str:
    """A libvirt network: VLAN tag, and the ipnetwork mixin's address/gateway/allocation.

    ``allocation = dynamic`` gives a DHCP range over the rest of the subnet; ``static``
    none. The bridge name is left to libvirt (``virbrN``): Linux caps it at 15 characters.
    """
    net = etree.Element("network")
    etree.SubElement(net, "name").text = network_name(network_id)
    etree.SubElement(net, "uuid").text = network_id
    if spec.vlan is not None:
        etree.SubElement(etree.SubElement(net, "vlan"), "tag", id=str(spec.vlan))
    if spec.address:
        subnet = ipaddress.ip_network(spec.address, strict=False)
        gateway = ipaddress.ip_address(spec.gateway) if spec.gateway else next(subnet.hosts())
        ip = etree.SubElement(
            net, "ip", address=str(gateway), prefix=str(subnet.prefixlen), family=_family(subnet)
        )
        if spec.allocation == "dynamic":
            span = dhcp_range(subnet, gateway)
            if span is not None:
                dhcp = etree.SubElement(ip, "dhcp")
                etree.SubElement(dhcp, "range", start=str(span[0]), end=str(span[1]))
    return serialize(net)


def _family(subnet: ipaddress.IPv4Network | ipaddress.IPv6Network) -> str:
    return "ipv6" if subnet.version == 6 else "ipv4"


def dhcp_range(subnet: Any, gateway: Any) -> tuple[Any, Any] | None:
    """The larger run of usable addresses beside the gateway (None: subnet too small)."""
    if subnet.num_addresses < 4:
        return None
    first, last = subnet.network_address + 1, subnet.broadcast_address - 1
    if not first <= gateway <= last:
        return first, last
    below = (first, gateway - 1) if gateway > first else None
    above = (gateway + 1, last) if gateway < last else None
    sides = [s for s in (above, below) if s is not None]
    if not sides:
        return None
    return max(sides, key=lambda s: int(s[1]) - int(s[0]))


@dataclass(frozen=True)
class NetworkFacts:
    id: str
    name: str
    vlan: int | None
    address: str
    gateway: str
    allocation: str


def read_network(xml: str) -> NetworkFacts:
    net = parse(xml)
    tag = net.find("vlan/tag")
    ip = net.find("ip")
    address = gateway = ""
    allocation = "static"
    if ip is not None:
        gateway = ip.get("address", "")
        prefix = ip.get("prefix")
        if prefix is None and ip.get("netmask"):
            prefix = str(ipaddress.ip_network(f"0.0.0.0/{ip.get('netmask')}").prefixlen)
        address = str(ipaddress.ip_network(f"{gateway}/{prefix}", strict=False))
        if ip.find("dhcp") is not None:
            allocation = "dynamic"
    return NetworkFacts(
        id=net.findtext("uuid", ""),
        name=net.findtext("name", ""),
        vlan=int(tag.get("id")) if tag is not None else None,
        address=address,
        gateway=gateway,
        allocation=allocation,
    )


def build_volume(name: str, capacity_bytes: int, volume_format: str = "") -> str:
    vol = etree.Element("volume")
    etree.SubElement(vol, "name").text = name
    etree.SubElement(vol, "capacity", unit="bytes").text = str(capacity_bytes)
    if volume_format:
        etree.SubElement(etree.SubElement(vol, "target"), "format", type=volume_format)
    return serialize(vol)


def volume_format(xml: str) -> str:
    fmt = parse(xml).find("target/format")
    return fmt.get("type", "") if fmt is not None else ""
