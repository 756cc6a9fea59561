"""Ownership records of OCCI entities and user mixins in the SQL store.

The hypervisor holds a VM's facts; the store holds who owns it, in which VO, and what
OCCI adds (title, summary, mixins, links). Listings read only this table.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import String, cast, delete, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from backends.store import Database
from backends.store.tables.occi import OCCICollectionVersion, OCCIEntity, OCCIUserMixin
from gateway.occi import infrastructure as infra
from gateway.occi.model import Kind


def get(db: Database, entity_id: str) -> OCCIEntity | None:
    with db.session() as session:
        return session.get(OCCIEntity, entity_id)


def get_many(db: Database, ids: Iterable[str]) -> dict[str, OCCIEntity]:
    wanted = list(ids)
    if not wanted:
        return {}
    out: dict[str, OCCIEntity] = {}
    with db.session() as session:
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            for row in session.scalars(select(OCCIEntity).where(OCCIEntity.id.in_(chunk))):
                out[row.id] = row
    return out


def of_kinds(db: Database, kinds: Sequence[str], *, owner: str | None = None) -> list[OCCIEntity]:
    query = (
        select(OCCIEntity)
        .where(OCCIEntity.kind.in_(kinds))
        .order_by(OCCIEntity.created, OCCIEntity.id)
    )
    if owner is not None:
        query = query.where(OCCIEntity.owner == owner)
    with db.session() as session:
        return list(session.scalars(query))


def heads(
    db: Database, kinds: Sequence[str], *, owner: str | None = None
) -> list[tuple[str, str, str, str]]:
    """(id, kind, owner, vo) of every entity of these kinds, oldest first: what a location
    listing and its authorisation need, without loading the rest."""
    query = (
        select(OCCIEntity.id, OCCIEntity.kind, OCCIEntity.owner, OCCIEntity.vo)
        .where(OCCIEntity.kind.in_(kinds))
        .order_by(OCCIEntity.created, OCCIEntity.id)
    )
    if owner is not None:
        query = query.where(OCCIEntity.owner == owner)
    with db.engine.connect() as conn:
        return [tuple(row) for row in conn.execute(query)]  # type: ignore[misc]


def version(db: Database, kinds: Sequence[str]) -> tuple[tuple[str, int], ...]:
    """Changes whenever an entity of these kinds is added or removed (by any process).
    Asked on every listing, so it is plain SQL: the table holds one row per kind."""
    with db.engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT kind, version FROM occi_collection_versions").all()
    return tuple(sorted((kind, int(v)) for kind, v in rows if kind in kinds))


def _bump(session: Session, kinds: Iterable[str]) -> None:
    """Raise the collection versions of these kinds, inside the caller's transaction."""
    dialect = session.get_bind().dialect.name
    insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
    for kind in sorted(set(kinds)):
        statement = insert(OCCICollectionVersion).values(kind=kind, version=1)
        session.execute(
            statement.on_conflict_do_update(
                index_elements=[OCCICollectionVersion.kind],
                set_={"version": OCCICollectionVersion.version + 1},
            )
        )


def linked_to(db: Database, location: str) -> list[OCCIEntity]:
    """Links whose source or target is this location."""
    query = select(OCCIEntity).where(
        (OCCIEntity.source == location) | (OCCIEntity.target == location)
    )
    with db.session() as session:
        return list(session.scalars(query))


def with_mixin(db: Database, identifier: str) -> list[OCCIEntity]:
    """Entities tagged with a mixin. The JSON list is searched as text (portable across
    SQLite and PostgreSQL; LIKE's wildcards only widen it), then checked exactly."""
    quoted = json.dumps(identifier)
    pattern = "%" + quoted.replace("\\", "\\\\").replace("%", "\\%") + "%"
    query = (
        select(OCCIEntity)
        .where(cast(OCCIEntity.mixins, String).like(pattern, escape="\\"))
        .order_by(OCCIEntity.created, OCCIEntity.id)
    )
    with db.session() as session:
        return [row for row in session.scalars(query) if identifier in (row.mixins or [])]


def insert(db: Database, record: OCCIEntity) -> None:
    with db.session() as session:
        session.add(record)
        _bump(session, [record.kind])


def save(db: Database, record: OCCIEntity) -> None:
    with db.session() as session:
        session.merge(record)


def remove(db: Database, *ids: str) -> None:
    if ids:
        with db.session() as session:
            kinds = session.scalars(select(OCCIEntity.kind).where(OCCIEntity.id.in_(ids))).all()
            session.execute(delete(OCCIEntity).where(OCCIEntity.id.in_(ids)))
            _bump(session, kinds)


def new(
    entity_id: str,
    kind: Kind,
    owner: str,
    vo: str,
    *,
    title: str = "",
    summary: str = "",
    mixins: Sequence[str] = (),
    links: Sequence[str] = (),
    source: str = "",
    target: str = "",
    attributes: dict[str, Any] | None = None,
) -> OCCIEntity:
    """A record not yet stored, every column given (the table's defaults apply only once
    it is written, and callers read the record before that)."""
    return OCCIEntity(
        id=entity_id,
        kind=kind.identifier,
        owner=owner,
        vo=vo,
        title=title,
        summary=summary,
        mixins=list(mixins),
        links=list(links),
        source=source,
        target=target,
        attributes=dict(attributes or {}),
    )


def copy(record: OCCIEntity, **changes: Any) -> OCCIEntity:
    values = {c.name: getattr(record, c.name) for c in OCCIEntity.__table__.columns}
    values.update(changes)
    return OCCIEntity(**values)


def kept_attributes(kind: Kind, values: dict[str, Any]) -> dict[str, Any]:
    """What the store keeps of a client's attributes: what the backend does not hold."""
    held = {
        infra.COMPUTE.identifier: (
            "occi.compute.cores",
            "occi.compute.memory",
            "occi.compute.architecture",
            "occi.compute.hostname",
        ),
        infra.STORAGE.identifier: ("occi.storage.size",),
        infra.NETWORK.identifier: (
            "occi.network.vlan",
            "occi.network.label",
            "occi.network.address",
            "occi.network.gateway",
            "occi.network.allocation",
        ),
        infra.CLUSTER.identifier: ("xtreemgate.cluster.size",),
    }.get(kind.identifier, ())
    return {k: v for k, v in values.items() if k not in held and not k.startswith("occi.core.")}


# -- user mixins --------------------------------------------------------------------------
def user_mixins(db: Database, owner: str | None = None) -> list[OCCIUserMixin]:
    """Every user's mixins, or one owner's."""
    query = select(OCCIUserMixin).order_by(OCCIUserMixin.id)
    if owner is not None:
        query = query.where(OCCIUserMixin.owner == owner)
    with db.session() as session:
        return list(session.scalars(query))


def add_user_mixin(db: Database, mixin: OCCIUserMixin) -> None:
    with db.session() as session:
        session.add(mixin)


def remove_user_mixin(db: Database, owner: str, location: str) -> None:
    with db.session() as session:
        session.execute(
            delete(OCCIUserMixin).where(
                OCCIUserMixin.owner == owner, OCCIUserMixin.location == location
            )
        )
