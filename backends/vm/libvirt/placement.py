"""Which hypervisor host a new VM goes to: a small, pluggable policy.

A policy is a plain function ``(candidates, spec) -> HostLoad | None`` over the hosts that
are reachable and hold the VM's image template; ``None`` means no host fits (the backend
then says why). Policies are registered by name in :data:`POLICIES` and chosen with
``vm.placement`` in the config.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from backends.contracts.model import VMSpec


@dataclass(frozen=True)
class HostLoad:
    """How loaded one host is, as libvirt reports it."""

    uri: str
    memory_mib: int  # physical memory (virNodeGetInfo)
    free_memory_mib: int  # what is left for new VMs (see LibvirtVMBackend._load)
    cpus: int
    active_vms: int = 0
    committed_cores: int = 0


Policy = Callable[[Sequence[HostLoad], VMSpec], "HostLoad | None"]


def least_loaded_memory(candidates: Sequence[HostLoad], spec: VMSpec) -> HostLoad | None:
    """The host with the most free memory that still fits the VM; ties by fewer VMs,
    then by configuration order (candidates come in that order)."""
    fitting = [h for h in candidates if h.free_memory_mib >= spec.memory_mib]
    if not fitting:
        return None
    return max(fitting, key=lambda h: (h.free_memory_mib, -h.active_vms))


def first_fit(candidates: Sequence[HostLoad], spec: VMSpec) -> HostLoad | None:
    """The first host in configuration order that fits: packs VMs, leaves hosts empty."""
    return next((h for h in candidates if h.free_memory_mib >= spec.memory_mib), None)


POLICIES: dict[str, Policy] = {
    "least-loaded-memory": least_loaded_memory,
    "first-fit": first_fit,
}
