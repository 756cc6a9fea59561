"""Virtual clusters (the LinuxSSI idea on VMs): N computes built from one template.

Neutral on purpose: it drives any :class:`VMBackend` through the contract only, and keeps
no records of its own. The front end owns the OCCI ``cluster`` kind and the membership
records; this module gives it the operations with the guarantees a cluster needs:

* member ids are derived from the cluster id and the member's index (UUIDv5), so after a
  crash the members of a half-made cluster can be found again and removed;
* creating or growing a cluster is all or nothing: when one member cannot be made, the
  members made by that call are deleted again before the error is raised;
* start/stop of the whole cluster act on every member that needs it, skip the ones
  already there, and report per member what failed instead of stopping at the first.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

from backends.contracts.interfaces import BackendError, InvalidSpec, UnknownResource, VMBackend
from backends.contracts.model import VMInfo, VMSpec

MAX_MEMBERS = 1024
_NAMESPACE = uuid.UUID("6f1d1c9e-3b0a-5a7e-9c41-8d2f0e5b7a10")  # xtreemgate clusters


def member_id(cluster_id: str, index: int) -> str:
    """The compute id of member ``index`` of a cluster (stable, so it can be found again)."""
    return str(uuid.uuid5(_NAMESPACE, f"{cluster_id}/{index}"))


def next_members(cluster_id: str, existing: Iterable[str], count: int) -> list[tuple[int, str]]:
    """(index, id) of the ``count`` members :meth:`VirtualClusters.add` makes next: the
    lowest free indexes. A caller that keeps records can write them before the VMs exist."""
    existing = set(existing)
    if count < 1 or len(existing) + count > MAX_MEMBERS:
        raise InvalidSpec(
            f"a cluster has 1..{MAX_MEMBERS} members; asked to add {count} to {len(existing)}"
        )
    chosen: list[tuple[int, str]] = []
    index = 0
    while len(chosen) < count:
        vm_id = member_id(cluster_id, index)
        if vm_id not in existing:
            chosen.append((index, vm_id))
        index += 1
    return chosen


def member_spec(template: VMSpec, index: int) -> VMSpec:
    """A member's spec: the template with a numbered name and hostname."""
    base = template.hostname or template.name
    return replace(template, name=f"{template.name}-{index}", hostname=f"{base}-{index}")


@dataclass(frozen=True)
class ClusterResult:
    """What a cluster-wide action did: the members' facts after it, and per-member errors."""

    members: dict[str, VMInfo] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    # the exception behind each error, so a front end can answer with its own status
    causes: dict[str, BackendError] = field(default_factory=dict)

    def failed(self, vm_id: str, exc: BackendError) -> None:
        self.errors[vm_id] = str(exc)
        self.causes[vm_id] = exc

    @property
    def ok(self) -> bool:
        return not self.errors


class VirtualClusters:
    """Cluster operations over a VM backend."""

    def __init__(self, backend: VMBackend) -> None:
        self.backend = backend

    def create(self, cluster_id: str, template: VMSpec, count: int) -> list[VMInfo]:
        """Make ``count`` members (indexes 0..count-1), all or none."""
        return self.add(cluster_id, template, (), count)

    def add(
        self, cluster_id: str, template: VMSpec, existing: Iterable[str], count: int = 1
    ) -> list[VMInfo]:
        """Add ``count`` members at the lowest free indexes; all or none of them."""
        made: list[VMInfo] = []
        try:
            for index, vm_id in next_members(cluster_id, existing, count):
                made.append(self.backend.create(vm_id, member_spec(template, index)))
        except BaseException:
            for info in made:
                try:
                    self.backend.delete(info.id)
                except BackendError:
                    continue  # best effort: the original error is what the caller needs
            raise
        return made

    def evict(self, members: Sequence[str]) -> ClusterResult:
        """Delete these members (a member that is already gone counts as evicted)."""
        result = ClusterResult()
        for vm_id in members:
            try:
                self.backend.delete(vm_id)
            except UnknownResource:
                continue
            except BackendError as exc:
                result.failed(vm_id, exc)
        return result

    def start(self, members: Iterable[str]) -> ClusterResult:
        return self._all(members, "start", "", skip="active")

    def stop(self, members: Iterable[str], method: str = "") -> ClusterResult:
        return self._all(members, "stop", method, skip="inactive")

    def describe(self, members: Iterable[str]) -> dict[str, VMInfo]:
        return self.backend.describe(list(members))

    def _all(self, members: Iterable[str], action: str, method: str, skip: str) -> ClusterResult:
        members = list(members)
        result = ClusterResult()
        current = self.backend.describe(members)
        for vm_id in members:
            info = current.get(vm_id)
            if info is None:
                result.failed(vm_id, UnknownResource(f"compute {vm_id} does not exist"))
                continue
            if info.state == skip:
                result.members[vm_id] = info
                continue
            try:
                result.members[vm_id] = self.backend.act(vm_id, action, method)
            except BackendError as exc:
                result.failed(vm_id, exc)
        return result
