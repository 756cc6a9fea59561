"""Virtual Organisations themselves: the VO, its groups, its roles and its managers.

A VO is created with its root group (``""``), its managers and its first policy (members
may use what owners offer it), all in one transaction. Deleting a VO, a group or a role
ends the memberships (and resource offers) that hang on it in the same transaction, and
moves the revocation epoch of everyone who lost something.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, func, or_, select
from sqlalchemy.orm import Session

from backends.store.tables.vo import VO, VOGroup, VOManager, VOMember, VORole
from backends.vo import members, policies, resources
from backends.vo.errors import Invalid, NotFound
from backends.vo.names import check_group, check_name, check_principal, find_vo, has_group
from backends.vo.sessions import Sessions


def managers_by_vo(session: Session) -> dict[str, frozenset[str]]:
    """VO name → its managers (what the decision index answers is_manager from)."""
    found: dict[str, set[str]] = {}
    for vo, who in session.execute(
        select(VO.name, VOManager.principal).join(VO, VO.id == VOManager.vo_id)
    ):
        found.setdefault(vo, set()).add(who)
    return {k: frozenset(v) for k, v in found.items()}


class Organisations:
    """Create, read and delete VOs; add and remove their groups, roles and managers."""

    def __init__(self, db: Sessions) -> None:
        self.db = db

    def require(self, name: str) -> None:
        """NotFound unless the VO exists."""
        with self.db.session() as session:
            find_vo(session, name)

    # -- VOs -----------------------------------------------------------------------------
    def create_vo(
        self, name: str, *, description: str = "", creator: str = "", managers: list[str] = ()
    ) -> dict[str, Any]:
        check_name(name, "VO name")
        for m in managers:
            check_principal(m)
        with self.db.change(f"VO {name!r} exists already") as session:
            vo = VO(name=name, description=description, created_by=creator)
            session.add(vo)
            session.flush()
            session.add(VOGroup(vo_id=vo.id, path="", description="the VO itself"))
            session.add_all(VOManager(vo_id=vo.id, principal=m) for m in set(managers))
            policies.add_default(session, name, creator)
        return self.get_vo(name)

    def list_vos(self) -> list[dict[str, Any]]:
        with self.db.session() as session:
            counts = dict(
                session.execute(
                    select(VOMember.vo_id, func.count(func.distinct(VOMember.principal)))
                    .where(VOMember.status == "active")
                    .group_by(VOMember.vo_id)
                ).all()
            )
            return [
                {"name": v.name, "description": v.description, "members": counts.get(v.id, 0)}
                for v in session.scalars(select(VO).order_by(VO.name))
            ]

    def get_vo(self, name: str) -> dict[str, Any]:
        with self.db.session() as session:
            vo = find_vo(session, name)
            return {
                "name": vo.name,
                "description": vo.description,
                "created_by": vo.created_by,
                "created_at": vo.created_at,
                "groups": [
                    g
                    for g in session.scalars(
                        select(VOGroup.path).where(VOGroup.vo_id == vo.id).order_by(VOGroup.path)
                    )
                ],
                "roles": list(
                    session.scalars(
                        select(VORole.name).where(VORole.vo_id == vo.id).order_by(VORole.name)
                    )
                ),
                "managers": list(
                    session.scalars(
                        select(VOManager.principal)
                        .where(VOManager.vo_id == vo.id)
                        .order_by(VOManager.principal)
                    )
                ),
                "members": session.scalar(
                    select(func.count(func.distinct(VOMember.principal))).where(
                        VOMember.vo_id == vo.id, VOMember.status == "active"
                    )
                ),
            }

    def delete_vo(self, name: str) -> None:
        """The VO with its groups, roles, managers, memberships and resource offers."""
        with self.db.change() as session:
            vo = find_vo(session, name)
            members.drop_all(session, vo.id)
            resources.drop_all(session, vo.id)
            session.execute(delete(VOManager).where(VOManager.vo_id == vo.id))
            session.execute(delete(VORole).where(VORole.vo_id == vo.id))
            session.execute(delete(VOGroup).where(VOGroup.vo_id == vo.id))
            session.delete(vo)

    # -- groups and roles ----------------------------------------------------------------
    def add_group(self, vo: str, path: str, description: str = "") -> str:
        path = check_group(path)
        if not path:
            raise Invalid("the root group exists with the VO; name a subgroup ('a' or 'a/b')")
        with self.db.change(f"VO {vo} has a group {path!r} already") as session:
            row = find_vo(session, vo)
            parent = path.rpartition("/")[0]
            if not has_group(session, row.id, parent):
                raise NotFound(f"VO {vo} has no group {parent!r} to put {path!r} under")
            session.add(VOGroup(vo_id=row.id, path=path, description=description))
        return path

    def remove_group(self, vo: str, path: str) -> None:
        """Remove a group, its subgroups and the memberships in them."""
        path = check_group(path)
        if not path:
            raise Invalid("the root group goes only with the VO itself")
        with self.db.change() as session:
            row = find_vo(session, vo)
            inside = or_(VOGroup.path == path, VOGroup.path.startswith(path + "/"))
            if not session.scalars(
                select(VOGroup.id).where(VOGroup.vo_id == row.id, inside)
            ).first():
                raise NotFound(f"VO {vo} has no group {path!r}")
            members.drop_inside(session, row.id, path)
            session.execute(delete(VOGroup).where(VOGroup.vo_id == row.id, inside))

    def add_role(self, vo: str, role: str, description: str = "") -> str:
        check_name(role, "role name")
        with self.db.change(f"VO {vo} has a role {role!r} already") as session:
            session.add(VORole(vo_id=find_vo(session, vo).id, name=role, description=description))
        return role

    def remove_role(self, vo: str, role: str) -> None:
        """Remove a role from the VO and from every member holding it."""
        with self.db.change() as session:
            row = find_vo(session, vo)
            found = session.scalars(
                select(VORole).where(VORole.vo_id == row.id, VORole.name == role)
            ).first()
            if found is None:
                raise NotFound(f"VO {vo} has no role {role!r}")
            members.drop_role(session, row.id, role)
            session.delete(found)

    # -- managers ------------------------------------------------------------------------
    def add_manager(self, vo: str, principal: str) -> None:
        check_principal(principal)
        with self.db.change(f"{principal} manages VO {vo} already") as session:
            session.add(VOManager(vo_id=find_vo(session, vo).id, principal=principal))

    def remove_manager(self, vo: str, principal: str) -> None:
        with self.db.change() as session:
            row = find_vo(session, vo)
            done = session.execute(
                delete(VOManager).where(VOManager.vo_id == row.id, VOManager.principal == principal)
            )
            if done.rowcount == 0:
                raise NotFound(f"{principal} is not a manager of VO {vo}")
