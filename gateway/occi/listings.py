"""Collection listings, cached per caller: the hot path of OCCI clients (rOCCI lists
before every operation).

A listing stays until an entity of its kinds is added or removed (one aggregate query
tells, whichever process changed it) and for at most LISTING_MAX_AGE seconds, so that a
changed VO policy shows soon.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from backends.contracts.model import Principal
from backends.store import Database
from gateway.occi import records
from gateway.occi.authorisation import Authorisation
from gateway.occi.model import Kind

LISTING_MAX_AGE = 5.0  # seconds
MAX_CACHED = 1000  # listings kept before the cache starts again


@dataclass
class Listing:
    """One caller's view of a collection, and its renderings once made."""

    version: tuple[tuple[str, int], ...]
    made: float
    items: list[tuple[str, str]]  # (location, kind identifier)
    bodies: dict[str, bytes] = field(default_factory=dict)  # media type -> unpaged body

    def fresh(self, version: tuple[tuple[str, int], ...]) -> bool:
        return self.version == version and time.monotonic() - self.made < LISTING_MAX_AGE


class Listings:
    """One per gateway process; thread-safe."""

    def __init__(self, *, db: Database, authorisation: Authorisation) -> None:
        self._db = db
        self._authorisation = authorisation
        self._cache: dict[tuple[Any, ...], Listing] = {}
        self._lock = threading.Lock()

    def listing(self, principal: Principal, kinds: Sequence[Kind]) -> Listing:
        """The caller's visible entities of these kinds, from the cache while it holds."""
        identifiers = tuple(k.identifier for k in kinds)
        key = (principal.name, principal.site_admin, principal.memberships, identifiers)
        version = records.version(self._db, identifiers)
        hit = self._cache.get(key)
        if hit is not None and hit.fresh(version):
            return hit
        with self._lock:  # one rebuild at a time: concurrent misses wait for it
            hit = self._cache.get(key)
            if hit is not None and hit.fresh(version):
                return hit
            made = Listing(version, time.monotonic(), self._authorisation.visible(principal, kinds))
            if len(self._cache) > MAX_CACHED:
                self._cache.clear()
            self._cache[key] = made
            return made
