"""After authentication, the one place a principal gets its VO memberships.

Every front end's principal passes through :meth:`MembershipResolver.enrich`: the OpenAPI
routes in the security hook (gateway/auth/security.py), the SOAP and portal front ends
through :meth:`gateway.runtime.Runtime.authenticate`. Memberships come from the VO
backend (active, unexpired, unsuspended; cached there for ``vo.membership_cache_seconds``
and dropped on any change), except for a VO token's principal, whose memberships are
the ones its token carries (already checked against revocation when it was verified).
"""

from __future__ import annotations

import dataclasses

from backends.interfaces import VOBackend
from backends.model import Principal

VO_TOKEN_MECHANISM = "vo-token"  # noqa: S105 - a mechanism name, not a secret


class MembershipResolver:
    def __init__(self, backend: VOBackend) -> None:
        self.backend = backend

    def blocking(self, principal: Principal) -> bool:
        """Whether enrich() would read the store (run it off the event loop then)."""
        if principal.authenticated_by == VO_TOKEN_MECHANISM:
            return False
        cached = getattr(self.backend, "cached_memberships", None)
        return cached is None or cached(principal.name) is None

    def enrich(self, principal: Principal) -> Principal:
        if principal.authenticated_by == VO_TOKEN_MECHANISM:
            return principal
        memberships = self.backend.memberships_of(principal.name)
        if memberships == principal.memberships:
            return principal
        return dataclasses.replace(principal, memberships=memberships)
