"""After authentication, the one place a principal gets its VO memberships.

Every front end's principal passes through :meth:`MembershipResolver.enrich`: the OpenAPI
routes in the security hook (gateway/auth/security.py), the SOAP and portal front ends
through :meth:`gateway.runtime.Runtime.authenticate`. Memberships come from the VO
backend (active, unexpired, unsuspended; cached there for ``vo.membership_cache_seconds``
and dropped on any change), added to those the authenticator found (e.g. Negotiate's
LDAP groups) — except for a VO token's principal, whose memberships are exactly the ones
its token carries (already checked against revocation when it was verified).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

from backends.contracts.interfaces import VOBackend
from backends.contracts.model import Principal, VOMembership

VO_TOKEN_MECHANISM = "vo-token"  # noqa: S105 - a mechanism name, not a secret

# Another place memberships come from (e.g. LDAP groups mapped to VOs, wired at merge):
# principal -> memberships. Called per request: it must cache for itself.
MembershipSource = Callable[[Principal], Sequence[VOMembership]]


class MembershipResolver:
    def __init__(self, backend: VOBackend, sources: Sequence[MembershipSource] = ()) -> None:
        self.backend = backend
        self.sources = list(sources)

    def add_source(self, source: MembershipSource) -> None:
        """Merge memberships from another source (the LDAP group mapping, at merge)."""
        self.sources.append(source)

    def blocking(self, principal: Principal) -> bool:
        """Whether enrich() would read the store (run it off the event loop then)."""
        if principal.authenticated_by == VO_TOKEN_MECHANISM:
            return False
        if self.sources:
            return True
        cached = getattr(self.backend, "cached_memberships", None)
        return cached is None or cached(principal.name) is None

    def enrich(self, principal: Principal) -> Principal:
        if principal.authenticated_by == VO_TOKEN_MECHANISM:
            return principal
        # What the authenticator established (e.g. Negotiate from LDAP groups) stays;
        # the VO store's and any other source's memberships are added to it.
        memberships = tuple(principal.memberships)
        for found in (
            self.backend.memberships_of(principal.name),
            *(s(principal) for s in self.sources),
        ):
            memberships += tuple(m for m in found if m not in memberships)
        if memberships == principal.memberships:
            return principal
        return dataclasses.replace(principal, memberships=memberships)
