"""What OCCI operations mean, independent of HTTP and of renderings: the registry (with
the backend's templates and users' mixins), ownership and authorisation, and every
create/read/update/delete/action on resources and links through the VMBackend contract.

Nothing here talks to a hypervisor directly: only ``runtime.backends["vm"]`` does.
"""

from __future__ import annotations

import itertools
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.exc import IntegrityError

from backends.contracts.interfaces import (
    BackendError,
    StorageBackend,
    UnknownResource,
    VMBackend,
    VOBackend,
)
from backends.contracts.model import Principal, Resource, VMInfo, VMSpec
from backends.contracts.platform import occi_architecture
from backends.services.images import ImageShelf
from backends.store import Database
from backends.store.tables.occi import OCCIEntity
from gateway.config import Settings
from gateway.occi import infrastructure as infra
from gateway.occi import records
from gateway.occi.clusters import ClusterOperations
from gateway.occi.entity import CategoryRef, Document, Entity, new_id
from gateway.occi.errors import OCCIError, backend_errors, bad_request, not_found
from gateway.occi.links import LinkOperations
from gateway.occi.model import (
    LINK,
    RESOURCE,
    Action,
    Attribute,
    AttributeError_,
    Category,
    Kind,
    Mixin,
    Registry,
)
from gateway.occi.tagging import MixinOperations

_ID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
# Attributes the server owns: sent back by some clients, never taken from them.
_SERVER_OWNED = re.compile(r"\.state(\.message)?$")

# Which compute actions the OCCI state diagram allows in each state (GFD.224 §3.1).
_COMPUTE_ACTIONS = {
    "active": ("stop", "restart", "suspend", "save"),
    "inactive": ("start", "save"),
    "suspended": ("start", "stop"),
    "error": ("start", "stop"),  # a crashed domain: poweroff, or destroy and start again
}
_STORAGE_ACTIONS = {"online": ("offline",), "offline": ("online",), "error": ("online", "offline")}
_NETWORK_ACTIONS = {"active": ("down",), "inactive": ("up",), "error": ("up", "down")}


LISTING_MAX_AGE = 5.0  # seconds
_generations = itertools.count(1)


@dataclass
class Listing:
    """One caller's view of a collection, and its renderings once made."""

    version: tuple[tuple[str, int], ...]
    made: float
    items: list[tuple[str, str]]  # (location, kind identifier)
    bodies: dict[str, bytes] = field(default_factory=dict)  # media type -> unpaged body


class OCCIService(MixinOperations, LinkOperations, ClusterOperations):
    """One per gateway process; thread-safe (the caches have locks). Links, clusters and
    user mixins live in their own modules (links.py, clusters.py, tagging.py), mixed in."""

    def __init__(
        self,
        *,
        settings: Settings,
        db: Database,
        vm: VMBackend,
        vo: VOBackend,
        storage: StorageBackend | None,
    ) -> None:
        self.db = db
        self.settings = settings
        self._vm, self._vo, self._storage = vm, vo, storage
        self._lock = threading.Lock()
        self._registry: Registry | None = None
        self._templates_at = -1e9
        self._users_at = -1e9
        self._template_mixins: list[Mixin] = []
        self._user_mixins: list[Mixin] = []
        self.images: dict[str, str] = {}  # os_tpl mixin identifier -> image template id
        self.sizes: dict[str, tuple[str, int, int]] = {}  # resource_tpl -> (name, cores, MiB)
        self._listings: dict[tuple[Any, ...], Listing] = {}
        self._listing_lock = threading.Lock()
        self._kinds_under: dict[tuple[int, str], list[Kind]] = {}
        self.sizes_by_name: dict[str, tuple[int, int]] = {}  # name -> (cores, MiB)
        for name, size in self.settings.vm.sizes.items():
            mixin = infra.resource_template(name, size.cores, size.memory_mib / 1024)
            self.sizes[mixin.identifier] = (name, size.cores, size.memory_mib)
            self.sizes_by_name[name] = (size.cores, size.memory_mib)

    # -- backends -------------------------------------------------------------------------
    @property
    def vm(self) -> VMBackend:
        return self._vm

    # -- registry -------------------------------------------------------------------------
    def registry(self) -> Registry:
        """Static categories + os_tpl from the backend (cached) + user mixins (cached 2 s)."""
        now = time.monotonic()
        refresh = self.settings.occi.template_refresh
        with self._lock:
            stale_templates = now - self._templates_at >= refresh
            stale_users = now - self._users_at >= 2
            if self._registry is not None and not (stale_templates or stale_users):
                return self._registry
        if stale_templates:
            self._load_templates()
        if stale_users:
            self._load_user_mixins()
        with self._lock:
            sizes = {n: (c, m / 1024) for n, c, m in self.sizes.values()}
            registry = infra.build_registry((), sizes)
            registry.add(*self._template_mixins, *self._user_mixins)
            registry.generation = next(_generations)
            self._registry = registry
            return registry

    def _load_templates(self) -> None:
        try:
            templates = self.vm.templates()
        except (BackendError, NotImplementedError):
            templates = None  # keep what we had: a flaky host must not empty the menu
        volume = self.settings.storage.image_volume
        if templates is not None and volume:
            try:  # images uploaded onto a storage volume (xtreemgate image upload)
                templates += ImageShelf(self._storage, volume).list()
            except BackendError:
                templates = None
        with self._lock:
            self._templates_at = time.monotonic()
            if templates is None:
                return
            mixins = [infra.os_template(t.id, t.title) for t in templates]
            self._template_mixins = mixins
            self.images = {m.identifier: t.id for m, t in zip(mixins, templates, strict=True)}

    def _load_user_mixins(self) -> None:
        rows = records.user_mixins(self.db)
        base = infra.build_registry((), {})
        mixins = []
        for row in rows:
            depends = tuple(m for m in (base.mixins.get(d) for d in row.depends) if m)
            applies = tuple(k for k in (base.kinds.get(a) for a in row.applies) if k)
            mixins.append(
                Mixin(
                    row.term,
                    row.scheme,
                    row.title,
                    location=row.location,
                    depends=depends,
                    applies=applies,
                    user_defined=True,
                )
            )
        with self._lock:
            self._user_mixins = mixins
            self._users_at = time.monotonic()

    def invalidate(self) -> None:
        with self._lock:
            self._templates_at = self._users_at = -1e9

    # -- query interface ------------------------------------------------------------------
    def discover(self, wanted: Sequence[CategoryRef] = ()) -> list[Category]:
        registry = self.registry()
        categories = list(registry.categories())
        if wanted:
            ids = {w.identifier for w in wanted}
            categories = [c for c in categories if c.identifier in ids]
        return categories

    # -- authorisation --------------------------------------------------------------------
    def _authorise(
        self, principal: Principal, action: str, kind: str, entity_id: str, owner: str, vo: str
    ) -> None:
        decision = self._vo.decide(
            principal, action, Resource(kind=kind, id=entity_id, owner=owner, vo=vo)
        )
        if not decision.permitted:
            raise OCCIError(403, decision.reason)

    def _may_read(self, principal: Principal, record: OCCIEntity) -> bool:
        term = record.kind.rpartition("#")[2]
        return self._vo.decide(
            principal,
            "read",
            Resource(kind=term, id=record.id, owner=record.owner, vo=record.vo),
        ).permitted

    def _record(self, principal: Principal, kind: Kind, entity_id: str) -> OCCIEntity:
        record = records.get(self.db, entity_id.lower())  # UUIDs: any case on input
        if (
            record is None
            or not self._kind_matches(record, kind)
            or not self._may_read(principal, record)
        ):
            raise not_found(f"{kind.location}{entity_id}")
        return record

    def _kind_matches(self, record: OCCIEntity, kind: Kind) -> bool:
        found = self.registry().kinds.get(record.kind)
        return found is not None and found.is_a(kind)

    # -- listing --------------------------------------------------------------------------
    def listing(self, principal: Principal, kinds: Sequence[Kind]) -> Listing:
        """The caller's visible entities of these kinds, cached until an entity of them is
        added or removed (one aggregate query tells) and for at most LISTING_MAX_AGE
        seconds, so a changed VO policy shows soon. Listings are the hot path of OCCI
        clients (rOCCI lists before every operation)."""
        identifiers = tuple(k.identifier for k in kinds)
        key = (principal.name, principal.site_admin, principal.memberships, identifiers)
        version = records.version(self.db, identifiers)
        hit = self._listings.get(key)
        if (
            hit is not None
            and hit.version == version
            and time.monotonic() - hit.made < LISTING_MAX_AGE
        ):
            return hit
        with self._listing_lock:  # one rebuild at a time: concurrent misses wait for it
            hit = self._listings.get(key)
            if (
                hit is not None
                and hit.version == version
                and time.monotonic() - hit.made < LISTING_MAX_AGE
            ):
                return hit
            fresh = Listing(version, time.monotonic(), self.visible_ids(principal, kinds))
            if len(self._listings) > 1000:
                self._listings.clear()
            self._listings[key] = fresh
            return fresh

    def visible_ids(self, principal: Principal, kinds: Sequence[Kind]) -> list[tuple[str, str]]:
        """(location, kind identifier) of every entity of these kinds the caller may see."""
        identifiers = [k.identifier for k in kinds]
        locations = {k.identifier: k.location for k in kinds}
        vo = self._vo
        out = []
        for entity_id, kind_id, owner, entity_vo in records.heads(self.db, identifiers):
            term = kind_id.rpartition("#")[2]
            if vo.decide(principal, "read", Resource(term, entity_id, owner, entity_vo)).permitted:
                out.append((locations[kind_id] + entity_id, kind_id))
        return out

    def kinds_under(self, kind: Kind) -> list[Kind]:
        """The kinds whose entities a kind's collection lists (itself and its children)."""
        registry = self.registry()
        key = (registry.generation, kind.identifier)
        found = self._kinds_under.get(key)
        if found is None:
            found = [k for k in registry.kinds.values() if k.location and k.is_a(kind)]
            if len(self._kinds_under) > 256:
                self._kinds_under.clear()
            self._kinds_under[key] = found
        return found

    def entities(self, principal: Principal, records_: Sequence[OCCIEntity]) -> list[Entity]:
        """Full views of many records, with one backend call per kind of thing."""
        registry = self.registry()
        visible = [r for r in records_ if self._may_read(principal, r)]
        by_kind: dict[str, list[OCCIEntity]] = {}
        for record in visible:
            by_kind.setdefault(record.kind, []).append(record)
        facts: dict[str, Any] = {}
        with backend_errors("reading state from the hypervisor"):
            if infra.COMPUTE.identifier in by_kind:
                facts.update(self.vm.describe([r.id for r in by_kind[infra.COMPUTE.identifier]]))
            if infra.STORAGE.identifier in by_kind:
                facts.update(
                    self.vm.describe_storage([r.id for r in by_kind[infra.STORAGE.identifier]])
                )
            if infra.NETWORK.identifier in by_kind:
                facts.update(
                    self.vm.describe_networks([r.id for r in by_kind[infra.NETWORK.identifier]])
                )
        link_ids = [i for r in visible for i in (r.links or [])]
        link_records = records.get_many(self.db, link_ids)
        member_states = self._member_states(
            [r for r in visible if r.kind == infra.CLUSTER.identifier]
        )
        out = []
        for record in visible:
            links = [
                self._view(registry, link_records[i], None, {})
                for i in (record.links or [])
                if i in link_records
            ]
            out.append(self._view(registry, record, facts.get(record.id), member_states, links))
        return out

    def entity(self, principal: Principal, kind: Kind, entity_id: str) -> Entity:
        return self.entities(principal, [self._record(principal, kind, entity_id)])[0]

    def _view(
        self,
        registry: Registry,
        record: OCCIEntity,
        facts: Any,
        member_states: dict[str, list[str]],
        links: list[Entity] | None = None,
    ) -> Entity:
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
            state, _message = _compute_facts(facts, attributes)
            allowed = _COMPUTE_ACTIONS.get(state, ())
        elif kind is infra.STORAGE:
            if facts is None:
                _unknown_to_backend(attributes, "occi.storage", "volume")
            else:
                attributes.update(
                    {"occi.storage.size": facts.size_gib, "occi.storage.state": facts.state}
                )
                if facts.state_message:
                    attributes["occi.storage.state.message"] = facts.state_message
            allowed = _STORAGE_ACTIONS.get(attributes["occi.storage.state"], ())
        elif kind is infra.NETWORK:
            if facts is None:
                _unknown_to_backend(attributes, "occi.network", "network")
            else:
                attributes["occi.network.state"] = facts.state
                if facts.vlan is not None:
                    attributes["occi.network.vlan"] = facts.vlan
                if facts.label:
                    attributes["occi.network.label"] = facts.label
                if infra.IPNETWORK in mixins:
                    for key in ("address", "gateway", "allocation"):
                        if getattr(facts, key):
                            attributes[f"occi.network.{key}"] = getattr(facts, key)
            allowed = _NETWORK_ACTIONS.get(attributes["occi.network.state"], ())
        elif kind is infra.CLUSTER:
            states = member_states.get(record.id, [])
            attributes["xtreemgate.cluster.size"] = len(states)
            distinct = sorted(set(states))
            attributes["xtreemgate.cluster.state"] = (
                "inactive"
                if not states
                else distinct[0]
                if len(distinct) == 1
                else "active"
                if "active" in distinct
                else "error"
            )
            if len(distinct) > 1:
                attributes["xtreemgate.cluster.state.message"] = ", ".join(
                    f"{states.count(s)} {s}" for s in distinct
                )
            allowed = tuple(a.term for a in infra.CLUSTER.actions)
        actions = [a for a in kind.actions if a.term in allowed]
        entity = Entity(
            id=record.id,
            kind=kind,
            mixins=mixins,
            attributes=attributes,
            actions=actions,
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

    # -- attributes -----------------------------------------------------------------------
    def _resolve(
        self, kind: Kind, doc: Document, *, allow_kind_change: bool = False
    ) -> tuple[list[Mixin], dict[str, Any]]:
        """The mixins and the checked attribute values a client asked for."""
        registry = self.registry()
        for ref in doc.of_class("kind") + [
            c for c in doc.categories if not c.cls and c.identifier in registry.kinds
        ]:
            if ref.identifier != kind.identifier and not allow_kind_change:
                raise bad_request(f"this collection holds {kind.identifier}, not {ref.identifier}")
        mixins: list[Mixin] = []
        for ref in doc.categories:
            if ref.cls == "kind" or ref.identifier in registry.kinds:
                continue
            if ref.cls == "action" or ref.identifier in registry.actions:
                raise bad_request(
                    f"{ref.identifier} is an action; invoke it with ?action={ref.term}"
                )
            mixin = registry.mixins.get(ref.identifier)
            if mixin is None:
                raise bad_request(f"unknown mixin {ref.identifier} (see GET /-/)")
            if not mixin.applies_to(kind):
                raise bad_request(f"mixin {mixin.identifier} does not apply to {kind.term}")
            if mixin not in mixins:
                mixins.append(mixin)
        definitions = kind.all_attributes()
        for mixin in mixins:
            for parent in mixin.lineage():
                definitions.update({a.name: a for a in parent.attributes})
        values: dict[str, Any] = {}
        for name, value in doc.attributes.items():
            if _SERVER_OWNED.search(name) or name in ("occi.core.id", "occi.core.target.kind"):
                continue
            definition = definitions.get(name)
            if definition is None:
                raise bad_request(
                    f"attribute {name} is not defined by {kind.term} or its mixins "
                    f"({', '.join(sorted(definitions)) or 'none'})"
                )
            try:
                values[name] = definition.coerce(value)
            except AttributeError_ as exc:
                raise bad_request(str(exc)) from None
        return mixins, values

    @staticmethod
    def _require(kind: Kind, mixins: Sequence[Mixin], values: dict[str, Any]) -> None:
        needed: list[Attribute] = [a for a in kind.all_attributes().values() if a.required]
        for mixin in mixins:
            needed += [a for a in mixin.attributes if a.required]
        missing = [
            a.name
            for a in needed
            if a.name not in values and a.default is None and not a.name.startswith("occi.core.")
        ]
        if missing:
            raise bad_request(f"{kind.term} needs the attribute(s) {', '.join(missing)}")

    # -- create ---------------------------------------------------------------------------
    def create(
        self, principal: Principal, kind: Kind, doc: Document, entity_id: str = ""
    ) -> Entity:
        if kind in (infra.CLUSTERMEMBER,) or not kind.location:
            raise OCCIError(
                405,
                f"{kind.term} entities are made by the server, not created directly",
                Allow="GET",
            )
        entity_id = entity_id or str(doc.attributes.get("occi.core.id") or "") or new_id()
        if not _ID.match(entity_id):
            raise bad_request(f"entity ids are UUIDs (got {entity_id[:80]!r})")
        entity_id = entity_id.lower()  # as the hypervisor keeps it (RFC 4122 output form)
        if records.get(self.db, entity_id) is not None:
            raise OCCIError(409, f"{entity_id} already exists")
        mixins, values = self._resolve(kind, doc)
        vo = principal.vos()[0] if principal.vos() else ""
        self._authorise(principal, "create", kind.term, "", principal.name, vo)
        if kind.is_a(LINK):
            return self._create_link(principal, kind, entity_id, mixins, values, vo)
        self._require(kind, mixins, values)
        record = OCCIEntity(
            id=entity_id,
            kind=kind.identifier,
            owner=principal.name,
            vo=vo,
            title=str(values.pop("occi.core.title", "")),
            summary=str(values.pop("occi.core.summary", "")),
            mixins=[m.identifier for m in mixins],
            links=[],
            source="",
            target="",
            attributes=records.kept_attributes(kind, values),
        )
        try:  # first the record, then the hypervisor
            records.insert(self.db, record)
        except IntegrityError as exc:  # the same id created at the same moment elsewhere
            raise OCCIError(409, f"{entity_id} already exists") from exc
        try:
            if kind is infra.CLUSTER:
                self._create_cluster(principal, record, mixins, values)
            else:
                self._create_on_backend(kind, record, mixins, values)
        except BaseException:
            records.remove(self.db, entity_id)
            raise
        try:
            for link in doc.links:
                self._inline_link(principal, kind, entity_id, link)
        except BaseException:
            self.delete(principal, kind, entity_id)
            raise
        return self.entity(principal, kind, entity_id)

    def _create_on_backend(
        self, kind: Kind, record: OCCIEntity, mixins: Sequence[Mixin], values: dict[str, Any]
    ) -> None:
        from backends.contracts.model import NetworkSpec, StorageSpec

        name = record.title or f"{kind.term}-{record.id[:8]}"
        if kind is infra.COMPUTE:
            with backend_errors("creating the compute"):
                self.vm.create(record.id, self.vm_spec(name, mixins, values))
        elif kind is infra.STORAGE:
            with backend_errors("creating the storage"):
                self.vm.create_storage(
                    record.id, StorageSpec(name=name, size_gib=float(values["occi.storage.size"]))
                )
        elif kind is infra.NETWORK:
            spec = NetworkSpec(
                name=name,
                vlan=values.get("occi.network.vlan"),
                label=values.get("occi.network.label", ""),
                address=values.get("occi.network.address", ""),
                gateway=values.get("occi.network.gateway", ""),
                allocation=values.get("occi.network.allocation", "dynamic"),
            )
            with backend_errors("creating the network"):
                self.vm.create_network(record.id, spec)
        else:
            raise OCCIError(405, f"{kind.identifier} cannot be created here")

    def vm_spec(self, name: str, mixins: Sequence[Mixin], values: dict[str, Any]) -> VMSpec:
        image = size = ""
        cores, memory_mib = 1, 512
        for mixin in mixins:
            if mixin.identifier in self.images:
                if image:
                    raise bad_request("a compute takes one os_tpl mixin")
                image = self.images[mixin.identifier]
            if mixin.identifier in self.sizes:
                if size:
                    raise bad_request("a compute takes one resource_tpl mixin")
                size, cores, memory_mib = self.sizes[mixin.identifier]
        if "occi.compute.cores" in values:
            cores = int(values["occi.compute.cores"])
        if "occi.compute.memory" in values:
            memory_mib = max(1, round(float(values["occi.compute.memory"]) * 1024))
        if size and self.sizes_by_name[size] != (cores, memory_mib):
            # the client's own values win over the resource_tpl's (which the backend
            # would apply over them): the VM is then of no named size
            size = ""
        arch = values.get("occi.compute.architecture", "x64")  # the backend maps OCCI's words
        keys = values.get("occi.credentials.ssh.publickey", "")
        return VMSpec(
            name=name,
            cores=cores,
            memory_mib=memory_mib,
            architecture=arch,
            hostname=values.get("occi.compute.hostname", ""),
            share=values.get("occi.compute.share"),
            image=image,
            size=size,
            user_data=values.get("occi.compute.userdata", ""),
            ssh_keys=tuple(k for k in keys.splitlines() if k.strip()),
        )

    # -- update ---------------------------------------------------------------------------
    def update(
        self, principal: Principal, kind: Kind, entity_id: str, doc: Document, *, replace: bool
    ) -> Entity:
        """POST (partial: add mixins, set attributes) or PUT (replace mixins and attributes)."""
        record = self._record(principal, kind, entity_id)
        self._authorise(principal, "update", kind.term, entity_id, record.owner, record.vo)
        mixins, values = self._resolve(kind, doc)
        definitions = kind.all_attributes()
        for mixin in mixins:
            definitions.update({a.name: a for m in mixin.lineage() for a in m.attributes})
        for name in values:
            definition = definitions.get(name)
            if (
                definition is not None
                and not definition.mutable
                and name not in ("occi.core.source", "occi.core.target")
            ):
                raise bad_request(f"attribute {name} cannot be changed")
        old_mixins = list(record.mixins or [])
        fixed = [m for m in old_mixins if m in self.images or m in self.sizes]
        asked = [m.identifier for m in mixins]
        new_templates = [
            m for m in asked if (m in self.images or m in self.sizes) and m not in fixed
        ]
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
            k in values
            for k in ("occi.compute.cores", "occi.compute.memory", "occi.compute.hostname")
        ):
            current = self.entity(principal, kind, entity_id).attributes
            merged = {
                k: current[k]
                for k in (
                    "occi.compute.cores",
                    "occi.compute.memory",
                    "occi.compute.hostname",
                    "occi.compute.architecture",
                )
                if k in current
            }
            merged.update(values)
            registry = self.registry()
            with backend_errors("updating the compute"):
                self.vm.update(
                    entity_id,
                    self.vm_spec(
                        record.title or entity_id,
                        [registry.mixins[m] for m in fixed if m in registry.mixins],
                        merged,
                    ),
                )
        stored = (
            dict(record.attributes or {})
            if not replace
            else {
                k: v
                for k, v in (record.attributes or {}).items()
                if k.startswith("xtreemgate.")
                or k.startswith("occi.networkinterface")
                or k.startswith("occi.storagelink")
            }
        )
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
        return self.entity(principal, kind, entity_id)

    # -- delete ---------------------------------------------------------------------------
    def delete(self, principal: Principal, kind: Kind, entity_id: str) -> None:
        record = self._record(principal, kind, entity_id)
        self._authorise(principal, "delete", kind.term, entity_id, record.owner, record.vo)
        registry = self.registry()
        real_kind = registry.kinds.get(record.kind, kind)
        if real_kind is infra.CLUSTERMEMBER:
            raise OCCIError(
                405, "cluster membership ends with the cluster's evict_node action", Allow="GET"
            )
        if real_kind.is_a(LINK):
            self._delete_link(record)
            return
        location = real_kind.location + entity_id
        if real_kind is infra.CLUSTER:
            self._evict_members(self.cluster_members(entity_id))
            records.remove(self.db, entity_id)
            return
        incoming = [r for r in records.linked_to(self.db, location) if r.target == location]
        if incoming:
            if real_kind is infra.COMPUTE:
                pass  # a cluster's member: leaving it is part of being deleted
            else:
                raise OCCIError(
                    409,
                    f"{location} is still linked from "
                    f"{', '.join(r.source for r in incoming)}; delete those links first",
                )
        if real_kind is infra.COMPUTE:
            self._delete_compute_links(entity_id)
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

    # -- actions --------------------------------------------------------------------------
    def action_for(self, kind: Kind, term: str, doc: Document) -> Action:
        """The action named by ?action=<term> (and by the body's Category, if any)."""
        registry = self.registry()
        named = [c for c in doc.categories if c.cls == "action" or c.identifier in registry.actions]
        action = next((a for a in kind.actions if a.term == term), None)
        if action is None:
            if any(a.term == term for a in registry.actions.values()):
                raise OCCIError(
                    405,
                    f"the action {term} does not apply to {kind.term} "
                    f"(it has: {', '.join(a.term for a in kind.actions) or 'none'})",
                    Allow="GET, PUT, POST, DELETE",
                )
            raise bad_request(f"unknown action {term!r}")
        for ref in named:
            if ref.identifier != action.identifier:
                raise bad_request(f"?action={term} but the body names {ref.identifier}")
        return action

    def act(
        self, principal: Principal, kind: Kind, entity_id: str, action: Action, doc: Document
    ) -> Entity:
        record = self._record(principal, kind, entity_id)
        self._authorise(principal, action.term, kind.term, entity_id, record.owner, record.vo)
        params: dict[str, str] = {}
        for name, value in doc.attributes.items():
            definition = action.attribute(name)
            if definition is None:
                raise bad_request(
                    f"the action {action.term} takes no attribute {name} "
                    f"({', '.join(a.name for a in action.attributes) or 'none'})"
                )
            try:
                params[name] = str(definition.coerce(value))
            except AttributeError_ as exc:
                raise bad_request(str(exc)) from None
        method = params.pop("method", "")
        doing = f"{action.term} on {kind.location}{entity_id}"
        saved = ""
        if kind is infra.COMPUTE:
            if action.term == "save":  # the caller must learn the new os_tpl: name it here
                params["name"] = saved = params.get("name") or _template_name(record)
            with backend_errors(doing):
                info = self.vm.act(entity_id, action.term, method, **params)
            if action.term in ("save", "stop"):  # a (deferred) save adds an os_tpl
                self.invalidate()
        elif kind is infra.STORAGE:
            with backend_errors(doing):
                self.vm.act_storage(entity_id, action.term)
        elif kind is infra.NETWORK:
            with backend_errors(doing):
                self.vm.act_network(entity_id, action.term)
        elif kind is infra.CLUSTER:
            self._act_cluster(principal, record, action, method, params)
        else:
            raise OCCIError(405, f"{kind.term} has no actions")
        entity = self.entity(principal, kind, entity_id)
        if saved:
            mixin = infra.os_template(saved, saved)
            entity.attributes["occi.compute.state.message"] = (
                f"{info.state_message}; os_tpl mixin {mixin.identifier}"
            )
        return entity

    def act_on_all(
        self, principal: Principal, kind: Kind, action: Action, doc: Document
    ) -> list[str]:
        """?action= on a collection: every entity the caller may act on; stops at the first
        refusal (already acted ones stay acted: each action is complete on its own)."""
        if action is infra.SAVE and "name" in doc.attributes:
            raise bad_request(
                "save on a collection makes one os_tpl per compute: give no name "
                "(each gets its compute's id and the time) or save each compute on its own"
            )
        done = []
        for location, _kind in self.visible_ids(principal, [kind]):
            entity_id = location.rpartition("/")[2]
            try:
                self.act(principal, kind, entity_id, action, doc)
            except OCCIError as exc:
                if exc.status == 403:
                    continue  # visible is not actionable: act on what one may
                if exc.status == 409:
                    continue  # already in the state asked for
                raise
            done.append(location)
        return done

    def delete_all(self, principal: Principal, kind: Kind) -> int:
        count = 0
        for location, kind_id in self.visible_ids(principal, self.kinds_under(kind)):
            real = self.registry().kinds[kind_id]
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


def _template_name(record: OCCIEntity) -> str:
    """A default name for the os_tpl a save makes: the compute's id and the time (UTC)."""
    return f"{record.id}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"


def _unknown_to_backend(attributes: dict[str, Any], prefix: str, what: str) -> None:
    """A record whose resource the backend no longer has (describe() leaves it out)."""
    attributes[f"{prefix}.state"] = "error"
    attributes[f"{prefix}.state.message"] = f"the hypervisor no longer knows this {what}"


def _compute_facts(info: VMInfo | None, attributes: dict[str, Any]) -> tuple[str, str]:
    if info is None:
        _unknown_to_backend(attributes, "occi.compute", "VM")
        return "error", ""
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
    return info.state, info.state_message
