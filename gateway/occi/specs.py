"""The neutral specs a backend builds from: what an OCCI request's mixins (os_tpl,
resource_tpl) and attributes ask of a compute, a storage or a network.

The client's own values win over a resource_tpl's; the backend maps OCCI's words (the
architecture ``x64``) to its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from backends.contracts.model import NetworkSpec, StorageSpec, VMSpec
from gateway.occi.errors import bad_request
from gateway.occi.model import Mixin
from gateway.occi.templates import Templates

DEFAULT_CORES = 1
DEFAULT_MEMORY_MIB = 512


def vm_spec(
    templates: Templates, name: str, mixins: Sequence[Mixin], values: dict[str, Any]
) -> VMSpec:
    image = ""
    size = None
    for mixin in mixins:
        if mixin.identifier in templates.images:
            if image:
                raise bad_request("a compute takes one os_tpl mixin")
            image = templates.images[mixin.identifier]
        if mixin.identifier in templates.sizes:
            if size is not None:
                raise bad_request("a compute takes one resource_tpl mixin")
            size = templates.sizes[mixin.identifier]
    cores = size.cores if size else DEFAULT_CORES
    memory_mib = size.memory_mib if size else DEFAULT_MEMORY_MIB
    if "occi.compute.cores" in values:
        cores = int(values["occi.compute.cores"])
    if "occi.compute.memory" in values:
        memory_mib = max(1, round(float(values["occi.compute.memory"]) * 1024))
    # The client's own values win over the resource_tpl's (which the backend would apply
    # over them): the VM is then of no named size.
    named = size is not None and (size.cores, size.memory_mib) == (cores, memory_mib)
    keys = values.get("occi.credentials.ssh.publickey", "")
    return VMSpec(
        name=name,
        cores=cores,
        memory_mib=memory_mib,
        architecture=values.get("occi.compute.architecture", "x64"),
        hostname=values.get("occi.compute.hostname", ""),
        share=values.get("occi.compute.share"),
        image=image,
        size=size.name if size is not None and named else "",
        user_data=values.get("occi.compute.userdata", ""),
        ssh_keys=tuple(k for k in keys.splitlines() if k.strip()),
    )


def storage_spec(name: str, values: dict[str, Any]) -> StorageSpec:
    return StorageSpec(name=name, size_gib=float(values["occi.storage.size"]))


def network_spec(name: str, values: dict[str, Any]) -> NetworkSpec:
    return NetworkSpec(
        name=name,
        vlan=values.get("occi.network.vlan"),
        label=values.get("occi.network.label", ""),
        address=values.get("occi.network.address", ""),
        gateway=values.get("occi.network.gateway", ""),
        allocation=values.get("occi.network.allocation", "dynamic"),
    )
