"""xtreemgate's virtual clusters (the seed's LinuxSSI idea, on VMs): a cluster record and
N member computes built from its os_tpl/resource_tpl, each member linked to its cluster by
a ``clustermember`` link; actions reach every member.

The VM side (stable member ids, all-or-nothing growth, per-member results of start/stop)
is :class:`backends.services.clusters.VirtualClusters`, which drives any VMBackend through the
contract; this module keeps the OCCI records around it (records first, then the VMs).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from backends.contracts.model import Principal, VMSpec
from backends.services.clusters import ClusterResult, VirtualClusters, member_spec, next_members
from backends.store.tables.occi import OCCIEntity
from gateway.occi import infrastructure as infra
from gateway.occi import records
from gateway.occi.entity import new_id
from gateway.occi.errors import OCCIError, backend_errors, bad_request
from gateway.occi.model import Action, Mixin


class ClusterOperations:
    """Cluster create/grow/shrink/start/stop; mixed into :class:`OCCIService`."""

    @property
    def clusters(self) -> VirtualClusters:
        return VirtualClusters(self.vm)

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
        self._add_members(record, int(values.get("xtreemgate.cluster.size", 1)))

    def _member_template(self, cluster: OCCIEntity) -> tuple[VMSpec, list[str]]:
        """The spec members are built from, and the template mixins they carry."""
        registry = self.registry()
        mixins = [
            registry.mixins[m]
            for m in cluster.mixins
            if m in registry.mixins and (m in self.images or m in self.sizes)
        ]
        name = cluster.title or f"cluster-{cluster.id[:8]}"
        return self.vm_spec(name, mixins, {}), [m.identifier for m in mixins]

    def _add_members(self, cluster: OCCIEntity, count: int) -> None:
        """``count`` members, all or none: their records first (so a crash leaves them
        visible, in state error), then the VMs; on failure both go again."""
        if count < 1:
            return  # an empty cluster is allowed; add_node grows it
        template, mixins = self._member_template(cluster)
        existing = self.cluster_members(cluster.id)
        with backend_errors("growing the cluster"):
            chosen = next_members(cluster.id, existing, count)
        written: list[str] = []
        try:
            for index, member_id in chosen:
                written += self._member_records(cluster, member_id, index, template, mixins)
            with backend_errors(f"creating {count} cluster member(s)"):
                self.clusters.add(cluster.id, template, existing, count)
        except BaseException:
            records.remove(self.db, *written)
            raise

    def _member_records(
        self, cluster: OCCIEntity, member_id: str, index: int, template: VMSpec, mixins: list[str]
    ) -> list[str]:
        """The member's compute record and its clustermember link; returns their ids."""
        link_id = new_id()
        member = OCCIEntity(
            id=member_id,
            kind=infra.COMPUTE.identifier,
            owner=cluster.owner,
            vo=cluster.vo,
            title=member_spec(template, index).name,
            summary=f"member {index} of cluster {cluster.id}",
            mixins=mixins,
            links=[link_id],
            source="",
            target="",
            attributes={},
        )
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
        records.insert(self.db, member)
        records.insert(self.db, link)
        return [link_id, member_id]

    def _evict_members(self, members: Sequence[str]) -> None:
        """Delete these members' VMs (one already gone counts as evicted) and records."""
        for member in members:
            self._delete_compute_links(member)
        result = self.clusters.evict(members)
        gone = [m for m in members if m not in result.errors]
        ids = [i for m in records.get_many(self.db, gone).values() for i in (m.links or [])]
        records.remove(self.db, *ids, *gone)
        _raise_first(result, "evicting cluster members")

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
            self._add_members(record, 1)
            return
        if action is infra.EVICT_NODE:
            if not members:
                raise OCCIError(409, "the cluster has no member to evict")
            wanted = params.get("xtreemgate.cluster.node", "").rstrip("/").rpartition("/")[2]
            if wanted and wanted not in members:
                raise bad_request(f"{wanted} is not a member of this cluster")
            self._evict_members([wanted or members[-1]])
            return
        if not members:
            return
        if action is infra.CLUSTER_START:
            result = self.clusters.start(members)
        else:
            result = self.clusters.stop(members, method)
        _raise_first(result, f"{action.term} on the cluster")

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


def _raise_first(result: ClusterResult, doing: str) -> None:
    """A cluster action that failed on some members: the first failure's status, with
    every member's reason (the others were acted on; each action is complete alone)."""
    if result.ok:
        return
    first = next(iter(result.causes.values()))
    reasons = "; ".join(f"member {m}: {e}" for m, e in result.errors.items())
    with backend_errors(f"{doing} failed for {len(result.errors)} member(s)"):
        raise type(first)(reasons)
