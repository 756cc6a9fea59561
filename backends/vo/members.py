"""VO members: who asked to join, who was let in, suspended, given roles, or removed.

A membership is of the VO (the root group ``""``) or of one of its groups, and joining a
group takes the VO membership first. Its status is ``requested`` (the principal asks),
``active`` or ``suspended``; ``expired`` is derived from ``expires_at``. Whatever takes
something away from a member moves the member's revocation epoch in the same transaction.
The ``drop_*`` functions are what other parts' deletions (a VO, a group, a role) do to the
memberships, inside their transaction.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, delete, or_, select
from sqlalchemy.orm import Session

from backends.store.tables.vo import VO, VOMember, VORole
from backends.vo.errors import Conflict, Invalid, NotFound
from backends.vo.memberships import revoke
from backends.vo.names import check_group, check_principal, find_vo, has_group
from backends.vo.sessions import Sessions

STATUSES = ("requested", "active", "suspended")


def _now() -> datetime:
    return datetime.now(UTC)


def _view(vo: str, m: VOMember) -> dict[str, Any]:
    expired = m.expires_at is not None and m.expires_at <= _now()
    return {
        "vo": vo,
        "principal": m.principal,
        "group": m.group_path,
        "status": "expired" if expired and m.status == "active" else m.status,
        "roles": sorted(m.roles or []),
        "expires_at": m.expires_at,
        "requested_at": m.requested_at,
        "decided_by": m.decided_by,
        "decided_at": m.decided_at,
        "comment": m.comment,
    }


def _checked_roles(session: Session, vo_id: int, vo: str, roles: list[str]) -> list[str]:
    known = set(session.scalars(select(VORole.name).where(VORole.vo_id == vo_id)))
    unknown = sorted(set(roles) - known)
    if unknown:
        raise Invalid(f"VO {vo} has no role {', '.join(unknown)} (define it first)")
    return sorted(set(roles))


def _drop(session: Session, vo_id: int, *where: ColumnElement[bool]) -> None:
    who = session.scalars(select(VOMember.principal).where(VOMember.vo_id == vo_id, *where)).all()
    revoke(session, who)
    session.execute(delete(VOMember).where(VOMember.vo_id == vo_id, *where))


def drop_all(session: Session, vo_id: int) -> None:
    """End every membership of a VO (in the transaction that deletes it)."""
    _drop(session, vo_id)


def drop_inside(session: Session, vo_id: int, path: str) -> None:
    """End the memberships of a group and its subgroups (as the group is removed)."""
    inside = or_(VOMember.group_path == path, VOMember.group_path.startswith(path + "/"))
    _drop(session, vo_id, inside)


def drop_role(session: Session, vo_id: int, role: str) -> None:
    """Take a role from every member holding it (as the role is removed)."""
    holders = []
    for member in session.scalars(select(VOMember).where(VOMember.vo_id == vo_id)):
        if role in (member.roles or []):
            member.roles = [r for r in member.roles if r != role]
            holders.append(member.principal)
    revoke(session, holders)


class Members:
    """The memberships of VOs and their groups, as managers and principals change them."""

    def __init__(self, db: Sessions) -> None:
        self.db = db

    def add_member(
        self,
        vo: str,
        principal: str,
        *,
        group: str = "",
        roles: list[str] = (),
        expires_at: datetime | None = None,
        status: str = "active",
        by: str = "",
        comment: str = "",
    ) -> dict[str, Any]:
        """A membership: ``requested`` (the principal asks) or ``active`` (a manager adds)."""
        check_principal(principal)
        group = check_group(group)
        if status not in ("requested", "active"):
            raise Invalid("a new membership is 'requested' or 'active'")
        if expires_at is not None and expires_at <= _now():
            raise Invalid("expires_at lies in the past")
        already = (
            f"{principal} is a member of {vo}{'/' + group if group else ''} already (or has asked)"
        )
        with self.db.change(already) as session:
            row = find_vo(session, vo)
            if not has_group(session, row.id, group):
                raise NotFound(f"VO {vo} has no group {group!r}")
            if group and not session.scalar(
                select(VOMember.id).where(
                    VOMember.vo_id == row.id,
                    VOMember.principal == principal,
                    VOMember.group_path == "",
                )
            ):
                raise Conflict(f"{principal} must join VO {vo} before its group {group!r}")
            member = VOMember(
                vo_id=row.id,
                principal=principal,
                group_path=group,
                status=status,
                roles=_checked_roles(session, row.id, vo, list(roles)),
                expires_at=expires_at,
                requested_at=_now(),
                comment=comment,
                decided_by=by if status == "active" else "",
                decided_at=_now() if status == "active" else None,
            )
            session.add(member)
        return _view(vo, member)

    def _member(self, session: Session, vo: str, principal: str, group: str) -> tuple[VO, VOMember]:
        row = find_vo(session, vo)
        member = session.scalars(
            select(VOMember).where(
                VOMember.vo_id == row.id,
                VOMember.principal == principal,
                VOMember.group_path == group,
            )
        ).first()
        if member is None:
            where = f"group {group!r} of VO {vo}" if group else f"VO {vo}"
            raise NotFound(f"{principal} is not a member of {where}")
        return row, member

    def update_member(
        self,
        vo: str,
        principal: str,
        *,
        group: str = "",
        status: str | None = None,
        roles: list[str] | None = None,
        expires_at: datetime | None = None,
        clear_expiry: bool = False,
        by: str = "",
    ) -> dict[str, Any]:
        """Approve (requested→active), suspend, reinstate, expire (status "expired"),
        change roles or the expiry. Taking anything away revokes issued VO tokens."""
        group = check_group(group)
        with self.db.change() as session:
            row, member = self._member(session, vo, principal, group)
            taken = False
            if status is not None:
                if status == "active":
                    if (
                        member.status == "active"
                        and member.expires_at
                        and member.expires_at <= _now()
                        and expires_at is None
                        and not clear_expiry
                    ):
                        raise Conflict(
                            f"{principal}'s membership of {vo} has expired: give a new expires_at"
                        )
                    member.status = "active"
                    member.decided_by, member.decided_at = by, _now()
                elif status == "suspended":
                    if member.status == "requested":
                        raise Conflict(f"{principal} only asked to join {vo}: approve or remove it")
                    taken = member.status != "suspended"
                    member.status = "suspended"
                    member.decided_by, member.decided_at = by, _now()
                elif status == "expired":
                    member.expires_at = _now()
                    taken = True
                else:
                    raise Invalid(f"status {status!r}: use active, suspended or expired")
            if roles is not None:
                new = _checked_roles(session, row.id, vo, roles)
                taken = taken or bool(set(member.roles or []) - set(new))
                member.roles = new
            if clear_expiry:
                member.expires_at = None
            elif expires_at is not None:
                if expires_at <= _now():
                    raise Invalid(
                        "expires_at lies in the past (use status 'expired' to end it now)"
                    )
                member.expires_at = expires_at
            if taken:
                revoke(session, [principal])
            view = _view(vo, member)
        return view

    def remove_member(self, vo: str, principal: str, group: str | None = None) -> int:
        """Remove the membership of one group, or (group None) of the whole VO."""
        with self.db.change() as session:
            row = find_vo(session, vo)
            query = delete(VOMember).where(
                VOMember.vo_id == row.id, VOMember.principal == principal
            )
            if group is not None:
                query = query.where(VOMember.group_path == check_group(group))
            done = session.execute(query).rowcount
            if not done:
                raise NotFound(f"{principal} is not a member of VO {vo}")
            revoke(session, [principal])
        return done

    def list_members(self, vo: str, status: str | None = None) -> list[dict[str, Any]]:
        with self.db.session() as session:
            row = find_vo(session, vo)
            query = select(VOMember).where(VOMember.vo_id == row.id)
            if status in STATUSES:
                query = query.where(VOMember.status == status)
            views = [
                _view(vo, m)
                for m in session.scalars(query.order_by(VOMember.principal, VOMember.group_path))
            ]
        return [v for v in views if status is None or v["status"] == status]

    def member(self, vo: str, principal: str) -> list[dict[str, Any]]:
        views = [m for m in self.list_members(vo) if m["principal"] == principal]
        if not views:
            raise NotFound(f"{principal} is not a member of VO {vo}")
        return views
