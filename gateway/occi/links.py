"""OCCI links between resources: networkinterface (compute → network) and storagelink
(compute → storage), recorded, then made devices in the VM by the backend."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

from backends.contracts.interfaces import UnknownResource
from backends.contracts.model import Principal
from backends.store.tables.occi import OCCIEntity
from gateway.occi import infrastructure as infra
from gateway.occi import records
from gateway.occi.entity import CategoryRef, Document, Entity, LinkRef, relative_location
from gateway.occi.errors import backend_errors, bad_request
from gateway.occi.model import Kind, Mixin, split_identifier


class LinkOperations:
    """Links and locations; mixed into :class:`OCCIService`."""

    def _inline_link(self, principal: Principal, kind: Kind, source_id: str, link: LinkRef) -> None:
        registry = self.registry()
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
        self.create(principal, link_kind, doc, link_id)

    def _create_link(
        self,
        principal: Principal,
        kind: Kind,
        link_id: str,
        mixins: Sequence[Mixin],
        values: dict[str, Any],
        vo: str,
    ) -> Entity:
        source = relative_location(str(values.pop("occi.core.source", "")))
        target = relative_location(str(values.pop("occi.core.target", "")))
        if not source or not target:
            raise bad_request(f"a {kind.term} needs occi.core.source and occi.core.target")
        source_kind, source_id = self._split_location(source)
        target_kind, target_id = self._split_location(target)
        expected = {
            infra.NETWORKINTERFACE.identifier: infra.NETWORK,
            infra.STORAGELINK.identifier: infra.STORAGE,
        }
        if source_kind is not infra.COMPUTE or target_kind is not expected.get(kind.identifier):
            want = expected.get(kind.identifier)
            raise bad_request(
                f"a {kind.term} links a compute to a {want.term if want else '?'} "
                f"(got {source} → {target})"
            )
        source_record = self._record(principal, source_kind, source_id)
        target_record = self._record(principal, target_kind, target_id)
        self._authorise(
            principal, "update", "compute", source_id, source_record.owner, source_record.vo
        )
        self._authorise(
            principal, "link", target_kind.term, target_id, target_record.owner, target_record.vo
        )
        record = OCCIEntity(
            id=link_id,
            kind=kind.identifier,
            owner=principal.name,
            vo=vo,
            title=str(values.pop("occi.core.title", "")),
            summary="",
            mixins=[m.identifier for m in mixins],
            links=[],
            source=source,
            target=target,
            attributes=records.kept_attributes(kind, values),
        )
        records.insert(self.db, record)
        try:
            with backend_errors(f"attaching {target} to {source}"):
                if kind is infra.NETWORKINTERFACE:
                    mac = self.vm.attach_network(
                        link_id,
                        source_id,
                        target_id,
                        mac=values.get("occi.networkinterface.mac", ""),
                        address=values.get("occi.networkinterface.address", ""),
                    )
                    record.attributes = {
                        **record.attributes,
                        "occi.networkinterface.mac": mac,
                        "occi.networkinterface.state": "active",
                    }
                else:
                    device = self.vm.attach_storage(
                        link_id,
                        source_id,
                        target_id,
                        device=values.get("occi.storagelink.deviceid", ""),
                    )
                    record.attributes = {
                        **record.attributes,
                        "occi.storagelink.deviceid": device,
                        "occi.storagelink.state": "active",
                    }
            records.save(self.db, record)
            fresh = records.get(self.db, source_id)
            if fresh is not None:
                records.save(self.db, records.copy(fresh, links=[*fresh.links, link_id]))
        except BaseException:
            records.remove(self.db, link_id)
            raise
        return self.entity(principal, kind, link_id)

    def _split_location(self, location: str) -> tuple[Kind, str]:
        head, _, entity_id = location.rstrip("/").rpartition("/")
        kind = self.registry().by_location(head + "/")
        if not isinstance(kind, Kind) or not entity_id:
            raise bad_request(f"{location!r} is not the location of an entity")
        return kind, entity_id

    def resolve_location(self, principal: Principal, location: str) -> OCCIEntity:
        kind, entity_id = self._split_location(relative_location(location))
        return self._record(principal, kind, entity_id)

    def _delete_compute_links(self, compute_id: str) -> None:
        for link in records.linked_to(self.db, infra.COMPUTE.location + compute_id):
            if link.kind in (infra.NETWORKINTERFACE.identifier, infra.STORAGELINK.identifier):
                self._delete_link(link)

    def _delete_link(self, record: OCCIEntity) -> None:
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
