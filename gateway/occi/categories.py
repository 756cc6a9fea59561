"""The categories this server knows now, as the query interface lists them: OCCI Core and
Infrastructure, the cluster extension, the site's templates and users' own mixins.

Rebuilt when the templates may have changed (every ``occi.template_refresh`` seconds, or
at once after :meth:`Categories.invalidate`) or the user mixins (every 2 s: another
process may have defined one). Each build is a new immutable Registry with a new
generation, which is what caches of renderings key on.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Sequence

from backends.contracts.interfaces import StorageBackend, VMBackend
from backends.store import Database
from gateway.config import Settings
from gateway.occi import infrastructure as infra
from gateway.occi import records
from gateway.occi.entity import CategoryRef
from gateway.occi.errors import bad_request
from gateway.occi.model import Category, Kind, Mixin, Registry
from gateway.occi.templates import Templates, configured_sizes, offered_images

USER_MIXIN_REFRESH = 2.0  # seconds
_generations = itertools.count(1)


class Categories:
    """One per gateway process; thread-safe."""

    def __init__(
        self,
        *,
        settings: Settings,
        db: Database,
        vm: VMBackend,
        storage: StorageBackend | None,
    ) -> None:
        self._settings = settings
        self._db = db
        self._vm = vm
        self._storage = storage
        self._lock = threading.Lock()
        self._registry: Registry | None = None
        self._templates_at = -1e9
        self._users_at = -1e9
        self._os_templates: list[Mixin] = []
        self._user_mixins: dict[str, list[Mixin]] = {}  # by owner
        self._owned: dict[str, tuple[int, Registry]] = {}  # owner -> (base generation, …)
        self._kinds_under: dict[tuple[int, str], list[Kind]] = {}
        self.templates = Templates(sizes=configured_sizes(settings))

    def registry(self, owner: str = "") -> Registry:
        """The site's categories (static + os_tpl from the backend, cached); with ``owner``,
        that user's mixins beside them (cached 2 s). User mixins are their owner's alone:
        nobody else sees them on the query interface or can use them."""
        now = time.monotonic()
        refresh = self._settings.occi.template_refresh
        with self._lock:
            stale_templates = now - self._templates_at >= refresh
            stale_users = now - self._users_at >= USER_MIXIN_REFRESH
            base = self._registry
        if base is None or stale_templates or stale_users:
            if stale_templates:
                self._load_templates()
            if stale_users:
                self._load_user_mixins()
            base = self._build(())
            with self._lock:
                self._registry = base
                self._owned.clear()
        if not owner:
            return base
        with self._lock:
            found = self._owned.get(owner)
            if found is not None and found[0] == base.generation:
                return found[1]
            mixins = self._user_mixins.get(owner, [])
        registry = self._build(mixins)
        with self._lock:
            if len(self._owned) > 1024:
                self._owned.clear()
            self._owned[owner] = (base.generation, registry)
        return registry

    def _build(self, user_mixins: Sequence[Mixin]) -> Registry:
        with self._lock:
            sizes = {s.name: (s.cores, s.memory_mib / 1024) for s in self.templates.sizes.values()}
            os_templates = list(self._os_templates)
        registry = infra.build_registry((), sizes)
        registry.add(*os_templates, *user_mixins)
        registry.generation = next(_generations)
        return registry

    def invalidate(self) -> None:
        """The next :meth:`registry` reads the templates and user mixins again."""
        with self._lock:
            self._templates_at = self._users_at = -1e9

    def _load_templates(self) -> None:
        images = offered_images(self._vm, self._storage, self._settings.storage.image_volume)
        with self._lock:
            self._templates_at = time.monotonic()
            if images is None:
                return
            mixins = [infra.os_template(t.id, t.title) for t in images]
            self._os_templates = mixins
            self.templates = self.templates.with_images(mixins, images)

    def _load_user_mixins(self) -> None:
        base = infra.build_registry((), {})
        mixins: dict[str, list[Mixin]] = {}
        for row in records.user_mixins(self._db):
            depends = tuple(m for m in (base.mixins.get(d) for d in row.depends) if m)
            applies = tuple(k for k in (base.kinds.get(a) for a in row.applies) if k)
            mixins.setdefault(row.owner, []).append(
                Mixin(
                    row.term,
                    row.scheme,
                    row.title,
                    location=row.location,
                    depends=depends,
                    applies=applies,
                    user_defined=True,
                )
            )
        with self._lock:
            self._user_mixins = mixins
            self._users_at = time.monotonic()

    # -- questions on the current registry ------------------------------------------------
    def discover(self, owner: str, wanted: Sequence[CategoryRef] = ()) -> list[Category]:
        """The query interface: every category ``owner`` sees, or those asked for."""
        categories = list(self.registry(owner).categories())
        if wanted:
            ids = {w.identifier for w in wanted}
            categories = [c for c in categories if c.identifier in ids]
        return categories

    def kinds_under(self, kind: Kind) -> list[Kind]:
        """The kinds whose entities a kind's collection lists (itself and its children)."""
        registry = self.registry()
        key = (registry.generation, kind.identifier)
        found = self._kinds_under.get(key)
        if found is None:
            found = [k for k in registry.kinds.values() if k.location and k.is_a(kind)]
            if len(self._kinds_under) > 256:
                self._kinds_under.clear()
            self._kinds_under[key] = found
        return found

    def split_location(self, location: str) -> tuple[Kind, str]:
        """(kind, id) of an entity's relative location, ``/compute/<id>``."""
        head, _, entity_id = location.rstrip("/").rpartition("/")
        kind = self.registry().by_location(head + "/")
        if not isinstance(kind, Kind) or not entity_id:
            raise bad_request(f"{location!r} is not the location of an entity")
        return kind, entity_id
