"""Create, update and delete of OCCI entities (GFD.223 §3.4): the ownership record first,
then the VM backend, and on failure nothing half-written stays behind.

Links and clusters have their own modules (links.py, clusters.py); this one decides which
of them an entity's kind needs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import IntegrityError

from backends.contracts.interfaces import UnknownResource, VMBackend
from backends.contracts.model import Principal
from backends.store import Database
from backends.store.tables.occi import OCCIEntity
from gateway.occi import infrastructure as infra
from gateway.occi import records, specs, validation
from gateway.occi.authorisation import Authorisation
from gateway.occi.categories import Categories
from gateway.occi.clusters import Clusters
from gateway.occi.entity import Document, Entity, new_id
from gateway.occi.errors import OCCIError, backend_errors
from gateway.occi.links import Links
from gateway.occi.model import LINK, RESOURCE, Kind, Mixin
from gateway.occi.views import Views

# Compute attributes the backend holds, and changes on an update.
_RESIZING = ("occi.compute.cores", "occi.compute.memory", "occi.compute.hostname")
_COMPUTE_HELD = (*_RESIZING, "occi.compute.architecture")
# Stored attributes a PUT keeps: the server's own and the links' device facts.
_KEPT_ON_REPLACE = ("xtreemgate.", "occi.networkinterface", "occi.storagelink")


@dataclass(frozen=True, kw_only=True)
class EntityOperations:
    """Create, update, delete; one per gateway process."""

    db: Database
    vm: VMBackend
    categories: Categories
    authorisation: Authorisation
    views: Views
    links: Links
    clusters: Clusters

    # -- create ---------------------------------------------------------------------------
    def create(
        self, principal: Principal, kind: Kind, doc: Document, entity_id: str = ""
    ) -> Entity:
        if kind in (infra.CLUSTERMEMBER, RESOURCE, LINK) or not kind.location:
            raise OCCIError(
                405,
                f"{kind.term} entities are made by the server, not created directly",
                Allow="GET",
            )
        entity_id = validation.entity_id(
            entity_id or str(doc.attributes.get("occi.core.id") or "") or new_id()
        )
        self.authorisation.require_free(principal, kind, entity_id)
        mixins, values = validation.resolve(self.categories.registry(principal.name), kind, doc)
        vo = principal.vos()[0] if principal.vos() else ""
        self.authorisation.require(principal, "create", kind.term, "", principal.name, vo)
        if kind.is_a(LINK):
            self.links.create(principal, kind, entity_id, mixins, values, vo)
            return self.views.entity(principal, kind, entity_id)
        validation.require(kind, mixins, values)
        record = records.new(
            entity_id,
            kind,
            principal.name,
            vo,
            title=str(values.pop("occi.core.title", "")),
            summary=str(values.pop("occi.core.summary", "")),
            mixins=[m.identifier for m in mixins],
            attributes=records.kept_attributes(kind, values),
        )
        try:  # first the record, then the hypervisor
            records.insert(self.db, record)
        except IntegrityError as exc:  # the same id created at the same moment elsewhere
            self.authorisation.require_free(principal, kind, entity_id)
            raise OCCIError(409, f"{entity_id} already exists") from exc
        try:
            if kind is infra.CLUSTER:
                self.clusters.create(record, mixins, values)
            else:
                self._create_on_backend(kind, record, mixins, values)
        except BaseException:
            records.remove(self.db, entity_id)
            raise
        try:
            for link in doc.links:
                self.create(principal, *self.links.inline(kind, entity_id, link))
        except BaseException:
            self.delete(principal, kind, entity_id)
            raise
        return self.views.entity(principal, kind, entity_id)

    def _create_on_backend(
        self, kind: Kind, record: OCCIEntity, mixins: Sequence[Mixin], values: dict[str, Any]
    ) -> None:
        name = record.title or f"{kind.term}-{record.id[:8]}"
        if kind is infra.COMPUTE:
            spec = specs.vm_spec(self.categories.templates, name, mixins, values)
            with backend_errors("creating the compute"):
                self.vm.create(record.id, spec)
        elif kind is infra.STORAGE:
            with backend_errors("creating the storage"):
                self.vm.create_storage(record.id, specs.storage_spec(name, values))
        elif kind is infra.NETWORK:
            with backend_errors("creating the network"):
                self.vm.create_network(record.id, specs.network_spec(name, values))
        else:
            raise OCCIError(405, f"{kind.identifier} cannot be created here")

    # -- update ---------------------------------------------------------------------------
    def update(
        self, principal: Principal, kind: Kind, entity_id: str, doc: Document, *, replace: bool
    ) -> Entity:
        """POST (partial: add mixins, set attributes) or PUT (replace mixins and attributes)."""
        record = self.authorisation.record(principal, kind, entity_id)
        self.authorisation.require_on(principal, "update", kind, record)
        mixins, values = validation.resolve(self.categories.registry(principal.name), kind, doc)
        current = self.views.entity(principal, kind, entity_id).attributes
        values = validation.restated(kind, mixins, values, current)
        validation.mutable(kind, mixins, values)
        templates = self.categories.templates
        old_mixins = list(record.mixins or [])
        fixed = [m for m in old_mixins if templates.is_template(m)]
        asked = [m.identifier for m in mixins]
        new_templates = [m for m in asked if templates.is_template(m) and m not in fixed]
        if new_templates:
            raise OCCIError(
                409,
                f"templates are chosen at creation; {', '.join(new_templates)} cannot be added now",
            )
        if replace:
            new_mixins = fixed + [m for m in asked if m not in fixed]
        else:
            new_mixins = old_mixins + [m for m in asked if m not in old_mixins]
        if kind.is_a(LINK) and (values.get("occi.core.target") or values.get("occi.core.source")):
            raise OCCIError(409, "a link's ends cannot be moved; delete it and create another")
        title = values.pop("occi.core.title", None)
        summary = values.pop("occi.core.summary", None)
        if kind is infra.COMPUTE and any(
            k in values and values[k] != current.get(k) for k in _RESIZING
        ):
            self._resize(principal, record, fixed, values)
        if replace:
            stored = {
                k: v for k, v in (record.attributes or {}).items() if k.startswith(_KEPT_ON_REPLACE)
            }
        else:
            stored = dict(record.attributes or {})
        stored.update(records.kept_attributes(kind, values))
        records.save(
            self.db,
            records.copy(
                record,
                title=str(title) if title is not None else ("" if replace else record.title),
                summary=str(summary)
                if summary is not None
                else ("" if replace else record.summary),
                mixins=new_mixins,
                attributes=stored,
            ),
        )
        return self.views.entity(principal, kind, entity_id)

    def _resize(
        self, principal: Principal, record: OCCIEntity, templates: list[str], values: dict[str, Any]
    ) -> None:
        """A compute's new cores/memory/hostname: the whole spec, merged with what the
        backend reports now (its update takes a definition, not a patch)."""
        current = self.views.entity(principal, infra.COMPUTE, record.id).attributes
        merged = {k: current[k] for k in _COMPUTE_HELD if k in current}
        merged.update(values)
        registry = self.categories.registry()
        spec = specs.vm_spec(
            self.categories.templates,
            record.title or record.id,
            [registry.mixins[m] for m in templates if m in registry.mixins],
            merged,
        )
        with backend_errors("updating the compute"):
            self.vm.update(record.id, spec)

    # -- delete ---------------------------------------------------------------------------
    def delete(self, principal: Principal, kind: Kind, entity_id: str) -> None:
        record = self.authorisation.record(principal, kind, entity_id)
        self.authorisation.require_on(principal, "delete", kind, record)
        real_kind = self.categories.registry().kinds.get(record.kind, kind)
        if real_kind is infra.CLUSTERMEMBER:
            raise OCCIError(
                405, "cluster membership ends with the cluster's evict_node action", Allow="GET"
            )
        if real_kind.is_a(LINK):
            self.links.delete(record)
            return
        location = real_kind.location + entity_id
        if real_kind is infra.CLUSTER:
            self.clusters.evict(self.clusters.members(entity_id))
            records.remove(self.db, entity_id)
            return
        incoming = [r for r in records.linked_to(self.db, location) if r.target == location]
        # a compute linked to is a cluster's member: leaving it is part of being deleted
        if incoming and real_kind is not infra.COMPUTE:
            raise OCCIError(
                409,
                f"{location} is still linked from "
                f"{', '.join(r.source for r in incoming)}; delete those links first",
            )
        if real_kind is infra.COMPUTE:
            self.links.delete_from_compute(entity_id)
        with backend_errors(f"deleting {location}"):
            try:
                if real_kind is infra.COMPUTE:
                    self.vm.delete(entity_id)
                elif real_kind is infra.STORAGE:
                    self.vm.delete_storage(entity_id)
                elif real_kind is infra.NETWORK:
                    self.vm.delete_network(entity_id)
            except UnknownResource:
                pass  # already gone on the hypervisor: only the record remains
        records.remove(self.db, *[r.id for r in records.linked_to(self.db, location)], entity_id)

    def delete_all(self, principal: Principal, kind: Kind) -> int:
        """DELETE on a collection: every entity the caller may delete (cluster members go
        with their cluster); returns how many went."""
        count = 0
        for location, kind_id in self.authorisation.visible(
            principal, self.categories.kinds_under(kind)
        ):
            real = self.categories.registry().kinds[kind_id]
            if real is infra.CLUSTERMEMBER:
                continue
            try:
                self.delete(principal, real, location.rpartition("/")[2])
            except OCCIError as exc:
                if exc.status in (403, 404):
                    continue
                raise
            count += 1
        return count
