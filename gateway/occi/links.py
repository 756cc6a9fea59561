"""OCCI links between resources: networkinterface (compute → network) and storagelink
(compute → storage), recorded, then made devices in the VM by the backend."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from backends.contracts.interfaces import UnknownResource, VMBackend
from backends.contracts.model import Principal
from backends.store import Database
from backends.store.tables.occi import OCCIEntity
from gateway.occi import infrastructure as infra
from gateway.occi import records
from gateway.occi.authorisation import Authorisation
from gateway.occi.categories import Categories
from gateway.occi.entity import CategoryRef, Document, LinkRef, relative_location
from gateway.occi.errors import backend_errors, bad_request
from gateway.occi.model import Kind, Mixin, split_identifier

# What each link kind's target is (its source is always a compute).
_TARGETS = {
    infra.NETWORKINTERFACE.identifier: infra.NETWORK,
    infra.STORAGELINK.identifier: infra.STORAGE,
}


@dataclass(frozen=True, kw_only=True)
class Links:
    """Create and delete networkinterfaces and storagelinks."""

    db: Database
    vm: VMBackend
    categories: Categories
    authorisation: Authorisation

    def inline(self, kind: Kind, source_id: str, link: LinkRef) -> tuple[Kind, Document, str]:
        """A link given inside a resource's creation, as the request that creates it on its
        own: (link kind, document, link id or "" for a new one)."""
        registry = self.categories.registry()
        link_kind = registry.kinds.get(link.category) if link.category else None
        target = relative_location(link.target)
        if link_kind is None:
            link_kind = (
                infra.NETWORKINTERFACE if target.startswith("/network/") else infra.STORAGELINK
            )
        doc = Document(
            categories=[CategoryRef(*split_identifier(link_kind.identifier), cls="kind")]
            + [CategoryRef(*split_identifier(m), cls="mixin") for m in link.mixins],
            attributes={
                **link.attributes,
                "occi.core.source": kind.location + source_id,
                "occi.core.target": target,
            },
        )
        link_id = link.self_.rstrip("/").rpartition("/")[2] if link.self_ else ""
        return link_kind, doc, link_id

    def create(
        self,
        principal: Principal,
        kind: Kind,
        link_id: str,
        mixins: Sequence[Mixin],
        values: dict[str, Any],
        vo: str,
    ) -> None:
        """Record the link, then make it a device in the VM; on failure nothing stays."""
        source = relative_location(str(values.pop("occi.core.source", "")))
        target = relative_location(str(values.pop("occi.core.target", "")))
        if not source or not target:
            raise bad_request(f"a {kind.term} needs occi.core.source and occi.core.target")
        source_kind, source_id = self.categories.split_location(source)
        target_kind, target_id = self.categories.split_location(target)
        want = _TARGETS.get(kind.identifier)
        if source_kind is not infra.COMPUTE or target_kind is not want:
            raise bad_request(
                f"a {kind.term} links a compute to a {want.term if want else '?'} "
                f"(got {source} → {target})"
            )
        auth = self.authorisation
        source_record = auth.record(principal, source_kind, source_id)
        target_record = auth.record(principal, target_kind, target_id)
        auth.require_on(principal, "update", source_kind, source_record)
        auth.require_on(principal, "link", target_kind, target_record)
        record = records.new(
            link_id,
            kind,
            principal.name,
            vo,
            title=str(values.pop("occi.core.title", "")),
            mixins=[m.identifier for m in mixins],
            source=source,
            target=target,
            attributes=records.kept_attributes(kind, values),
        )
        records.insert(self.db, record)
        try:
            with backend_errors(f"attaching {target} to {source}"):
                record.attributes = {
                    **record.attributes,
                    **self._attach(kind, link_id, source_id, target_id, values),
                }
            records.save(self.db, record)
            fresh = records.get(self.db, source_id)
            if fresh is not None:
                records.save(self.db, records.copy(fresh, links=[*fresh.links, link_id]))
        except BaseException:
            records.remove(self.db, link_id)
            raise

    def _attach(
        self, kind: Kind, link_id: str, source_id: str, target_id: str, values: dict[str, Any]
    ) -> dict[str, str]:
        """The device in the VM; returns the attributes the backend chose."""
        if kind is infra.NETWORKINTERFACE:
            mac = self.vm.attach_network(
                link_id,
                source_id,
                target_id,
                mac=values.get("occi.networkinterface.mac", ""),
                address=values.get("occi.networkinterface.address", ""),
            )
            return {"occi.networkinterface.mac": mac, "occi.networkinterface.state": "active"}
        device = self.vm.attach_storage(
            link_id, source_id, target_id, device=values.get("occi.storagelink.deviceid", "")
        )
        return {"occi.storagelink.deviceid": device, "occi.storagelink.state": "active"}

    def delete_from_compute(self, compute_id: str) -> None:
        """Every networkinterface and storagelink of a compute."""
        for link in records.linked_to(self.db, infra.COMPUTE.location + compute_id):
            if link.kind in (infra.NETWORKINTERFACE.identifier, infra.STORAGELINK.identifier):
                self.delete(link)

    def delete(self, record: OCCIEntity) -> None:
        """The device (one already gone counts as detached), then the records."""
        if record.kind != infra.CLUSTERMEMBER.identifier:
            doing = f"detaching {record.target} from {record.source}"
            with backend_errors(doing), contextlib.suppress(UnknownResource):
                self.vm.detach(record.id)
        source_id = record.source.rpartition("/")[2]
        source = records.get(self.db, source_id)
        if source is not None:
            records.save(
                self.db, records.copy(source, links=[i for i in source.links if i != record.id])
            )
        records.remove(self.db, record.id)
