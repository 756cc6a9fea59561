"""OCCI actions (GFD.223 §3.4.6): ``?action=<term>`` on an entity or a whole collection,
its attributes checked against the action's definition, then done by the VM backend (or
on every member of a cluster).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from backends.contracts.interfaces import VMBackend
from backends.contracts.model import Principal
from backends.store.tables.occi import OCCIEntity
from gateway.occi import infrastructure as infra
from gateway.occi import validation
from gateway.occi.authorisation import Authorisation
from gateway.occi.categories import Categories
from gateway.occi.clusters import Clusters
from gateway.occi.entity import Document, Entity
from gateway.occi.errors import OCCIError, backend_errors, bad_request
from gateway.occi.model import Action, Kind, Mixin
from gateway.occi.views import Views


@dataclass(frozen=True, kw_only=True)
class Actions:
    """Actions on entities and collections."""

    vm: VMBackend
    categories: Categories
    authorisation: Authorisation
    views: Views
    clusters: Clusters

    def action_for(self, kind: Kind, term: str, doc: Document) -> Action:
        """The action named by ?action=<term> (and by the body's Category, if any)."""
        registry = self.categories.registry()
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
        return self.act_and_save(principal, kind, entity_id, action, doc)[0]

    def act_and_save(
        self, principal: Principal, kind: Kind, entity_id: str, action: Action, doc: Document
    ) -> tuple[Entity, Mixin | None]:
        """:meth:`act`, with the os_tpl a save made when it exists now (GFD.224 §3.1: the
        answer to save is the new template; a deferred save has none yet)."""
        record = self.authorisation.record(principal, kind, entity_id)
        self.authorisation.require_on(principal, action.term, kind, record)
        params: dict[str, str] = {}
        for name, value in doc.attributes.items():
            definition = action.attribute(name)
            if definition is None:
                raise bad_request(
                    f"the action {action.term} takes no attribute {name} "
                    f"({', '.join(a.name for a in action.attributes) or 'none'})"
                )
            params[name] = str(validation.coerce(definition, value))
        method = params.pop("method", "")
        doing = f"{action.term} on {kind.location}{entity_id}"
        saved = ""
        if kind is infra.COMPUTE:
            if action.term == "save":  # the caller must learn the new os_tpl: name it here
                params["name"] = saved = params.get("name") or _template_name(record)
            with backend_errors(doing):
                info = self.vm.act(entity_id, action.term, method, **params)
            if action.term in ("save", "stop"):  # a (deferred) save adds an os_tpl
                self.categories.invalidate()
        elif kind is infra.STORAGE:
            with backend_errors(doing):
                self.vm.act_storage(entity_id, action.term)
        elif kind is infra.NETWORK:
            with backend_errors(doing):
                self.vm.act_network(entity_id, action.term)
        elif kind is infra.CLUSTER:
            self.clusters.act(record, action, method, params)
        else:
            raise OCCIError(405, f"{kind.term} has no actions")
        entity = self.views.entity(principal, kind, entity_id)
        if not saved:
            return entity, None
        mixin = infra.os_template(saved, saved)
        entity.attributes["occi.compute.state.message"] = (
            f"{info.state_message}; os_tpl mixin {mixin.identifier}"
        )
        return entity, self.categories.registry().mixins.get(mixin.identifier)

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
        for location, _kind in self.authorisation.visible(principal, [kind]):
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


def _template_name(record: OCCIEntity) -> str:
    """A default name for the os_tpl a save makes: the compute's id and the time (UTC)."""
    return f"{record.id}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"
