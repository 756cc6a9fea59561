"""What a principal holds now: active memberships and the revocation epoch.

gateway/auth asks for both on every request, so both are cached per process: memberships
for ``vo.membership_cache_seconds`` at most and never past the first expiry, epochs until
the next change. The decision index drops both caches whenever the change counter moves;
the ``cached_*`` answers are given only while the index is fresh, so that a caller on an
event loop knows whether the real answer would touch the database.

Whatever takes something away from a principal calls :func:`revoke` inside its own
transaction: the epoch moves, and VO tokens issued before it are refused here and, through
the revocation list, by the gateways that trust this one.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import bindparam, func, or_, select
from sqlalchemy.orm import Session

from backends.contracts.model import VOMembership
from backends.store.tables.vo import VO, MembershipEpoch, VOMember
from backends.vo.sessions import Sessions

if TYPE_CHECKING:
    from backends.vo.decisions import DecisionIndex

_CACHE_LIMIT = 100_000  # principals per cache; past it the cache starts again

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


def _now() -> datetime:
    return datetime.now(UTC)


def subject_hash(name: str) -> str:
    """How a revocation list names a principal without publishing the name."""
    return hashlib.sha256(name.encode()).hexdigest()


def revoke(session: Session, principals: Iterable[str]) -> None:
    """Move the epoch of each principal (in the caller's transaction)."""
    for who in set(principals):
        row = session.get(MembershipEpoch, who)
        if row is None:
            session.add(MembershipEpoch(principal=who, epoch=1, updated_at=_now()))
        else:
            row.epoch += 1
            row.updated_at = _now()


class Memberships:
    """The memberships and epochs of principals, cached until the index sees a change."""

    def __init__(self, db: Sessions, index: DecisionIndex, ttl: float) -> None:
        self.db = db
        self.index = index
        self.ttl = ttl
        self._members: dict[str, tuple[float, tuple[VOMembership, ...]]] = {}
        self._epochs: dict[str, int] = {}
        index.on_refresh(self.forget)

    def forget(self) -> None:
        self._members.clear()
        self._epochs.clear()

    def memberships_of(self, principal: str) -> tuple[VOMembership, ...]:
        """Active, unexpired, unsuspended memberships (cached per process, briefly)."""
        self.index.current()  # notices changes made by other processes
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
        ttl = self.ttl
        expiries = [exp for *_, exp in rows if exp is not None]
        if expiries:
            ttl = min(ttl, max(0.0, (min(expiries) - wall).total_seconds()))
        if len(self._members) > _CACHE_LIMIT:
            self._members.clear()
        self._members[principal] = (now + ttl, found)
        return found

    def cached_memberships(self, principal: str) -> tuple[VOMembership, ...] | None:
        """The cached answer of memberships_of, or None when it would read the store."""
        if not self.index.fresh():
            return None
        hit = self._members.get(principal)
        return hit[1] if hit is not None and hit[0] > time.monotonic() else None

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
        self.index.current()
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
        if len(self._epochs) > _CACHE_LIMIT:
            self._epochs.clear()
        self._epochs[principal] = epoch
        return epoch

    def cached_epoch(self, principal: str) -> int | None:
        """The cached membership epoch, or None when reading it would touch the store."""
        if not self.index.fresh():
            return None
        return self._epochs.get(principal)

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
