"""``[vm]``: the libvirt plugin's hypervisors, pools, placement and named sizes."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from backends.contracts.settings import Section


class VMSize(Section):
    """A named size (OCCI resource_tpl)."""

    cores: int = Field(ge=1, le=1024)
    memory_mib: int = Field(ge=16, le=16 * 1024 * 1024)


def _default_sizes() -> dict[str, VMSize]:
    return {
        "small": VMSize(cores=1, memory_mib=1024),
        "medium": VMSize(cores=2, memory_mib=4096),
        "large": VMSize(cores=4, memory_mib=8192),
    }


class VMSettings(Section):
    # libvirt URIs of the hypervisor hosts; the embedded default needs no daemon.
    uris: list[str] = Field(default_factory=lambda: ["test:///default"], min_length=1)
    # Storage pool (on every host) for VM disks and OCCI storage volumes; "" takes the
    # host's "default" pool, or the test driver's "default-pool".
    pool: str = ""
    # Pool whose volumes are the image templates (os_tpl); "" = the same as pool.
    image_pool: str = ""
    # Where the qcow2 overlays of VMs made from volume images (storage.image_volume) go;
    # "" = <state_dir>/vm-disks. Remote hypervisors must see it at the same path.
    disk_dir: str = ""
    # Placement policy for new VMs: least-loaded-memory | first-fit.
    placement: Literal["least-loaded-memory", "first-fit"] = "least-loaded-memory"
    # Domain type in the XML; "" picks "test" for test:// URIs and "kvm" otherwise
    # (set "qemu" for hosts without KVM, where QEMU emulates in software).
    domain_type: Literal["", "kvm", "qemu", "test", "xen", "lxc"] = ""
    # Memory overcommit for placement: a host takes VMs up to memory * overcommit.
    overcommit: float = Field(1.0, ge=0.1, le=1000)
    # After a host fails to answer, calls fail at once for this long before a retry.
    retry_seconds: float = Field(10.0, ge=0, le=3600)
    # OCCI resource_tpl: named sizes a compute can be created with.
    sizes: dict[str, VMSize] = Field(default_factory=_default_sizes)
