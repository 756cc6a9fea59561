"""What travels between the HTTP layer and the OCCI service: a parsed request body
(:class:`Document`, the same for every rendering) and an entity to render (:class:`Entity`).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from typing import Any

from gateway.occi.model import Action, Kind, Mixin


@dataclass(frozen=True)
class CategoryRef:
    """A category as a client named it; resolved against the registry later."""

    term: str
    scheme: str
    cls: str = ""  # kind | mixin | action ("" when the rendering does not say)
    title: str = ""
    rel: tuple[str, ...] = ()  # parent kind, or the mixins a user mixin depends on
    location: str = ""
    applies: tuple[str, ...] = ()

    @property
    def identifier(self) -> str:
        return self.scheme + self.term


@dataclass(frozen=True)
class LinkRef:
    """A link a client sent inline with a resource (text ``Link:`` or JSON ``links``)."""

    target: str
    rel: str = ""  # the target's kind
    self_: str = ""  # the link's own location, when the client chose it
    category: str = ""  # the link's kind identifier
    mixins: tuple[str, ...] = ()
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass
class Document:
    """A request body in any rendering, reduced to what OCCI means by it."""

    categories: list[CategoryRef] = field(default_factory=list)
    attributes: dict[str, Any] = field(default_factory=dict)
    links: list[LinkRef] = field(default_factory=list)
    locations: list[str] = field(default_factory=list)

    def of_class(self, cls: str) -> list[CategoryRef]:
        return [c for c in self.categories if c.cls == cls]

    @property
    def empty(self) -> bool:
        return not (self.categories or self.attributes or self.links or self.locations)


@dataclass
class Entity:
    """One resource or link as the server shows it."""

    id: str
    kind: Kind
    mixins: list[Mixin] = field(default_factory=list)
    attributes: dict[str, Any] = field(default_factory=dict)
    actions: list[Action] = field(default_factory=list)  # applicable now
    links: list[Entity] = field(default_factory=list)  # a resource's outgoing links
    source: tuple[str, str] = ("", "")  # a link's (location, kind identifier)
    target: tuple[str, str] = ("", "")
    base: str = ""  # the server's public URL when locations are rendered absolute

    @property
    def location(self) -> str:
        return f"{self.base}{self.kind.location}{self.id}"

    @property
    def is_link(self) -> bool:
        return bool(self.source[0])


def relative_location(location: str) -> str:
    """Locations are relative; an absolute URL of this server is taken by its path."""
    if "://" in location:
        from urllib.parse import urlsplit

        location = urlsplit(location).path or "/"
    return location


def absolute(location: str, base: str) -> str:
    """A relative location under ``base`` (``server.public_url``); as it is without one."""
    return base + location if base and location.startswith("/") else location


def with_base(entity: Entity, base: str) -> Entity:
    """The entity with every location absolute under ``base`` (its own, its links', a
    link's ends): 1.1-era clients and text/uri-list readers expect absolute URLs."""
    if not base:
        return entity
    attributes = dict(entity.attributes)
    for name in ("occi.core.source", "occi.core.target"):
        if isinstance(attributes.get(name), str):
            attributes[name] = absolute(attributes[name], base)
    return replace(
        entity,
        base=base,
        attributes=attributes,
        links=[with_base(link, base) for link in entity.links],
        source=(absolute(entity.source[0], base), entity.source[1]),
        target=(absolute(entity.target[0], base), entity.target[1]),
    )


def new_id() -> str:
    """A new entity id: a UUID, as the VMBackend contract expects."""
    return str(uuid.uuid4())
