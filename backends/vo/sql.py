"""VOs, memberships, policies, account leases and audit in the SQL store.

decide() never touches the database on its hot path: policies, VO managers and resource
registrations are compiled into a :class:`~backends.vo.policy.PolicyIndex` in memory. Every
change bumps one counter (``vo_state.version``); each process reads that counter at most
every ``vo.refresh_interval`` seconds and rebuilds the index when it moved, and rebuilds at
once after a change it made itself. Memberships are read per principal and cached
(``vo.membership_cache_seconds``, dropped on any change seen through the counter).
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, delete, func, or_, select, tuple_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from backends.contracts.interfaces import BackendContext, VOBackend
from backends.contracts.model import (
    HealthReport,
    LocalAccount,
    PolicyDecision,
    Principal,
    Resource,
    VOMembership,
)
from backends.store.tables.vo import (
    VO,
    MembershipEpoch,
    PolicyVersion,
    VOGroup,
    VOManager,
    VOMember,
    VOResource,
    VORole,
    VOState,
)
from backends.vo.accounts import (
    AccountSource,
    ActivityProbe,
    ConfigAccountSource,
    LeaseManager,
    ldap_account_source,
    processes_running_as,
)
from backends.vo.audit import AuditWriter, Usage
from backends.vo.errors import Conflict, Invalid, NotFound
from backends.vo.policy import (
    DEFAULT_VO_POLICY,
    LEVELS,
    Offer,
    PolicyIndex,
    combine,
    compile_policy,
    validate_document,
)
from backends.vo.settings import SQLVOSettings

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
PRINCIPAL = re.compile(r"^[^\s/\x00-\x1f]{1,255}$")
STATUSES = ("requested", "active", "suspended")


def _now() -> datetime:
    return datetime.now(UTC)


def subject_hash(name: str) -> str:
    """How a revocation list names a principal without publishing the name."""
    return hashlib.sha256(name.encode()).hexdigest()


def check_name(value: str, what: str) -> str:
    if not isinstance(value, str) or not NAME.match(value):
        raise Invalid(
            f"{what} {value!r} is not allowed: letters, digits, '.', '_', '-', at most 128, "
            "starting with a letter or digit"
        )
    return value


def check_group(path: str) -> str:
    path = (path or "").strip("/")
    for part in path.split("/") if path else ():
        check_name(part, "group name")
    return path


def check_principal(name: str) -> str:
    if not isinstance(name, str) or not PRINCIPAL.match(name):
        raise Invalid(f"principal name {name!r} is empty, too long or has spaces or '/'")
    return name


_MEMBERSHIPS = (
    select(VO.name, VOMember.group_path, VOMember.roles, VOMember.expires_at)
    .join(VO, VO.id == VOMember.vo_id)
    .where(
        VOMember.principal == bindparam("principal"),
        VOMember.status == "active",
        or_(VOMember.expires_at.is_(None), VOMember.expires_at > bindparam("now")),
    )
    .order_by(VO.name, VOMember.group_path)
)


class _Sessions:
    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self._maker = sessionmaker(engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self._maker.begin() as session:
            yield session


class SQLVOBackend(VOBackend):
    name = "sql"
    settings = SQLVOSettings

    def __init__(self, context: BackendContext[SQLVOSettings]) -> None:
        super().__init__(context)
        options = SQLVOSettings.of(context.settings)
        self.db = _Sessions(context.engine)
        self.refresh_interval = float(options.refresh_interval)
        self.membership_ttl = float(options.membership_cache_seconds)
        self.open_factory = options.open_factory
        self.accounts: AccountSource = ConfigAccountSource(options.pools, options.own_accounts)
        if context.directory is not None:  # the site directory first, then the config
            self.accounts = ldap_account_source(context.directory, self.accounts)
        self.leases = LeaseManager(self.db, options.lease_idle_seconds, processes_running_as)
        self.audit = AuditWriter(self.db, float(options.audit_flush_seconds))
        self._index = PolicyIndex()
        self._checked = float("-inf")
        self._lock = threading.Lock()
        self._members: dict[str, tuple[float, tuple[VOMembership, ...]]] = {}
        self._epochs: dict[str, int] = {}

    # -- wiring hooks --------------------------------------------------------------------
    def use_account_source(self, source: AccountSource) -> None:
        """Where own and pool accounts come from, instead of the config and the directory."""
        self.accounts = source

    def use_activity_probe(self, probe: ActivityProbe) -> None:
        """Whether an account's last holder still has running work (execution records)."""
        self.leases.probe = probe

    def health(self) -> HealthReport:
        try:
            with self.db.session() as session:
                version = session.scalar(select(VOState.version).where(VOState.id == 1))
                vos = session.scalar(select(func.count()).select_from(VO))
        except Exception as exc:
            return HealthReport(False, f"VO store unreachable: {exc}")
        if version is None:
            return HealthReport(False, "VO tables missing: run 'xtreemgate db upgrade'")
        return HealthReport(True, "VO store reachable", {"vos": vos, "policy_version": version})

    def close(self) -> None:
        self.audit.close()

    # -- the compiled index --------------------------------------------------------------
    def _changed(self, session: Session) -> None:
        """Call inside every writing transaction: other processes see the counter move."""
        session.execute(update(VOState).where(VOState.id == 1).values(version=VOState.version + 1))

    def _after_change(self) -> None:
        self._checked = float("-inf")
        self._members.clear()
        self._epochs.clear()

    def index(self) -> PolicyIndex:
        now = time.monotonic()
        if now - self._checked < self.refresh_interval:
            return self._index
        with self._lock:
            if now - self._checked < self.refresh_interval:
                return self._index
            with self.db.session() as session:
                version = session.scalar(select(VOState.version).where(VOState.id == 1)) or 0
                if version != self._index.version:
                    self._index = self._build(session, version)
                    self._members.clear()
                    self._epochs.clear()
            self._checked = now
        return self._index

    def _build(self, session: Session, version: int) -> PolicyIndex:
        index = PolicyIndex(version=version)
        latest = (
            select(PolicyVersion.level, PolicyVersion.scope, func.max(PolicyVersion.version))
            .group_by(PolicyVersion.level, PolicyVersion.scope)
            .subquery()
        )
        rows = session.execute(
            select(PolicyVersion).where(
                tuple_(PolicyVersion.level, PolicyVersion.scope, PolicyVersion.version).in_(
                    select(latest)
                )
            )
        ).scalars()
        for row in rows:
            target = getattr(index, row.level)
            target[row.scope] = compile_policy(row.level, row.scope, row.version, row.document)
        offers: dict[tuple[str, str], tuple[str, set[str]]] = {}
        for kind, rid, owner, vo in session.execute(
            select(VOResource.kind, VOResource.resource_id, VOResource.owner, VO.name).join(
                VO, VO.id == VOResource.vo_id
            )
        ):
            offers.setdefault((kind, rid), (owner, set()))[1].add(vo)
        index.offers = {k: Offer(o, frozenset(v)) for k, (o, v) in offers.items()}
        managers: dict[str, set[str]] = {}
        for vo, who in session.execute(
            select(VO.name, VOManager.principal).join(VO, VO.id == VOManager.vo_id)
        ):
            managers.setdefault(vo, set()).add(who)
        index.managers = {k: frozenset(v) for k, v in managers.items()}
        return index

    # -- decisions -----------------------------------------------------------------------
    def decide(self, principal: Principal, action: str, resource: Resource) -> PolicyDecision:
        """May ``principal`` do ``action`` on ``resource``? Default deny, always a reason;
        every decision is recorded in the audit trail."""
        decision = combine(
            self.index(), principal, action, resource, open_factory=self.open_factory
        )
        self.audit.record(
            "decision",
            principal.name,
            action,
            vo=decision.vo or resource.vo or (resource.id if resource.kind == "vo" else ""),
            resource_kind=resource.kind,
            resource_id=resource.id,
            outcome=decision.decision.value,
            reason=decision.reason,
        )
        return decision

    def is_manager(self, principal: Principal, vo: str) -> bool:
        return principal.site_admin or principal.name in self.index().managers.get(vo, ())

    # -- memberships ---------------------------------------------------------------------
    def memberships_of(self, principal: str) -> tuple[VOMembership, ...]:
        """Active, unexpired, unsuspended memberships (cached per process, briefly)."""
        self.index()  # notices changes made by other processes
        now = time.monotonic()
        hit = self._members.get(principal)
        if hit is not None and hit[0] > now:
            return hit[1]
        wall = _now()
        with self.db.engine.connect() as conn:  # Core, built once: this runs per login
            rows = conn.execute(_MEMBERSHIPS, {"principal": principal, "now": wall}).all()
        # A subgroup counts only while the VO membership itself (root group) is active.
        joined = {vo for vo, group, _, _ in rows if group == ""}
        found = tuple(
            VOMembership(vo, group, tuple(sorted(roles or ())))
            for vo, group, roles, _ in rows
            if vo in joined
        )
        ttl = self.membership_ttl
        expiries = [exp for *_, exp in rows if exp is not None]
        if expiries:
            ttl = min(ttl, max(0.0, (min(expiries) - wall).total_seconds()))
        if len(self._members) > 100_000:
            self._members.clear()
        self._members[principal] = (now + ttl, found)
        return found

    def cached_memberships(self, principal: str) -> tuple[VOMembership, ...] | None:
        """The cached answer of memberships_of, or None when it would read the store."""
        if time.monotonic() - self._checked >= self.refresh_interval:
            return None
        hit = self._members.get(principal)
        return hit[1] if hit is not None and hit[0] > time.monotonic() else None

    def cached_epoch(self, principal: str) -> int | None:
        """The cached membership epoch, or None when reading it would touch the store."""
        if time.monotonic() - self._checked >= self.refresh_interval:
            return None
        return self._epochs.get(principal)

    def membership_expiry(self, principal: str) -> datetime | None:
        """When the first of the principal's active memberships runs out (None: never)."""
        with self.db.session() as session:
            return session.scalar(
                select(func.min(VOMember.expires_at)).where(
                    VOMember.principal == principal,
                    VOMember.status == "active",
                    VOMember.expires_at > _now(),
                )
            )

    def membership_epoch(self, principal: str) -> int:
        """Bumped whenever something is taken away from the principal (revocation)."""
        self.index()
        cached = self._epochs.get(principal)
        if cached is not None:
            return cached
        with self.db.session() as session:
            epoch = (
                session.scalar(
                    select(MembershipEpoch.epoch).where(MembershipEpoch.principal == principal)
                )
                or 0
            )
        if len(self._epochs) > 100_000:
            self._epochs.clear()
        self._epochs[principal] = epoch
        return epoch

    def revocations(self, window_seconds: int) -> dict[str, int]:
        """Principals (as sha256 hex) whose epoch moved within the window → epoch now.

        A remote gateway refuses a token of ours whose epoch is below the listed one;
        tokens older than the window have expired anyway.
        """
        since = _now() - timedelta(seconds=window_seconds)
        with self.db.session() as session:
            rows = session.execute(
                select(MembershipEpoch.principal, MembershipEpoch.epoch).where(
                    MembershipEpoch.updated_at >= since
                )
            ).all()
        return {subject_hash(p): e for p, e in rows}

    def _revoke(self, session: Session, principals: set[str] | list[str]) -> None:
        for who in set(principals):
            row = session.get(MembershipEpoch, who)
            if row is None:
                session.add(MembershipEpoch(principal=who, epoch=1, updated_at=_now()))
            else:
                row.epoch += 1
                row.updated_at = _now()

    # -- VOs -----------------------------------------------------------------------------
    def _vo(self, session: Session, name: str) -> VO:
        vo = session.scalars(select(VO).where(VO.name == name)).first()
        if vo is None:
            raise NotFound(f"no VO {name!r}")
        return vo

    def create_vo(
        self, name: str, *, description: str = "", creator: str = "", managers: list[str] = ()
    ) -> dict[str, Any]:
        check_name(name, "VO name")
        for m in managers:
            check_principal(m)
        try:
            with self.db.session() as session:
                vo = VO(name=name, description=description, created_by=creator)
                session.add(vo)
                session.flush()
                session.add(VOGroup(vo_id=vo.id, path="", description="the VO itself"))
                session.add_all(VOManager(vo_id=vo.id, principal=m) for m in set(managers))
                earlier = session.scalar(  # a VO of that name deleted before: keep its history
                    select(func.max(PolicyVersion.version)).where(
                        PolicyVersion.level == "vo", PolicyVersion.scope == name
                    )
                )
                session.add(
                    PolicyVersion(
                        level="vo",
                        scope=name,
                        version=(earlier or 0) + 1,
                        document=DEFAULT_VO_POLICY,
                        author=creator,
                        comment="created with the VO",
                    )
                )
                self._changed(session)
        except IntegrityError as exc:
            raise Conflict(f"VO {name!r} exists already") from exc
        self._after_change()
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
            vo = self._vo(session, name)
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
        with self.db.session() as session:
            vo = self._vo(session, name)
            members = session.scalars(
                select(VOMember.principal).where(VOMember.vo_id == vo.id)
            ).all()
            self._revoke(session, members)
            session.execute(delete(VOMember).where(VOMember.vo_id == vo.id))
            session.execute(delete(VOResource).where(VOResource.vo_id == vo.id))
            session.execute(delete(VOManager).where(VOManager.vo_id == vo.id))
            session.execute(delete(VORole).where(VORole.vo_id == vo.id))
            session.execute(delete(VOGroup).where(VOGroup.vo_id == vo.id))
            session.delete(vo)
            self._changed(session)
        self._after_change()

    # -- groups and roles ----------------------------------------------------------------
    def add_group(self, vo: str, path: str, description: str = "") -> str:
        path = check_group(path)
        if not path:
            raise Invalid("the root group exists with the VO; name a subgroup ('a' or 'a/b')")
        try:
            with self.db.session() as session:
                row = self._vo(session, vo)
                parent = path.rpartition("/")[0]
                if (
                    session.scalar(
                        select(VOGroup.id).where(VOGroup.vo_id == row.id, VOGroup.path == parent)
                    )
                    is None
                ):
                    raise NotFound(f"VO {vo} has no group {parent!r} to put {path!r} under")
                session.add(VOGroup(vo_id=row.id, path=path, description=description))
                self._changed(session)
        except IntegrityError as exc:
            raise Conflict(f"VO {vo} has a group {path!r} already") from exc
        self._after_change()
        return path

    def remove_group(self, vo: str, path: str) -> None:
        """Remove a group, its subgroups and the memberships in them."""
        path = check_group(path)
        if not path:
            raise Invalid("the root group goes only with the VO itself")
        with self.db.session() as session:
            row = self._vo(session, vo)
            inside = or_(VOGroup.path == path, VOGroup.path.startswith(path + "/"))
            if not session.scalars(
                select(VOGroup.id).where(VOGroup.vo_id == row.id, inside)
            ).first():
                raise NotFound(f"VO {vo} has no group {path!r}")
            members_inside = or_(
                VOMember.group_path == path, VOMember.group_path.startswith(path + "/")
            )
            who = session.scalars(
                select(VOMember.principal).where(VOMember.vo_id == row.id, members_inside)
            ).all()
            self._revoke(session, who)
            session.execute(delete(VOMember).where(VOMember.vo_id == row.id, members_inside))
            session.execute(delete(VOGroup).where(VOGroup.vo_id == row.id, inside))
            self._changed(session)
        self._after_change()

    def add_role(self, vo: str, role: str, description: str = "") -> str:
        check_name(role, "role name")
        try:
            with self.db.session() as session:
                session.add(
                    VORole(vo_id=self._vo(session, vo).id, name=role, description=description)
                )
                self._changed(session)
        except IntegrityError as exc:
            raise Conflict(f"VO {vo} has a role {role!r} already") from exc
        self._after_change()
        return role

    def remove_role(self, vo: str, role: str) -> None:
        """Remove a role from the VO and from every member holding it."""
        with self.db.session() as session:
            row = self._vo(session, vo)
            found = session.scalars(
                select(VORole).where(VORole.vo_id == row.id, VORole.name == role)
            ).first()
            if found is None:
                raise NotFound(f"VO {vo} has no role {role!r}")
            holders = []
            for member in session.scalars(select(VOMember).where(VOMember.vo_id == row.id)):
                if role in (member.roles or []):
                    member.roles = [r for r in member.roles if r != role]
                    holders.append(member.principal)
            self._revoke(session, holders)
            session.delete(found)
            self._changed(session)
        self._after_change()

    # -- managers ------------------------------------------------------------------------
    def add_manager(self, vo: str, principal: str) -> None:
        check_principal(principal)
        try:
            with self.db.session() as session:
                session.add(VOManager(vo_id=self._vo(session, vo).id, principal=principal))
                self._changed(session)
        except IntegrityError as exc:
            raise Conflict(f"{principal} manages VO {vo} already") from exc
        self._after_change()

    def remove_manager(self, vo: str, principal: str) -> None:
        with self.db.session() as session:
            row = self._vo(session, vo)
            done = session.execute(
                delete(VOManager).where(VOManager.vo_id == row.id, VOManager.principal == principal)
            )
            if done.rowcount == 0:
                raise NotFound(f"{principal} is not a manager of VO {vo}")
            self._changed(session)
        self._after_change()

    # -- members -------------------------------------------------------------------------
    @staticmethod
    def _member_view(vo: str, m: VOMember) -> dict[str, Any]:
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

    def _check_roles(self, session: Session, vo_id: int, vo: str, roles: list[str]) -> list[str]:
        known = set(session.scalars(select(VORole.name).where(VORole.vo_id == vo_id)))
        unknown = sorted(set(roles) - known)
        if unknown:
            raise Invalid(f"VO {vo} has no role {', '.join(unknown)} (define it first)")
        return sorted(set(roles))

    def _check_group_exists(self, session: Session, vo_id: int, vo: str, group: str) -> None:
        if (
            session.scalar(select(VOGroup.id).where(VOGroup.vo_id == vo_id, VOGroup.path == group))
            is None
        ):
            raise NotFound(f"VO {vo} has no group {group!r}")

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
        try:
            with self.db.session() as session:
                row = self._vo(session, vo)
                self._check_group_exists(session, row.id, vo, group)
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
                    roles=self._check_roles(session, row.id, vo, list(roles)),
                    expires_at=expires_at,
                    requested_at=_now(),
                    comment=comment,
                    decided_by=by if status == "active" else "",
                    decided_at=_now() if status == "active" else None,
                )
                session.add(member)
                self._changed(session)
        except IntegrityError as exc:
            raise Conflict(
                f"{principal} is a member of {vo}{'/' + group if group else ''} already "
                "(or has asked)"
            ) from exc
        self._after_change()
        return self._member_view(vo, member)

    def _member(self, session: Session, vo: str, principal: str, group: str) -> tuple[VO, VOMember]:
        row = self._vo(session, vo)
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
        with self.db.session() as session:
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
                new = self._check_roles(session, row.id, vo, roles)
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
                self._revoke(session, [principal])
            self._changed(session)
            view = self._member_view(vo, member)
        self._after_change()
        return view

    def remove_member(self, vo: str, principal: str, group: str | None = None) -> int:
        """Remove the membership of one group, or (group None) of the whole VO."""
        with self.db.session() as session:
            row = self._vo(session, vo)
            query = delete(VOMember).where(
                VOMember.vo_id == row.id, VOMember.principal == principal
            )
            if group is not None:
                query = query.where(VOMember.group_path == check_group(group))
            done = session.execute(query).rowcount
            if not done:
                raise NotFound(f"{principal} is not a member of VO {vo}")
            self._revoke(session, [principal])
            self._changed(session)
        self._after_change()
        return done

    def list_members(self, vo: str, status: str | None = None) -> list[dict[str, Any]]:
        with self.db.session() as session:
            row = self._vo(session, vo)
            query = select(VOMember).where(VOMember.vo_id == row.id)
            if status in STATUSES:
                query = query.where(VOMember.status == status)
            views = [
                self._member_view(vo, m)
                for m in session.scalars(query.order_by(VOMember.principal, VOMember.group_path))
            ]
        return [v for v in views if status is None or v["status"] == status]

    def member(self, vo: str, principal: str) -> list[dict[str, Any]]:
        views = [m for m in self.list_members(vo) if m["principal"] == principal]
        if not views:
            raise NotFound(f"{principal} is not a member of VO {vo}")
        return views

    # -- registered resources ------------------------------------------------------------
    def register_resource(self, vo: str, kind: str, resource_id: str, owner: str) -> dict[str, Any]:
        check_name(kind, "resource kind")
        if not resource_id or len(resource_id) > 255:
            raise Invalid("a resource id is 1 to 255 characters")
        check_principal(owner)
        try:
            with self.db.session() as session:
                row = self._vo(session, vo)
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
                session.add(
                    VOResource(vo_id=row.id, kind=kind, resource_id=resource_id, owner=owner)
                )
                self._changed(session)
        except IntegrityError as exc:
            raise Conflict(f"{kind} {resource_id} is registered into VO {vo} already") from exc
        self._after_change()
        return {"vo": vo, "kind": kind, "id": resource_id, "owner": owner}

    def resource_owner(self, kind: str, resource_id: str) -> str:
        offer = self.index().offers.get((kind, resource_id))
        return offer.owner if offer else ""

    def unregister_resource(self, vo: str, kind: str, resource_id: str) -> None:
        with self.db.session() as session:
            row = self._vo(session, vo)
            done = session.execute(
                delete(VOResource).where(
                    VOResource.vo_id == row.id,
                    VOResource.kind == kind,
                    VOResource.resource_id == resource_id,
                )
            )
            if not done.rowcount:
                raise NotFound(f"{kind} {resource_id} is not registered into VO {vo}")
            self._changed(session)
        self._after_change()

    def list_resources(self, vo: str) -> list[dict[str, Any]]:
        with self.db.session() as session:
            row = self._vo(session, vo)
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

    # -- policies ------------------------------------------------------------------------
    def put_policy(
        self, level: str, scope: str, document: Any, *, author: str = "", comment: str = ""
    ) -> dict[str, Any]:
        """Store a new version (never changes an old one); returns it."""
        if level not in LEVELS:
            raise Invalid(f"policy level {level!r}: use one of {', '.join(LEVELS)}")
        if level == "vo":
            check_name(scope, "VO name")
        else:
            check_principal(scope)
        document = validate_document(document)
        compile_policy(level, scope, 0, document)
        for _attempt in range(5):
            try:
                with self.db.session() as session:
                    if level == "vo":
                        self._vo(session, scope)
                    current = (
                        session.scalar(
                            select(func.max(PolicyVersion.version)).where(
                                PolicyVersion.level == level, PolicyVersion.scope == scope
                            )
                        )
                        or 0
                    )
                    row = PolicyVersion(
                        level=level,
                        scope=scope,
                        version=current + 1,
                        document=document,
                        author=author,
                        comment=comment,
                        created_at=_now(),
                    )
                    session.add(row)
                    self._changed(session)
                self._after_change()
                return self._policy_view(row)
            except IntegrityError:
                continue  # another writer took that version number
        raise Conflict(f"the {level} policy of {scope} is being edited concurrently; retry")

    @staticmethod
    def _policy_view(row: PolicyVersion) -> dict[str, Any]:
        return {
            "level": row.level,
            "scope": row.scope,
            "version": row.version,
            "document": row.document,
            "author": row.author,
            "comment": row.comment,
            "created_at": row.created_at,
        }

    def get_policy(self, level: str, scope: str, version: int | None = None) -> dict[str, Any]:
        with self.db.session() as session:
            query = select(PolicyVersion).where(
                PolicyVersion.level == level, PolicyVersion.scope == scope
            )
            query = (
                query.where(PolicyVersion.version == version)
                if version
                else query.order_by(PolicyVersion.version.desc())
            )
            row = session.scalars(query.limit(1)).first()
        if row is None:
            raise NotFound(
                f"no {level} policy of {scope}" + (f" at version {version}" if version else "")
            )
        return self._policy_view(row)

    def policy_history(self, level: str, scope: str) -> list[dict[str, Any]]:
        with self.db.session() as session:
            rows = session.scalars(
                select(PolicyVersion)
                .where(PolicyVersion.level == level, PolicyVersion.scope == scope)
                .order_by(PolicyVersion.version)
            ).all()
        if not rows:
            raise NotFound(f"no {level} policy of {scope}")
        return [self._policy_view(r) for r in rows]

    # -- accounts ------------------------------------------------------------------------
    def account_for(self, principal: Principal, vo: str = "", role: str = "") -> LocalAccount:
        """The principal's own account, else a lease from the VO's (role's) pool."""
        own = self.accounts.own_account(principal.name)
        if own is not None:
            return own
        if not vo:
            vos = principal.vos()
            if len(vos) != 1:
                raise Invalid(
                    f"{principal.name} has no account of their own; name the VO to map to "
                    f"(member of: {', '.join(vos) or 'none'})"
                )
            vo = vos[0]
        mine = [m for m in principal.memberships if m.vo == vo]
        if not mine:
            raise Invalid(f"{principal.name} is not an active member of VO {vo}")
        if role and not any(role in m.roles for m in mine):
            raise Invalid(f"{principal.name} does not hold role {role!r} in VO {vo}")
        pool = self.accounts.pool(vo, role)
        shared = [a.username for a in self.accounts.pool(vo)]
        key = f"{vo}:{role}" if role and [a.username for a in pool] != shared else vo
        return self.leases.lease(principal.name, key, pool)

    def release_idle_leases(self) -> int:
        """Housekeeping (e.g. hourly): give back every lease idle for
        ``vo.lease_idle_seconds`` whose holder runs nothing; returns how many. Without it
        an idle lease is given back when its pool runs out."""
        released = 0
        for key in sorted({lease.pool for lease in self.leases.leases()}):
            vo, _, role = key.partition(":")
            released += self.leases.release_idle(self.accounts.pool(vo, role))
        return released

    # -- accounting ----------------------------------------------------------------------
    def record(
        self,
        category: str,
        principal: Principal | str,
        action: str,
        resource: Resource | None = None,
        *,
        vo: str = "",
        outcome: str = "ok",
        reason: str = "",
        quantity: float = 0.0,
        unit: str = "",
    ) -> None:
        """Front ends call this for every execution ("execution") and data access
        ("data"): e.g. record("execution", p, "run", Resource("activity", id, vo="cms"),
        quantity=cpu_seconds, unit="cpu-s")."""
        name = principal if isinstance(principal, str) else principal.name
        resource = resource or Resource("")
        self.audit.record(
            category,
            name,
            action,
            vo=vo or resource.vo,
            resource_kind=resource.kind,
            resource_id=resource.id,
            outcome=outcome,
            reason=reason,
            quantity=quantity,
            unit=unit,
        )

    def audit_records(
        self, *, vo: str | None = None, limit: int = 100, before_id: int | None = None
    ) -> list[Any]:
        """The audit trail, newest first (rows of ``audit_records``)."""
        return self.audit.records(vo=vo, limit=limit, before_id=before_id)

    def usage(
        self, vo: str, since: datetime | None = None, until: datetime | None = None
    ) -> list[Usage]:
        with self.db.session() as session:
            self._vo(session, vo)
        return self.audit.usage(vo, since, until)
