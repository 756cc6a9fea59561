"""User mixins (defined on the query interface) and mixin collections: tagging entities,
replacing a mixin's members, untagging."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from backends.contracts.model import Principal
from backends.store import Database
from backends.store.tables.occi import OCCIEntity, OCCIUserMixin
from gateway.occi import infrastructure as infra
from gateway.occi import records
from gateway.occi.authorisation import Authorisation
from gateway.occi.categories import Categories
from gateway.occi.entity import CategoryRef, relative_location
from gateway.occi.errors import OCCIError, bad_request, not_found
from gateway.occi.model import RESOURCE, Mixin


@dataclass(frozen=True, kw_only=True)
class Tagging:
    """User mixins and tagging."""

    db: Database
    categories: Categories
    authorisation: Authorisation

    def add_user_mixins(self, principal: Principal, refs: Sequence[CategoryRef]) -> None:
        if not refs:
            raise bad_request(
                "name the mixin to define: Category: <term>; scheme=…; class=mixin; location=…"
            )
        registry = self.categories.registry(principal.name)
        for ref in refs:
            if ref.cls and ref.cls != "mixin":
                raise bad_request(
                    f"only mixins can be defined by users ({ref.identifier} is a {ref.cls})"
                )
            if registry.find(ref.identifier):
                raise OCCIError(409, f"the category {ref.identifier} already exists")
            location = ref.location
            if not location:
                raise bad_request(f'mixin {ref.identifier}: location="/mixins/<name>/" is missing')
            location = relative_location(location)
            segments = location.strip("/").split("/")
            if not re.fullmatch(r"/mixins/[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*/", location) or any(
                s in (".", "..") for s in segments
            ):  # "/mixins/../compute/" would name another collection once normalised
                raise bad_request(
                    f"mixin {ref.identifier}: its location must look like /mixins/<name>/, "
                    f"without . or .. segments (got {location!r})"
                )
            if registry.by_location(location):
                raise OCCIError(409, f"the location {location} is taken")
            depends = [d for d in ref.rel if d]
            for dep in depends:
                if dep not in registry.mixins:
                    raise bad_request(f"mixin {ref.identifier} depends on unknown mixin {dep}")
            for applied in ref.applies:
                if applied not in registry.kinds:
                    raise bad_request(f"mixin {ref.identifier} applies to unknown kind {applied}")
            try:
                records.add_user_mixin(
                    self.db,
                    OCCIUserMixin(
                        scheme=ref.scheme,
                        term=ref.term,
                        title=ref.title,
                        location=location,
                        depends=depends,
                        applies=list(ref.applies),
                        owner=principal.name,
                    ),
                )
            except Exception as exc:  # a concurrent definition of the same location
                raise OCCIError(409, f"mixin {ref.identifier} could not be defined: {exc}") from exc
        self.categories.invalidate()

    def remove_user_mixins(self, principal: Principal, refs: Sequence[CategoryRef]) -> None:
        if not refs:
            raise bad_request("name the mixin to remove with a Category")
        registry = self.categories.registry(principal.name)
        for ref in refs:
            mixin = registry.mixins.get(ref.identifier)
            if mixin is None:
                raise not_found(f"mixin {ref.identifier}")
            if not mixin.user_defined:
                raise OCCIError(
                    405,
                    f"{ref.identifier} is defined by the server; only user mixins can be removed",
                    Allow="GET",
                )
            self.authorisation.require(
                principal, "delete", "mixin", mixin.location, principal.name, ""
            )
            for record in self.tagged(principal, mixin):
                self._untag(record, mixin)
            records.remove_user_mixin(self.db, principal.name, mixin.location)
        self.categories.invalidate()

    def tagged(self, principal: Principal, mixin: Mixin) -> list[OCCIEntity]:
        return [
            r
            for r in records.with_mixin(self.db, mixin.identifier)
            if self.authorisation.may_read(principal, r)
        ]

    def tag(
        self, principal: Principal, mixin: Mixin, locations: Sequence[str], *, replace: bool
    ) -> None:
        if self.categories.templates.is_template(mixin.identifier) or mixin in (
            infra.OS_TPL,
            infra.RESOURCE_TPL,
        ):
            raise OCCIError(
                405,
                f"{mixin.identifier} is a template; templates are chosen at creation",
                Allow="GET",
            )
        registry = self.categories.registry()
        targets = []
        for location in locations:
            record = self.authorisation.record_at(principal, location)
            kind = registry.kinds.get(record.kind, RESOURCE)
            if not mixin.applies_to(kind):
                raise bad_request(
                    f"mixin {mixin.identifier} does not apply to {kind.term} ({location})"
                )
            self.authorisation.require_on(principal, "update", kind, record)
            targets.append(record)
        if replace:
            keep = {t.id for t in targets}
            for record in self.tagged(principal, mixin):
                if record.id not in keep:
                    kind = registry.kinds.get(record.kind, RESOURCE)
                    self.authorisation.require_on(principal, "update", kind, record)
                    self._untag(record, mixin)
        for record in targets:
            fresh = records.get(self.db, record.id)
            if fresh is not None and mixin.identifier not in fresh.mixins:
                records.save(self.db, records.copy(fresh, mixins=[*fresh.mixins, mixin.identifier]))

    def untag(self, principal: Principal, mixin: Mixin, locations: Sequence[str]) -> None:
        registry = self.categories.registry()
        chosen = (
            [self.authorisation.record_at(principal, loc) for loc in locations]
            if locations
            else self.tagged(principal, mixin)
        )
        for record in chosen:
            kind = registry.kinds.get(record.kind, RESOURCE)
            self.authorisation.require_on(principal, "update", kind, record)
            if self.categories.templates.is_template(mixin.identifier):
                raise OCCIError(
                    409, f"{mixin.identifier} is a template of {record.id}; it cannot be removed"
                )
            self._untag(record, mixin)

    def _untag(self, record: OCCIEntity, mixin: Mixin) -> None:
        remaining = [m for m in record.mixins if m != mixin.identifier]
        records.save(self.db, records.copy(record, mixins=remaining))
