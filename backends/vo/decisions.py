"""The decision index: decide() answers from memory, never from the database.

Policies (the newest version of each), VO managers and resource registrations are
compiled into one :class:`~backends.vo.policy.PolicyIndex`. Each process reads the change
counter (``vo_state.version``) at most every ``vo.refresh_interval`` seconds and rebuilds
the index when it moved; after a change it made itself it rebuilds at the next question.
Every rebuild (and every own change) also drops the caches that listen to it (the
memberships). Each decision goes to the audit trail through the writer's queue.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from sqlalchemy.orm import Session

from backends.contracts.model import PolicyDecision, Principal, Resource
from backends.vo import organisations, policies, resources
from backends.vo.audit import AuditWriter
from backends.vo.policy import PolicyIndex, combine, compile_policy
from backends.vo.sessions import Sessions, version


class DecisionIndex:
    """The compiled policies this process decides with, and when to rebuild them."""

    def __init__(
        self, db: Sessions, audit: AuditWriter, *, refresh_interval: float, open_factory: bool
    ) -> None:
        self.db = db
        self.audit = audit
        self.refresh_interval = refresh_interval
        self.open_factory = open_factory
        self._index = PolicyIndex()
        self._checked = float("-inf")
        self._lock = threading.Lock()
        self._listeners: list[Callable[[], None]] = []
        db.on_change(self.expire)

    def on_refresh(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` whenever the index changes or is expired by a local change."""
        self._listeners.append(listener)

    def expire(self) -> None:
        """This process changed something: read the counter at the next question."""
        self._checked = float("-inf")
        for listener in self._listeners:
            listener()

    def fresh(self) -> bool:
        """Whether the counter was read within ``refresh_interval`` (current() is free)."""
        return time.monotonic() - self._checked < self.refresh_interval

    def current(self) -> PolicyIndex:
        now = time.monotonic()
        if now - self._checked < self.refresh_interval:
            return self._index
        with self._lock:
            if now - self._checked < self.refresh_interval:
                return self._index
            with self.db.session() as session:
                moved = version(session) or 0
                if moved != self._index.version:
                    self._index = self._build(session, moved)
                    for listener in self._listeners:
                        listener()
            self._checked = now
        return self._index

    @staticmethod
    def _build(session: Session, at: int) -> PolicyIndex:
        index = PolicyIndex(version=at)
        for row in policies.newest(session):
            target = getattr(index, row.level)
            target[row.scope] = compile_policy(row.level, row.scope, row.version, row.document)
        index.offers = resources.offers(session)
        index.managers = organisations.managers_by_vo(session)
        return index

    # -- what the index answers ----------------------------------------------------------
    def decide(self, principal: Principal, action: str, resource: Resource) -> PolicyDecision:
        """May ``principal`` do ``action`` on ``resource``? Default deny, always a reason;
        every decision is recorded in the audit trail."""
        decision = combine(
            self.current(), principal, action, resource, open_factory=self.open_factory
        )
        self.audit.write(
            "decision",
            principal.name,
            action,
            decision.vo or resource.vo or (resource.id if resource.kind == "vo" else ""),
            resource.kind,
            resource.id,
            decision.decision.value,
            decision.reason,
        )
        return decision

    def is_manager(self, principal: Principal, vo: str) -> bool:
        return principal.site_admin or principal.name in self.current().managers.get(vo, ())

    def resource_owner(self, kind: str, resource_id: str) -> str:
        offer = self.current().offers.get((kind, resource_id))
        return offer.owner if offer else ""
