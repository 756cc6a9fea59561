"""Who may do what to which OCCI entity: the VO backend decides, from the entity's
ownership record (owner and VO); the front end only asks and obeys.

An entity the caller may not read is answered like one that does not exist (404), so
that nobody learns another user's ids.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from backends.contracts.interfaces import VOBackend
from backends.contracts.model import Principal, Resource
from backends.store import Database
from backends.store.tables.occi import OCCIEntity
from gateway.occi import records
from gateway.occi.categories import Categories
from gateway.occi.entity import relative_location
from gateway.occi.errors import OCCIError, not_found
from gateway.occi.model import Kind


def _term(kind_identifier: str) -> str:
    return kind_identifier.rpartition("#")[2]


@dataclass(frozen=True, kw_only=True)
class Authorisation:
    """Asks the VO backend; one per gateway process."""

    db: Database
    vo: VOBackend
    categories: Categories

    def require(
        self, principal: Principal, action: str, kind: str, entity_id: str, owner: str, vo: str
    ) -> None:
        """403 with the policy's reason unless the VO backend permits ``action``."""
        decision = self.vo.decide(
            principal, action, Resource(kind=kind, id=entity_id, owner=owner, vo=vo)
        )
        if not decision.permitted:
            raise OCCIError(403, decision.reason)

    def require_on(self, principal: Principal, action: str, kind: Kind, record: OCCIEntity) -> None:
        """:meth:`require` for an existing entity, from its record."""
        self.require(principal, action, kind.term, record.id, record.owner, record.vo)

    def may_read(self, principal: Principal, record: OCCIEntity) -> bool:
        resource = Resource(kind=_term(record.kind), id=record.id, owner=record.owner, vo=record.vo)
        return self.vo.decide(principal, "read", resource).permitted

    def record(self, principal: Principal, kind: Kind, entity_id: str) -> OCCIEntity:
        """The record of an entity of ``kind`` (or a child kind) the caller may read."""
        record = records.get(self.db, entity_id.lower())  # UUIDs: any case on input
        if record is None or not self._is_a(record, kind) or not self.may_read(principal, record):
            raise not_found(f"{kind.location}{entity_id}")
        return record

    def require_free(
        self, principal: Principal, kind: Kind, entity_id: str, taken: str = "already exists"
    ) -> None:
        """A client-chosen id that is taken: 409 when the caller may see the entity, 404
        (as for any id the caller may not see) when it is someone else's, so that the
        answer tells nobody which ids exist."""
        record = records.get(self.db, entity_id)
        if record is None:
            return
        if not self.may_read(principal, record):
            raise not_found(f"{kind.location}{entity_id}")
        raise OCCIError(409, f"{entity_id} {taken}")

    def record_at(self, principal: Principal, location: str) -> OCCIEntity:
        """The record at an entity's location (absolute or relative) the caller may read."""
        kind, entity_id = self.categories.split_location(relative_location(location))
        return self.record(principal, kind, entity_id)

    def visible(self, principal: Principal, kinds: Sequence[Kind]) -> list[tuple[str, str]]:
        """(location, kind identifier) of every entity of these kinds the caller may see."""
        locations = {k.identifier: k.location for k in kinds}
        out = []
        for entity_id, kind_id, owner, vo in records.heads(self.db, list(locations)):
            resource = Resource(_term(kind_id), entity_id, owner, vo)
            if self.vo.decide(principal, "read", resource).permitted:
                out.append((locations[kind_id] + entity_id, kind_id))
        return out

    def _is_a(self, record: OCCIEntity, kind: Kind) -> bool:
        found = self.categories.registry().kinds.get(record.kind)
        return found is not None and found.is_a(kind)
