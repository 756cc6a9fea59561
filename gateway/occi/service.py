"""What OCCI operations mean, independent of HTTP and of renderings: one object the
handlers ask, composed of parts with one job each —

- :mod:`~gateway.occi.categories`: the registry (with the site's templates, users' mixins);
- :mod:`~gateway.occi.authorisation`: ownership records and the VO backend's decisions;
- :mod:`~gateway.occi.listings`: collections, cached per caller;
- :mod:`~gateway.occi.views`: an entity's facts, state and allowed actions;
- :mod:`~gateway.occi.operations` and :mod:`~gateway.occi.actions`: create, update,
  delete and actions, through :mod:`~gateway.occi.links`, :mod:`~gateway.occi.clusters`
  and the VMBackend contract; :mod:`~gateway.occi.tagging`: user mixins and tagging.

Nothing here talks to a hypervisor directly: only the VM backend given as ``vm`` does.
"""

from __future__ import annotations

from collections.abc import Sequence

from backends.contracts.interfaces import StorageBackend, VMBackend, VOBackend
from backends.contracts.model import Principal
from backends.store import Database
from backends.store.tables.occi import OCCIEntity
from gateway.config import Settings
from gateway.occi.actions import Actions
from gateway.occi.authorisation import Authorisation
from gateway.occi.categories import Categories
from gateway.occi.clusters import Clusters
from gateway.occi.entity import CategoryRef, Document, Entity
from gateway.occi.links import Links
from gateway.occi.listings import Listing, Listings
from gateway.occi.model import Action, Category, Kind, Mixin, Registry
from gateway.occi.operations import EntityOperations
from gateway.occi.tagging import Tagging
from gateway.occi.views import Views


class OCCIService:
    """One per gateway process; thread-safe (the caches have locks)."""

    def __init__(
        self,
        *,
        settings: Settings,
        db: Database,
        vm: VMBackend,
        vo: VOBackend,
        storage: StorageBackend | None,
    ) -> None:
        self.settings = settings
        self.db = db
        self.categories = Categories(settings=settings, db=db, vm=vm, storage=storage)
        auth = Authorisation(db=db, vo=vo, categories=self.categories)
        self.listings = Listings(db=db, authorisation=auth)
        self.views = Views(db=db, vm=vm, categories=self.categories, authorisation=auth)
        links = Links(db=db, vm=vm, categories=self.categories, authorisation=auth)
        clusters = Clusters(db=db, vm=vm, categories=self.categories, links=links)
        self.operations = EntityOperations(
            db=db,
            vm=vm,
            categories=self.categories,
            authorisation=auth,
            views=self.views,
            links=links,
            clusters=clusters,
        )
        self.actions = Actions(
            vm=vm,
            categories=self.categories,
            authorisation=auth,
            views=self.views,
            clusters=clusters,
        )
        self.tagging = Tagging(db=db, categories=self.categories, authorisation=auth)

    # -- query interface ------------------------------------------------------------------
    def registry(self, owner: str = "") -> Registry:
        return self.categories.registry(owner)

    def discover(self, owner: str, wanted: Sequence[CategoryRef] = ()) -> list[Category]:
        return self.categories.discover(owner, wanted)

    def add_user_mixins(self, principal: Principal, refs: Sequence[CategoryRef]) -> None:
        self.tagging.add_user_mixins(principal, refs)

    def remove_user_mixins(self, principal: Principal, refs: Sequence[CategoryRef]) -> None:
        self.tagging.remove_user_mixins(principal, refs)

    # -- reading --------------------------------------------------------------------------
    def listing(self, principal: Principal, kinds: Sequence[Kind]) -> Listing:
        return self.listings.listing(principal, kinds)

    def kinds_under(self, kind: Kind) -> list[Kind]:
        return self.categories.kinds_under(kind)

    def entity(self, principal: Principal, kind: Kind, entity_id: str) -> Entity:
        return self.views.entity(principal, kind, entity_id)

    def entities(self, principal: Principal, records_: Sequence[OCCIEntity]) -> list[Entity]:
        return self.views.entities(principal, records_)

    def tagged(self, principal: Principal, mixin: Mixin) -> list[OCCIEntity]:
        return self.tagging.tagged(principal, mixin)

    # -- writing --------------------------------------------------------------------------
    def create(
        self, principal: Principal, kind: Kind, doc: Document, entity_id: str = ""
    ) -> Entity:
        return self.operations.create(principal, kind, doc, entity_id)

    def update(
        self, principal: Principal, kind: Kind, entity_id: str, doc: Document, *, replace: bool
    ) -> Entity:
        return self.operations.update(principal, kind, entity_id, doc, replace=replace)

    def delete(self, principal: Principal, kind: Kind, entity_id: str) -> None:
        self.operations.delete(principal, kind, entity_id)

    def delete_all(self, principal: Principal, kind: Kind) -> int:
        return self.operations.delete_all(principal, kind)

    def action_for(self, kind: Kind, term: str, doc: Document) -> Action:
        return self.actions.action_for(kind, term, doc)

    def act(
        self, principal: Principal, kind: Kind, entity_id: str, action: Action, doc: Document
    ) -> Entity:
        return self.actions.act(principal, kind, entity_id, action, doc)

    def act_and_save(
        self, principal: Principal, kind: Kind, entity_id: str, action: Action, doc: Document
    ) -> tuple[Entity, Mixin | None]:
        return self.actions.act_and_save(principal, kind, entity_id, action, doc)

    def act_on_all(
        self, principal: Principal, kind: Kind, action: Action, doc: Document
    ) -> list[str]:
        return self.actions.act_on_all(principal, kind, action, doc)

    def tag(
        self, principal: Principal, mixin: Mixin, locations: Sequence[str], *, replace: bool
    ) -> None:
        self.tagging.tag(principal, mixin, locations, replace=replace)

    def untag(self, principal: Principal, mixin: Mixin, locations: Sequence[str]) -> None:
        self.tagging.untag(principal, mixin, locations)
