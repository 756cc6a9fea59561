"""VOs, memberships and policy in the SQL store (owner-only until the VO issue lands)."""

from __future__ import annotations

from sqlalchemy import text

from backends.interfaces import VOBackend
from backends.model import Decision, HealthReport, PolicyDecision, Principal, Resource


class SQLVOBackend(VOBackend):
    name = "sql"

    def health(self) -> HealthReport:
        try:
            with self.context.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception as exc:
            return HealthReport(False, f"VO store unreachable: {exc}")
        return HealthReport(True, "VO store reachable")

    def decide(self, principal: Principal, action: str, resource: Resource) -> PolicyDecision:
        """Owner-only: site admins may do anything, others only act on what they own."""
        if principal.site_admin:
            return PolicyDecision(Decision.PERMIT, f"{principal.name} is a site admin")
        if resource.owner and resource.owner == principal.name:
            return PolicyDecision(Decision.PERMIT, f"{principal.name} owns {resource.kind}")
        if not resource.id and action in ("create", "list", "read-factory"):
            return PolicyDecision(Decision.PERMIT, f"any authenticated user may {action}")
        return PolicyDecision(
            Decision.DENY,
            f"{principal.name} may not {action} {resource.kind} {resource.id or ''} "
            f"owned by {resource.owner or 'nobody'}".strip(),
        )
