"""What a request asks for, checked against the registry before anything is written:
the kind it names, the mixins (known, applicable), the attributes (defined by the kind
or a mixin, of the right type, mutable where changed, present where required).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from gateway.occi.entity import Document, relative_location
from gateway.occi.errors import bad_request
from gateway.occi.model import Attribute, AttributeError_, Kind, Mixin, Registry

_ID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
# Attributes the server owns: sent back by some clients, never taken from them.
_SERVER_OWNED = re.compile(r"\.state(\.message)?$")
_IGNORED = ("occi.core.id", "occi.core.target.kind")


def entity_id(asked: str) -> str:
    """A client-chosen id: a UUID, kept as the hypervisor keeps it (RFC 4122 lower case)."""
    if not _ID.match(asked):
        raise bad_request(f"entity ids are UUIDs (got {asked[:80]!r})")
    return asked.lower()


def definitions(kind: Kind, mixins: Sequence[Mixin]) -> dict[str, Attribute]:
    """Every attribute the kind and the mixins (with what they depend on) define."""
    found = kind.all_attributes()
    for mixin in mixins:
        for parent in mixin.lineage():
            found.update({a.name: a for a in parent.attributes})
    return found


def resolve(registry: Registry, kind: Kind, doc: Document) -> tuple[list[Mixin], dict[str, Any]]:
    """The mixins and the checked attribute values a client asked for."""
    for ref in doc.of_class("kind") + [
        c for c in doc.categories if not c.cls and c.identifier in registry.kinds
    ]:
        if ref.identifier != kind.identifier:
            raise bad_request(f"this collection holds {kind.identifier}, not {ref.identifier}")
    mixins: list[Mixin] = []
    for ref in doc.categories:
        if ref.cls == "kind" or ref.identifier in registry.kinds:
            continue
        if ref.cls == "action" or ref.identifier in registry.actions:
            raise bad_request(f"{ref.identifier} is an action; invoke it with ?action={ref.term}")
        mixin = registry.mixins.get(ref.identifier)
        if mixin is None:
            raise bad_request(f"unknown mixin {ref.identifier} (see GET /-/)")
        if not mixin.applies_to(kind):
            raise bad_request(f"mixin {mixin.identifier} does not apply to {kind.term}")
        if mixin not in mixins:
            mixins.append(mixin)
    defined = definitions(kind, mixins)
    values: dict[str, Any] = {}
    for name, value in doc.attributes.items():
        if _SERVER_OWNED.search(name) or name in _IGNORED:
            continue
        definition = defined.get(name)
        if definition is None:
            raise bad_request(
                f"attribute {name} is not defined by {kind.term} or its mixins "
                f"({', '.join(sorted(defined)) or 'none'})"
            )
        values[name] = coerce(definition, value)
    return mixins, values


def coerce(definition: Attribute, value: Any) -> Any:
    """The value as the attribute's type; 400 with the reason otherwise."""
    try:
        return definition.coerce(value)
    except AttributeError_ as exc:
        raise bad_request(str(exc)) from None


def require(kind: Kind, mixins: Sequence[Mixin], values: dict[str, Any]) -> None:
    """400 naming every required attribute that is missing and has no default."""
    needed: list[Attribute] = [a for a in kind.all_attributes().values() if a.required]
    for mixin in mixins:
        needed += [a for a in mixin.attributes if a.required]
    missing = [
        a.name
        for a in needed
        if a.name not in values and a.default is None and not a.name.startswith("occi.core.")
    ]
    if missing:
        raise bad_request(f"{kind.term} needs the attribute(s) {', '.join(missing)}")


def restated(
    kind: Kind, mixins: Sequence[Mixin], values: dict[str, Any], current: dict[str, Any]
) -> dict[str, Any]:
    """``values`` without the immutable attributes (a link's ends among them) that repeat
    their current value: GFD.221 §5.2 forbids changing them, not restating them, and a PUT
    of the server's own rendering restates them all (GFD.223 §10.2.2)."""
    defined = definitions(kind, mixins)

    def same(name: str, value: Any) -> bool:
        if name not in current:
            return False
        if name in ("occi.core.source", "occi.core.target"):
            return relative_location(str(value)) == relative_location(str(current[name]))
        try:
            return defined[name].coerce(current[name]) == value
        except AttributeError_:
            return False

    return {
        name: value
        for name, value in values.items()
        if not (
            name in defined
            and (not defined[name].mutable or name in ("occi.core.source", "occi.core.target"))
            and same(name, value)
        )
    }


def mutable(kind: Kind, mixins: Sequence[Mixin], values: dict[str, Any]) -> None:
    """400 for a change to an attribute that cannot change (a link's ends are refused
    later, with their own reason)."""
    defined = definitions(kind, mixins)
    for name in values:
        definition = defined.get(name)
        if (
            definition is not None
            and not definition.mutable
            and name not in ("occi.core.source", "occi.core.target")
        ):
            raise bad_request(f"attribute {name} cannot be changed")
