"""xtreemgate's virtual clusters (the seed's LinuxSSI idea, on VMs): a cluster record and
N member computes built from its os_tpl/resource_tpl, each member linked to its cluster by
a ``clustermember`` link; actions reach every member.

The VM side (stable member ids, all-or-nothing growth, per-member results of start/stop)
is :class:`backends.services.clusters.VirtualClusters`, which drives any VMBackend through the
contract; this module keeps the OCCI records around it (records first, then the VMs).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from backends.contracts.interfaces import VMBackend
from backends.contracts.model import VMSpec
from backends.services.clusters import ClusterResult, VirtualClusters, member_spec, next_members
from backends.store import Database
from backends.store.tables.occi import OCCIEntity
from gateway.occi import infrastructure as infra
from gateway.occi import records
from gateway.occi.categories import Categories
from gateway.occi.entity import new_id
from gateway.occi.errors import OCCIError, backend_errors, bad_request
from gateway.occi.links import Links
from gateway.occi.model import Action, Mixin
from gateway.occi.specs import vm_spec


@dataclass(frozen=True, kw_only=True)
class Clusters:
    """Cluster create/grow/shrink/start/stop."""

    db: Database
    vm: VMBackend
    categories: Categories
    links: Links

    @property
    def _clusters(self) -> VirtualClusters:
        return VirtualClusters(self.vm)

    def create(self, record: OCCIEntity, mixins: Sequence[Mixin], values: dict[str, Any]) -> None:
        """The cluster's first members, from its os_tpl (the record is already written)."""
        images = self.categories.templates.images
        template = next((m.identifier for m in mixins if m.identifier in images), None)
        if template is None:
            raise bad_request(
                "a cluster needs an os_tpl mixin: the template its members are built from"
            )
        record.attributes = {**record.attributes, "xtreemgate.cluster.template": template}
        records.save(self.db, record)
        self._add_members(record, int(values.get("xtreemgate.cluster.size", 1)))

    def _member_template(self, cluster: OCCIEntity) -> tuple[VMSpec, list[str]]:
        """The spec members are built from, and the template mixins they carry."""
        registry = self.categories.registry()
        templates = self.categories.templates
        mixins = [
            registry.mixins[m]
            for m in cluster.mixins
            if m in registry.mixins and templates.is_template(m)
        ]
        name = cluster.title or f"cluster-{cluster.id[:8]}"
        return vm_spec(templates, name, mixins, {}), [m.identifier for m in mixins]

    def _add_members(self, cluster: OCCIEntity, count: int) -> None:
        """``count`` members, all or none: their records first (so a crash leaves them
        visible, in state error), then the VMs; on failure both go again."""
        if count < 1:
            return  # an empty cluster is allowed; add_node grows it
        template, mixins = self._member_template(cluster)
        existing = self.members(cluster.id)
        with backend_errors("growing the cluster"):
            chosen = next_members(cluster.id, existing, count)
        written: list[str] = []
        try:
            for index, member_id in chosen:
                written += self._member_records(cluster, member_id, index, template, mixins)
            with backend_errors(f"creating {count} cluster member(s)"):
                self._clusters.add(cluster.id, template, existing, count)
        except BaseException:
            records.remove(self.db, *written)
            raise

    def _member_records(
        self, cluster: OCCIEntity, member_id: str, index: int, template: VMSpec, mixins: list[str]
    ) -> list[str]:
        """The member's compute record and its clustermember link; returns their ids."""
        link_id = new_id()
        member = records.new(
            member_id,
            infra.COMPUTE,
            cluster.owner,
            cluster.vo,
            title=member_spec(template, index).name,
            summary=f"member {index} of cluster {cluster.id}",
            mixins=mixins,
            links=[link_id],
        )
        link = records.new(
            link_id,
            infra.CLUSTERMEMBER,
            cluster.owner,
            cluster.vo,
            source=infra.COMPUTE.location + member_id,
            target=infra.CLUSTER.location + cluster.id,
        )
        records.insert(self.db, member)
        records.insert(self.db, link)
        return [link_id, member_id]

    def evict(self, members: Sequence[str]) -> None:
        """Delete these members' VMs (one already gone counts as evicted) and records."""
        for member in members:
            self.links.delete_from_compute(member)
        result = self._clusters.evict(members)
        gone = [m for m in members if m not in result.errors]
        ids = [i for m in records.get_many(self.db, gone).values() for i in (m.links or [])]
        records.remove(self.db, *ids, *gone)
        _raise_first(result, "evicting cluster members")

    def members(self, cluster_id: str) -> list[str]:
        """The members' ids, oldest first."""
        return [
            link.source.rpartition("/")[2]
            for link in sorted(
                records.linked_to(self.db, infra.CLUSTER.location + cluster_id),
                key=lambda r: (r.created, r.id),
            )
            if link.kind == infra.CLUSTERMEMBER.identifier
        ]

    def act(self, record: OCCIEntity, action: Action, method: str, params: dict[str, str]) -> None:
        members = self.members(record.id)
        if action is infra.ADD_NODE:
            self._add_members(record, 1)
            return
        if action is infra.EVICT_NODE:
            if not members:
                raise OCCIError(409, "the cluster has no member to evict")
            wanted = params.get("xtreemgate.cluster.node", "").rstrip("/").rpartition("/")[2]
            if wanted and wanted not in members:
                raise bad_request(f"{wanted} is not a member of this cluster")
            self.evict([wanted or members[-1]])
            return
        if not members:
            return
        if action is infra.CLUSTER_START:
            result = self._clusters.start(members)
        else:
            result = self._clusters.stop(members, method)
        _raise_first(result, f"{action.term} on the cluster")


def _raise_first(result: ClusterResult, doing: str) -> None:
    """A cluster action that failed on some members: the first failure's status, with
    every member's reason (the others were acted on; each action is complete alone)."""
    if result.ok:
        return
    first = next(iter(result.causes.values()))
    reasons = "; ".join(f"member {m}: {e}" for m, e in result.errors.items())
    with backend_errors(f"{doing} failed for {len(result.errors)} member(s)"):
        raise type(first)(reasons)
