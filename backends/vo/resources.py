"""The resource registry: what owners offer to which VOs.

An owner registers a resource (a cluster, a volume...) into a VO, and the VO's policy then
decides what its members may do with it. One resource has one owner, whatever VOs it is
offered to. The decision index reads the registrations as offers; it answers who owns a
resource without asking the database.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from backends.store.tables.vo import VO, VOResource
from backends.vo.errors import Conflict, Invalid, NotFound
from backends.vo.names import check_name, check_principal, find_vo
from backends.vo.policy import Offer
from backends.vo.sessions import Sessions


def offers(session: Session) -> dict[tuple[str, str], Offer]:
    """(kind, id) → who owns it and the VOs it is offered to."""
    found: dict[tuple[str, str], tuple[str, set[str]]] = {}
    for kind, rid, owner, vo in session.execute(
        select(VOResource.kind, VOResource.resource_id, VOResource.owner, VO.name).join(
            VO, VO.id == VOResource.vo_id
        )
    ):
        found.setdefault((kind, rid), (owner, set()))[1].add(vo)
    return {k: Offer(o, frozenset(v)) for k, (o, v) in found.items()}


def drop_all(session: Session, vo_id: int) -> None:
    """Withdraw everything offered to a VO (in the transaction that deletes it)."""
    session.execute(delete(VOResource).where(VOResource.vo_id == vo_id))


class ResourceRegistry:
    """Register, withdraw and list the resources offered to a VO."""

    def __init__(self, db: Sessions) -> None:
        self.db = db

    def register_resource(self, vo: str, kind: str, resource_id: str, owner: str) -> dict[str, Any]:
        check_name(kind, "resource kind")
        if not resource_id or len(resource_id) > 255:
            raise Invalid("a resource id is 1 to 255 characters")
        check_principal(owner)
        with self.db.change(f"{kind} {resource_id} is registered into VO {vo} already") as session:
            row = find_vo(session, vo)
            other = session.scalar(
                select(VOResource.owner).where(
                    VOResource.kind == kind,
                    VOResource.resource_id == resource_id,
                    VOResource.owner != owner,
                )
            )
            if other:
                raise Conflict(
                    f"{kind} {resource_id} is registered by its owner {other}, not {owner}"
                )
            session.add(VOResource(vo_id=row.id, kind=kind, resource_id=resource_id, owner=owner))
        return {"vo": vo, "kind": kind, "id": resource_id, "owner": owner}

    def unregister_resource(self, vo: str, kind: str, resource_id: str) -> None:
        with self.db.change() as session:
            row = find_vo(session, vo)
            done = session.execute(
                delete(VOResource).where(
                    VOResource.vo_id == row.id,
                    VOResource.kind == kind,
                    VOResource.resource_id == resource_id,
                )
            )
            if not done.rowcount:
                raise NotFound(f"{kind} {resource_id} is not registered into VO {vo}")

    def list_resources(self, vo: str) -> list[dict[str, Any]]:
        with self.db.session() as session:
            row = find_vo(session, vo)
            return [
                {
                    "vo": vo,
                    "kind": r.kind,
                    "id": r.resource_id,
                    "owner": r.owner,
                    "registered_at": r.registered_at,
                }
                for r in session.scalars(
                    select(VOResource)
                    .where(VOResource.vo_id == row.id)
                    .order_by(VOResource.kind, VOResource.resource_id)
                )
            ]
