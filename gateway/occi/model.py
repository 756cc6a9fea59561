"""OCCI Core (GFD.221, OCCI 1.2): Category, Kind, Mixin, Action, Attribute, and the
registry that finds them by identifier (scheme + term) or by location.

Categories are immutable and shared by every request; entities are plain values built
per request by :mod:`gateway.occi.views`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

CORE = "http://schemas.ogf.org/occi/core#"

# OCCI 1.2 attribute types (JSON rendering words); "enum" values restrict a string.
ATTRIBUTE_TYPES = ("string", "number", "boolean", "object", "array")


class AttributeError_(ValueError):
    """An attribute value a client sent cannot be used; the message names it."""


@dataclass(frozen=True)
class Attribute:
    """An attribute definition of a Category (OCCI Core §5.1)."""

    name: str
    type: str = "string"
    mutable: bool = True
    required: bool = False
    default: Any = None
    description: str = ""
    enum: tuple[str, ...] = ()
    integer: bool = False  # a "number" that must be whole (cores, vlan, size in GiB…)
    minimum: float | None = None

    def coerce(self, value: Any) -> Any:
        """The value as this attribute's type, or AttributeError_ saying what is wrong."""
        if self.type == "number":
            if isinstance(value, bool):
                raise AttributeError_(f"{self.name} must be a number, not a boolean")
            if isinstance(value, str):
                try:
                    value = float(value) if re.search(r"[.eE]", value) else int(value)
                except ValueError:
                    raise AttributeError_(f"{self.name} must be a number (got {value!r})") from None
            if not isinstance(value, int | float) or value != value:  # NaN
                raise AttributeError_(f"{self.name} must be a number (got {value!r})")
            if self.integer:
                if isinstance(value, float) and not value.is_integer():
                    raise AttributeError_(f"{self.name} must be a whole number (got {value})")
                value = int(value)
            if self.minimum is not None and value < self.minimum:
                raise AttributeError_(f"{self.name} must be at least {self.minimum:g}")
            return value
        if self.type == "boolean":
            if isinstance(value, str) and value.lower() in ("true", "false"):
                return value.lower() == "true"
            if not isinstance(value, bool):
                raise AttributeError_(f"{self.name} must be true or false (got {value!r})")
            return value
        if self.type == "string":
            if not isinstance(value, str):
                if isinstance(value, bool) or not isinstance(value, int | float):
                    raise AttributeError_(f"{self.name} must be a string (got {value!r})")
                value = str(value)
            if self.enum and value not in self.enum:
                raise AttributeError_(f"{self.name} must be one of {', '.join(self.enum)}")
            return value
        if self.type == "array" and not isinstance(value, list):
            raise AttributeError_(f"{self.name} must be a list")
        if self.type == "object" and not isinstance(value, dict):
            raise AttributeError_(f"{self.name} must be an object")
        return value

    def definition(self) -> dict[str, Any]:
        """The JSON rendering's attribute_definition."""
        out: dict[str, Any] = {
            "mutable": self.mutable,
            "required": self.required,
            "type": self.type,
        }
        if self.default is not None:
            out["default"] = self.default
        if self.description:
            out["description"] = self.description
        if self.enum:
            out["pattern"] = {"enum": list(self.enum)}
        return out


@dataclass(frozen=True)
class Category:
    """Identified by scheme + term (OCCI Core §5.2)."""

    term: str
    scheme: str
    title: str = ""
    attributes: tuple[Attribute, ...] = ()
    location: str = ""  # relative path, e.g. "/compute/"

    @property
    def identifier(self) -> str:
        return self.scheme + self.term

    @property
    def cls(self) -> str:
        return "category"

    def attribute(self, name: str) -> Attribute | None:
        return next((a for a in self.attributes if a.name == name), None)


@dataclass(frozen=True)
class Action(Category):
    @property
    def cls(self) -> str:
        return "action"


@dataclass(frozen=True)
class Kind(Category):
    """The type of an entity; ``parent`` makes the kind hierarchy (compute → resource)."""

    parent: Kind | None = None
    actions: tuple[Action, ...] = ()

    @property
    def cls(self) -> str:
        return "kind"

    def lineage(self) -> Iterator[Kind]:
        kind: Kind | None = self
        while kind is not None:
            yield kind
            kind = kind.parent

    def is_a(self, other: Kind) -> bool:
        return any(k.identifier == other.identifier for k in self.lineage())

    def all_attributes(self) -> dict[str, Attribute]:
        out: dict[str, Attribute] = {}
        for kind in reversed(list(self.lineage())):
            out.update({a.name: a for a in kind.attributes})
        return out


@dataclass(frozen=True)
class Mixin(Category):
    """Added to entities at run time (templates, contextualisation, user tags)."""

    depends: tuple[Mixin, ...] = ()
    applies: tuple[Kind, ...] = ()
    actions: tuple[Action, ...] = ()
    user_defined: bool = False

    @property
    def cls(self) -> str:
        return "mixin"

    def lineage(self) -> Iterator[Mixin]:
        yield self
        for dep in self.depends:
            yield from dep.lineage()

    def is_a(self, other: Mixin) -> bool:
        return any(m.identifier == other.identifier for m in self.lineage())

    def applies_to(self, kind: Kind) -> bool:
        return not self.applies or any(kind.is_a(k) for k in self.applies)


@dataclass
class Registry:
    """Every category this server knows; user mixins come and go at run time."""

    kinds: dict[str, Kind] = field(default_factory=dict)
    mixins: dict[str, Mixin] = field(default_factory=dict)
    actions: dict[str, Action] = field(default_factory=dict)
    generation: int = 0  # set by its builder; a new registry, a new number (cache keys)

    def add(self, *categories: Category) -> None:
        for category in categories:
            if isinstance(category, Kind):
                self.kinds[category.identifier] = category
                for action in category.actions:
                    self.actions[action.identifier] = action
            elif isinstance(category, Mixin):
                self.mixins[category.identifier] = category
                for action in category.actions:
                    self.actions[action.identifier] = action
            elif isinstance(category, Action):
                self.actions[category.identifier] = category

    def remove_mixin(self, identifier: str) -> None:
        self.mixins.pop(identifier, None)

    def find(self, identifier: str) -> Category | None:
        return (
            self.kinds.get(identifier)
            or self.mixins.get(identifier)
            or self.actions.get(identifier)
        )

    def categories(self) -> Iterable[Category]:
        yield from self.kinds.values()
        yield from self.mixins.values()
        yield from self.actions.values()

    def by_location(self, location: str) -> Category | None:
        for category in (*self.kinds.values(), *self.mixins.values()):
            if category.location == location:
                return category
        return None

    def kind_by_term(self, term: str) -> Kind | None:
        return next((k for k in self.kinds.values() if k.term == term and k.location), None)


def split_identifier(identifier: str) -> tuple[str, str]:
    """(term, scheme) of a category identifier."""
    scheme, _, term = identifier.rpartition("#")
    return term, scheme + "#"


# -- OCCI Core kinds -------------------------------------------------------------------
ENTITY = Kind(
    "entity",
    CORE,
    "Entity",
    attributes=(
        Attribute("occi.core.id", mutable=False, description="unique id of the entity"),
        Attribute("occi.core.title", description="display name"),
    ),
)
RESOURCE = Kind(
    "resource",
    CORE,
    "Resource",
    parent=ENTITY,
    location="/resource/",  # every resource the caller may see (GFD.226 §3.2.1: kinds have one)
    attributes=(Attribute("occi.core.summary", description="a short description"),),
)
LINK = Kind(
    "link",
    CORE,
    "Link",
    parent=ENTITY,
    location="/link/",
    attributes=(
        Attribute("occi.core.source", mutable=False, required=True, description="source URI"),
        Attribute("occi.core.target", required=True, description="target URI"),
    ),
)
