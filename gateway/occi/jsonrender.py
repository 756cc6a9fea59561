"""The OCCI JSON rendering (GFD.226, ``application/occi+json``), both ways.

Every document read is checked against ``schemas/occi-1.2.json`` before its meaning is
taken, so a malformed one is refused with the schema's own words and the path to the
offending member.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable
from typing import Any

import jsonschema

from gateway.occi.entity import CategoryRef, Document, Entity, LinkRef
from gateway.occi.model import Action, Category, Kind, Mixin
from gateway.occi.text import ParseError
from gateway.resources import data_dir


@functools.cache
def schema() -> dict[str, Any]:
    return json.loads((data_dir("schemas") / "occi-1.2.json").read_text(encoding="utf-8"))


@functools.cache
def validator() -> jsonschema.Draft7Validator:
    return jsonschema.Draft7Validator(schema())


def _split(identifier: str) -> CategoryRef:
    scheme, sep, term = identifier.rpartition("#")
    if not sep or not term:
        raise ParseError(f"{identifier[:80]!r} is not a category identifier (scheme#term)")
    return CategoryRef(term=term, scheme=scheme + "#")


def _ref(identifier: str, cls: str) -> CategoryRef:
    ref = _split(identifier)
    return CategoryRef(term=ref.term, scheme=ref.scheme, cls=cls)


def _link_ref(doc: dict[str, Any]) -> LinkRef:
    target = doc["target"]
    return LinkRef(
        target=target["location"],
        rel=target.get("kind", ""),
        self_=doc.get("id", ""),
        category=doc["kind"],
        mixins=tuple(doc.get("mixins", ())),
        attributes={
            **doc.get("attributes", {}),
            **({"occi.core.title": doc["title"]} if "title" in doc else {}),
        },
    )


def parse(body: bytes | str) -> Document:
    """A JSON request body as a :class:`Document`, or :class:`ParseError`."""
    try:
        doc = json.loads(body or b"null")
    except (ValueError, RecursionError) as exc:
        raise ParseError(f"the body is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise ParseError("an OCCI JSON document is an object")
    errors = sorted(validator().iter_errors(doc), key=lambda e: len(list(e.absolute_path)))
    if errors:
        # anyOf hides the reason; report the deepest error of the closest alternative.
        best = jsonschema.exceptions.best_match(errors)
        path = "/".join(str(p) for p in best.absolute_path) or "(document)"
        raise ParseError(f"not a valid OCCI 1.2 JSON document at {path}: {best.message[:200]}")
    document = Document()
    if "action" in doc:
        document.categories.append(_ref(doc["action"], "action"))
        document.attributes.update(doc.get("attributes", {}))
    elif "locations" in doc:
        document.locations.extend(doc["locations"])
    elif "term" in doc:  # a single mixin definition (user mixin on the query interface)
        document.categories.append(_definition(doc))
    elif any(k in doc for k in ("kinds", "mixins", "actions", "resources", "links")) and (
        "kind" not in doc
    ):
        document.categories.extend(_definition(m) for m in doc.get("mixins", ()))
        # entity collections (mixin tagging with whole resources): their locations count
        for item in [*doc.get("resources", []), *doc.get("links", [])]:
            if item.get("id"):
                document.locations.append(item["id"])
    else:  # a resource or a link
        document.categories.append(_ref(doc["kind"], "kind"))
        document.categories.extend(_ref(m, "mixin") for m in doc.get("mixins", ()))
        document.attributes.update(doc.get("attributes", {}))
        for key in ("title", "summary"):
            if key in doc:
                document.attributes[f"occi.core.{key}"] = doc[key]
        if "id" in doc:
            document.attributes["occi.core.id"] = doc["id"]
        if "source" in doc:
            document.attributes["occi.core.source"] = doc["source"]["location"]
            document.attributes["occi.core.target"] = doc["target"]["location"]
            if doc["target"].get("kind"):
                document.attributes["occi.core.target.kind"] = doc["target"]["kind"]
        document.links.extend(_link_ref(link) for link in doc.get("links", ()))
    return document


def _definition(doc: dict[str, Any]) -> CategoryRef:
    return CategoryRef(
        term=doc["term"],
        scheme=doc["scheme"],
        cls="mixin",
        title=doc.get("title", ""),
        rel=tuple(doc.get("depends", ())),
        location=doc.get("location", ""),
        applies=tuple(doc.get("applies", ())),
    )


# -- rendering ----------------------------------------------------------------------------
def _attribute_definitions(category: Category) -> dict[str, Any]:
    return {a.name: a.definition() for a in category.attributes}


def category(cat: Category) -> dict[str, Any]:
    out: dict[str, Any] = {"term": cat.term, "scheme": cat.scheme}
    if cat.title:
        out["title"] = cat.title
    if cat.attributes:
        out["attributes"] = _attribute_definitions(cat)
    if isinstance(cat, Kind):
        if cat.actions:
            out["actions"] = [a.identifier for a in cat.actions]
        if cat.parent:
            out["parent"] = cat.parent.identifier
    if isinstance(cat, Mixin):
        if cat.actions:
            out["actions"] = [a.identifier for a in cat.actions]
        if cat.depends:
            out["depends"] = [d.identifier for d in cat.depends]
        if cat.applies:
            out["applies"] = [k.identifier for k in cat.applies]
    if cat.location and not isinstance(cat, Action):
        out["location"] = cat.location
    return out


def categories(cats: Iterable[Category]) -> dict[str, Any]:
    kinds, mixins, actions = [], [], []
    for cat in cats:
        target = kinds if isinstance(cat, Kind) else mixins if isinstance(cat, Mixin) else actions
        target.append(category(cat))
    return {"kinds": kinds, "mixins": mixins, "actions": actions}


def _attributes(entity: Entity) -> dict[str, Any]:
    return {
        name: value
        for name, value in entity.attributes.items()
        if value is not None
        and value != ""
        and name not in ("occi.core.title", "occi.core.summary")
        and not name.startswith(("occi.core.source", "occi.core.target"))
    }


def entity(item: Entity) -> dict[str, Any]:
    out: dict[str, Any] = {"kind": item.kind.identifier, "id": item.id}
    if item.mixins:
        out["mixins"] = [m.identifier for m in item.mixins]
    out["attributes"] = _attributes(item)
    if item.actions:
        out["actions"] = [a.identifier for a in item.actions]
    if item.attributes.get("occi.core.title"):
        out["title"] = str(item.attributes["occi.core.title"])
    if item.is_link:
        out["source"] = {"location": item.source[0], "kind": item.source[1]}
        out["target"] = {"location": item.target[0]}
        if item.target[1]:
            out["target"]["kind"] = item.target[1]
    else:
        if item.attributes.get("occi.core.summary"):
            out["summary"] = str(item.attributes["occi.core.summary"])
        out["links"] = [entity(link) for link in item.links]
    return out


def collection(entities: Iterable[Entity]) -> dict[str, Any]:
    resources, links = [], []
    for item in entities:
        (links if item.is_link else resources).append(entity(item))
    out: dict[str, Any] = {}
    if resources or not links:
        out["resources"] = resources
    if links:
        out["links"] = links
    return out


def dumps(doc: dict[str, Any]) -> str:
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False)
