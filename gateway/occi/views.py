"""An entity as a client sees it: the ownership record's facts, the state the VM backend
reports now, the actions the OCCI state diagrams allow in that state (GFD.224 §3.1), and
its links.

The backend is asked once per kind of thing for many entities, never once per entity.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from backends.contracts.interfaces import VMBackend
from backends.contracts.model import NetworkInfo, Principal, StorageInfo, VMInfo
from backends.contracts.platform import occi_architecture
from backends.store import Database
from backends.store.tables.occi import OCCIEntity
from gateway.occi import infrastructure as infra
from gateway.occi import records
from gateway.occi.authorisation import Authorisation
from gateway.occi.categories import Categories
from gateway.occi.entity import Entity
from gateway.occi.errors import backend_errors
from gateway.occi.model import LINK, RESOURCE, Kind, Mixin, Registry

# Which actions each state allows (GFD.224 §3.1).
COMPUTE_ACTIONS = {
    "active": ("stop", "restart", "suspend", "save"),
    "inactive": ("start", "save"),
    "suspended": ("start", "stop"),
    "error": ("start", "stop"),  # a crashed domain: poweroff, or destroy and start again
}
STORAGE_ACTIONS = {"online": ("offline",), "offline": ("online",), "error": ("online", "offline")}
NETWORK_ACTIONS = {"active": ("down",), "inactive": ("up",), "error": ("up", "down")}

Facts = VMInfo | StorageInfo | NetworkInfo


@dataclass(frozen=True, kw_only=True)
class Views:
    """Entities from records and the backend's facts."""

    db: Database
    vm: VMBackend
    categories: Categories
    authorisation: Authorisation

    def entity(self, principal: Principal, kind: Kind, entity_id: str) -> Entity:
        record = self.authorisation.record(principal, kind, entity_id)
        return self.entities(principal, [record])[0]

    def entities(self, principal: Principal, records_: Sequence[OCCIEntity]) -> list[Entity]:
        """Full views of the records the caller may read, with one backend call per kind."""
        registry = self.categories.registry(principal.name)  # the caller's own user mixins
        visible = [r for r in records_ if self.authorisation.may_read(principal, r)]
        by_kind: dict[str, list[str]] = {}
        for record in visible:
            by_kind.setdefault(record.kind, []).append(record.id)
        facts: dict[str, Facts] = {}
        with backend_errors("reading state from the hypervisor"):
            if infra.COMPUTE.identifier in by_kind:
                facts.update(self.vm.describe(by_kind[infra.COMPUTE.identifier]))
            if infra.STORAGE.identifier in by_kind:
                facts.update(self.vm.describe_storage(by_kind[infra.STORAGE.identifier]))
            if infra.NETWORK.identifier in by_kind:
                facts.update(self.vm.describe_networks(by_kind[infra.NETWORK.identifier]))
        link_records = records.get_many(self.db, [i for r in visible for i in (r.links or [])])
        member_states = self._member_states(by_kind.get(infra.CLUSTER.identifier, []))
        out = []
        for record in visible:
            links = [
                view(registry, link_records[i], None, {})
                for i in (record.links or [])
                if i in link_records
            ]
            out.append(view(registry, record, facts.get(record.id), member_states, links))
        return out

    def _member_states(self, cluster_ids: Sequence[str]) -> dict[str, list[str]]:
        """Each cluster's members' states, from one backend call for all of them."""
        if not cluster_ids:
            return {}
        members = {
            cluster_id: [
                link.source.rpartition("/")[2]
                for link in records.linked_to(self.db, infra.CLUSTER.location + cluster_id)
                if link.kind == infra.CLUSTERMEMBER.identifier
            ]
            for cluster_id in cluster_ids
        }
        all_ids = [m for ids in members.values() for m in ids]
        with backend_errors("reading cluster members from the hypervisor"):
            infos = self.vm.describe(all_ids) if all_ids else {}
        return {
            cid: [infos[m].state if m in infos else "error" for m in ids]
            for cid, ids in members.items()
        }


def view(
    registry: Registry,
    record: OCCIEntity,
    facts: Facts | None,
    member_states: Mapping[str, list[str]],
    links: list[Entity] | None = None,
) -> Entity:
    """One entity from its record and the backend's facts (None: the backend has none)."""
    kind = registry.kinds.get(record.kind) or RESOURCE
    mixins = [registry.mixins[m] for m in (record.mixins or []) if m in registry.mixins]
    attributes: dict[str, Any] = {"occi.core.id": record.id}
    if record.title:
        attributes["occi.core.title"] = record.title
    if record.summary and not kind.is_a(LINK):
        attributes["occi.core.summary"] = record.summary
    attributes.update(record.attributes or {})
    allowed: tuple[str, ...] = ()
    if kind is infra.COMPUTE:
        allowed = COMPUTE_ACTIONS.get(_compute_facts(facts, attributes), ())
    elif kind is infra.STORAGE:
        allowed = STORAGE_ACTIONS.get(_storage_facts(facts, attributes), ())
    elif kind is infra.NETWORK:
        allowed = NETWORK_ACTIONS.get(_network_facts(facts, attributes, mixins), ())
    elif kind is infra.CLUSTER:
        _cluster_facts(member_states.get(record.id, []), attributes)
        allowed = tuple(a.term for a in infra.CLUSTER.actions)
    entity = Entity(
        id=record.id,
        kind=kind,
        mixins=mixins,
        attributes=attributes,
        actions=[a for a in kind.actions if a.term in allowed],
        links=links or [],
    )
    if record.source:
        source_kind = registry.kind_by_term(record.source.strip("/").split("/")[0])
        target_kind = attributes.pop("occi.core.target.kind", "") or ""
        if not target_kind:
            found = registry.kind_by_term(record.target.strip("/").split("/")[0])
            target_kind = found.identifier if found else ""
        entity.source = (record.source, source_kind.identifier if source_kind else "")
        entity.target = (record.target, target_kind)
        attributes["occi.core.source"] = record.source
        attributes["occi.core.target"] = record.target
    return entity


def _unknown_to_backend(attributes: dict[str, Any], prefix: str, what: str) -> str:
    """A record whose resource the backend no longer has (describe() leaves it out)."""
    attributes[f"{prefix}.state"] = "error"
    attributes[f"{prefix}.state.message"] = f"the hypervisor no longer knows this {what}"
    return "error"


def _compute_facts(info: VMInfo | None, attributes: dict[str, Any]) -> str:
    """The compute's attributes from the backend's facts; returns its state."""
    if info is None:
        return _unknown_to_backend(attributes, "occi.compute", "VM")
    attributes.update(
        {
            "occi.compute.architecture": occi_architecture(info.architecture),
            "occi.compute.cores": info.cores,
            "occi.compute.memory": round(info.memory_mib / 1024, 3),
            "occi.compute.state": info.state,
        }
    )
    if info.hostname:
        attributes["occi.compute.hostname"] = info.hostname
    if info.state_message:
        attributes["occi.compute.state.message"] = info.state_message
    return info.state


def _storage_facts(info: StorageInfo | None, attributes: dict[str, Any]) -> str:
    if info is None:
        return _unknown_to_backend(attributes, "occi.storage", "volume")
    attributes.update({"occi.storage.size": info.size_gib, "occi.storage.state": info.state})
    if info.state_message:
        attributes["occi.storage.state.message"] = info.state_message
    return info.state


def _network_facts(
    info: NetworkInfo | None, attributes: dict[str, Any], mixins: list[Mixin]
) -> str:
    if info is None:
        return _unknown_to_backend(attributes, "occi.network", "network")
    attributes["occi.network.state"] = info.state
    if info.vlan is not None:
        attributes["occi.network.vlan"] = info.vlan
    if info.label:
        attributes["occi.network.label"] = info.label
    if infra.IPNETWORK in mixins:
        for key in ("address", "gateway", "allocation"):
            if getattr(info, key):
                attributes[f"occi.network.{key}"] = getattr(info, key)
    return info.state


def _cluster_facts(states: list[str], attributes: dict[str, Any]) -> None:
    """A cluster's size and state, from its members' states: one state when they agree,
    else active if any member is, else error; the message counts them."""
    attributes["xtreemgate.cluster.size"] = len(states)
    distinct = sorted(set(states))
    if not states:
        state = "inactive"
    elif len(distinct) == 1:
        state = distinct[0]
    else:
        state = "active" if "active" in distinct else "error"
    attributes["xtreemgate.cluster.state"] = state
    if len(distinct) > 1:
        attributes["xtreemgate.cluster.state.message"] = ", ".join(
            f"{states.count(s)} {s}" for s in distinct
        )
