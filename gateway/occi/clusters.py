"""xtreemgate's virtual clusters (the seed's LinuxSSI idea, on VMs): a cluster record and
N member computes built from its os_tpl/resource_tpl through the VMBackend contract, each
member linked to its cluster by a ``clustermember`` link; actions reach every member.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

from backends.interfaces import UnknownResource
from backends.model import Principal
from backends.store.models import OCCIEntity
from gateway.occi import infrastructure as infra
from gateway.occi import records
from gateway.occi.entity import new_id
from gateway.occi.errors import OCCIError, backend_errors, bad_request
from gateway.occi.model import Action, Mixin


class ClusterOperations:
    """Cluster create/grow/shrink/start/stop; mixed into :class:`OCCIService`."""

    def _create_cluster(
        self,
        principal: Principal,
        record: OCCIEntity,
        mixins: Sequence[Mixin],
        values: dict[str, Any],
    ) -> None:
        if not any(m.identifier in self.images for m in mixins):
            raise bad_request(
                "a cluster needs an os_tpl mixin: the template its members are built from"
            )
        template = next(m.identifier for m in mixins if m.identifier in self.images)
        record.attributes = {**record.attributes, "xtreemgate.cluster.template": template}
        records.save(self.db, record)
        size = int(values.get("xtreemgate.cluster.size", 1))
        added: list[str] = []
        try:
            for _ in range(size):
                added.append(self._add_member(principal, record))
        except BaseException:
            for member in reversed(added):
                self._remove_member(member)
            raise

    def _add_member(self, principal: Principal, cluster: OCCIEntity) -> str:
        registry = self.registry()
        member_mixins = [
            registry.mixins[m]
            for m in cluster.mixins
            if m in registry.mixins and (m in self.images or m in self.sizes)
        ]
        member_id = new_id()
        index = len(records.linked_to(self.db, infra.CLUSTER.location + cluster.id))
        name = f"{cluster.title or 'cluster-' + cluster.id[:8]}-{index}-{member_id[:4]}"
        member = OCCIEntity(
            id=member_id,
            kind=infra.COMPUTE.identifier,
            owner=cluster.owner,
            vo=cluster.vo,
            title=name,
            summary=f"member of cluster {cluster.id}",
            mixins=[m.identifier for m in member_mixins],
            links=[],
            source="",
            target="",
            attributes={},
        )
        link_id = new_id()
        link = OCCIEntity(
            id=link_id,
            kind=infra.CLUSTERMEMBER.identifier,
            owner=cluster.owner,
            vo=cluster.vo,
            title="",
            summary="",
            mixins=[],
            links=[],
            attributes={},
            source=infra.COMPUTE.location + member_id,
            target=infra.CLUSTER.location + cluster.id,
        )
        member.links = [link_id]
        records.insert(self.db, member)
        records.insert(self.db, link)
        try:
            with backend_errors(f"creating cluster member {index}"):
                self.vm.create(member_id, self.vm_spec(name, member_mixins, {}))
        except BaseException:
            records.remove(self.db, link_id, member_id)
            raise
        return member_id

    def _remove_member(self, member_id: str) -> None:
        # already gone on the hypervisor: only the records remain
        with backend_errors(f"deleting member {member_id}"), contextlib.suppress(UnknownResource):
            self.vm.delete(member_id)
        record = records.get(self.db, member_id)
        records.remove(self.db, *(record.links if record else []), member_id)

    def cluster_members(self, cluster_id: str) -> list[str]:
        return [
            link.source.rpartition("/")[2]
            for link in sorted(
                records.linked_to(self.db, infra.CLUSTER.location + cluster_id),
                key=lambda r: (r.created, r.id),
            )
            if link.kind == infra.CLUSTERMEMBER.identifier
        ]

    def _act_cluster(
        self,
        principal: Principal,
        record: OCCIEntity,
        action: Action,
        method: str,
        params: dict[str, str],
    ) -> None:
        members = self.cluster_members(record.id)
        if action is infra.ADD_NODE:
            self._add_member(principal, record)
            return
        if action is infra.EVICT_NODE:
            if not members:
                raise OCCIError(409, "the cluster has no member to evict")
            wanted = params.get("xtreemgate.cluster.node", "").rstrip("/").rpartition("/")[2]
            if wanted and wanted not in members:
                raise bad_request(f"{wanted} is not a member of this cluster")
            victim = wanted or members[-1]
            self._delete_compute_links(victim)
            self._remove_member(victim)
            return
        infos = {}
        with backend_errors("reading cluster members"):
            infos = self.vm.describe(members) if members else {}
        for member in members:
            state = infos[member].state if member in infos else "error"
            if action is infra.CLUSTER_START and state == "active":
                continue  # starting a cluster starts those not running yet
            if action is infra.CLUSTER_STOP and state == "inactive":
                continue
            with backend_errors(f"{action.term} on member {member}"):
                self.vm.act(member, action.term, method)

    def _member_states(self, clusters: Sequence[OCCIEntity]) -> dict[str, list[str]]:
        if not clusters:
            return {}
        members: dict[str, list[str]] = {}
        for cluster in clusters:
            location = infra.CLUSTER.location + cluster.id
            members[cluster.id] = [
                link.source.rpartition("/")[2]
                for link in records.linked_to(self.db, location)
                if link.kind == infra.CLUSTERMEMBER.identifier
            ]
        all_ids = [m for ids in members.values() for m in ids]
        with backend_errors("reading cluster members from the hypervisor"):
            infos = self.vm.describe(all_ids) if all_ids else {}
        return {
            cid: [infos[m].state if m in infos else "error" for m in ids]
            for cid, ids in members.items()
        }
