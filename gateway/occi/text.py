"""The OCCI text renderings (GFD.229, OCCI 1.2; GFD.185 for 1.1 clients): ``text/plain``
(the fields as body lines) and ``text/occi`` (the same fields as HTTP headers).

Parsing accepts what real clients send — any header-name case, spaces around ``;`` and
``=``, several values in one field separated by commas, quoted or bare values — and
refuses everything else with :class:`ParseError`, whose message says what and where.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from gateway.occi.entity import CategoryRef, Document, Entity, LinkRef
from gateway.occi.model import Action, Category, Kind, Mixin

FIELDS = ("category", "x-occi-attribute", "link", "x-occi-location")
MAX_FIELDS = 2000  # values in one request; more is refused, not parsed

_TERM = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_ATTR_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*(\.[A-Za-z_][A-Za-z0-9_-]*)*$")
_NUMBER = re.compile(r"^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$")
_PARAM_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9._-]*$")
_CLASSES = ("kind", "mixin", "action")


class ParseError(ValueError):
    """A request's OCCI text could not be read; the message is for the client (400)."""


# -- lexing -------------------------------------------------------------------------------
def split_outside_quotes(value: str, separator: str) -> list[str]:
    """Split at ``separator`` except inside "quoted strings" (with backslash escapes)."""
    parts, current, quoted, escaped = [], [], False, False
    for char in value:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\" and quoted:
            current.append(char)
            escaped = True
        elif char == '"':
            current.append(char)
            quoted = not quoted
        elif char == separator and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    if quoted:
        raise ParseError(f"unterminated quoted string in {value[:80]!r}")
    parts.append("".join(current))
    return parts


_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "/": "/"}


def unquote(value: str) -> str:
    """The text of a quoted string, escapes resolved."""
    inner = value[1:-1]
    out, i = [], 0
    while i < len(inner):
        char = inner[i]
        if char != "\\":
            out.append(char)
            i += 1
            continue
        nxt = inner[i + 1 : i + 2]
        if nxt in _ESCAPES:
            out.append(_ESCAPES[nxt])
            i += 2
        elif nxt == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", inner[i + 2 : i + 6] or ""):
            out.append(chr(int(inner[i + 2 : i + 6], 16)))
            i += 6
        else:  # an unknown escape keeps the character (rOCCI escapes freely)
            out.append(nxt)
            i += 2
    return "".join(out)


def quote(value: str, *, ascii_only: bool = False) -> str:
    out = []
    for char in value:
        if char in '"\\':
            out.append("\\" + char)
        elif char == "\n":
            out.append("\\n")
        elif char == "\r":
            out.append("\\r")
        elif char == "\t":
            out.append("\\t")
        elif ord(char) < 0x20 or ord(char) == 0x7F or (ascii_only and ord(char) > 0x7E):
            out.append(f"\\u{ord(char):04x}" if ord(char) <= 0xFFFF else "?")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def _is_quoted(value: str) -> bool:
    return len(value) >= 2 and value[0] == '"' and value[-1] == '"'


def _params(parts: Iterable[str], where: str) -> dict[str, str]:
    """``key="value"`` or ``key=value`` pairs; keys lower-cased."""
    out: dict[str, str] = {}
    for raw in parts:
        part = raw.strip()
        if not part:
            continue  # a trailing ';' (rOCCI sends one)
        key, sep, value = part.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not _PARAM_NAME.match(key):
            raise ParseError(f"{where}: expected name=value, got {part[:80]!r}")
        out[key.lower()] = unquote(value) if _is_quoted(value) else value
    return out


# -- field parsers ------------------------------------------------------------------------
def parse_category(value: str) -> CategoryRef:
    parts = split_outside_quotes(value, ";")
    term = parts[0].strip()
    if not _TERM.match(term):
        raise ParseError(f"Category: {term[:80]!r} is not a valid term")
    params = _params(parts[1:], f"Category {term}")
    scheme = params.get("scheme", "")
    if not scheme:
        raise ParseError(f'Category {term}: scheme="…" is missing')
    cls = params.get("class", "").lower()
    if cls and cls not in _CLASSES:
        raise ParseError(f"Category {term}: class must be kind, mixin or action (got {cls!r})")
    return CategoryRef(
        term=term,
        scheme=scheme,
        cls=cls,
        title=params.get("title", ""),
        rel=tuple(params.get("rel", "").split()),
        location=params.get("location", ""),
    )


def parse_value(raw: str, where: str) -> Any:
    """A quoted string, a number, true/false; bare words are taken as strings."""
    value = raw.strip()
    if not value:
        raise ParseError(f"{where}: the value is empty")
    if _is_quoted(value):
        return unquote(value)
    if value[0] == '"':
        raise ParseError(f"{where}: unterminated quoted value")
    if _NUMBER.match(value):
        return float(value) if re.search(r"[.eE]", value) else int(value)
    if value in ("true", "false"):
        return value == "true"
    if any(c in value for c in '"\\;') or any(ord(c) < 0x20 for c in value):
        raise ParseError(f"{where}: {value[:80]!r} needs quotes")
    return value


def parse_attribute(value: str) -> tuple[str, Any]:
    name, sep, raw = value.partition("=")
    name = name.strip()
    if not sep:
        raise ParseError(f"X-OCCI-Attribute: expected name=value, got {value[:80]!r}")
    if not _ATTR_NAME.match(name):
        raise ParseError(f"X-OCCI-Attribute: {name[:80]!r} is not a valid attribute name")
    return name, parse_value(raw, f"X-OCCI-Attribute {name}")


def parse_link(value: str) -> LinkRef:
    parts = split_outside_quotes(value, ";")
    target = parts[0].strip()
    if not (target.startswith("<") and target.endswith(">") and len(target) > 2):
        raise ParseError(f"Link: the target must be written <uri> (got {target[:80]!r})")
    attributes: dict[str, Any] = {}
    params: dict[str, str] = {}
    for raw in parts[1:]:
        part = raw.strip()
        if not part:
            continue
        key, sep, val = part.partition("=")
        key = key.strip()
        if not sep:
            raise ParseError(f"Link {target}: expected name=value, got {part[:80]!r}")
        if key.lower() in ("rel", "self", "category", "title"):
            val = val.strip()
            params[key.lower()] = unquote(val) if _is_quoted(val) else val
        else:
            name, parsed = parse_attribute(part)
            attributes[name] = parsed
    categories = params.get("category", "").split()
    return LinkRef(
        target=target[1:-1].strip(),
        rel=params.get("rel", ""),
        self_=params.get("self", ""),
        category=categories[0] if categories else "",
        mixins=tuple(categories[1:]),
        attributes=attributes,
    )


def parse_location(value: str) -> str:
    location = value.strip()
    if not location or any(c.isspace() for c in location) or not location.isprintable():
        raise ParseError(f"X-OCCI-Location: {location[:80]!r} is not a URI")
    return location


def parse_fields(fields: Iterable[tuple[str, str]]) -> Document:
    """Fields (header name, value) of either rendering into a :class:`Document`."""
    document = Document()
    count = 0
    for name, value in fields:
        key = name.strip().lower()
        if key not in FIELDS:
            continue
        values = [v for v in split_outside_quotes(value, ",") if v.strip()]
        count += len(values)
        if count > MAX_FIELDS:
            raise ParseError(f"more than {MAX_FIELDS} OCCI values in one request")
        for item in values:
            if key == "category":
                document.categories.append(parse_category(item))
            elif key == "x-occi-attribute":
                attr, parsed = parse_attribute(item)
                document.attributes[attr] = parsed
            elif key == "link":
                document.links.append(parse_link(item))
            else:
                document.locations.append(parse_location(item))
    return document


def parse_plain(body: str) -> Document:
    """A ``text/plain`` body: one ``Name: value`` field per line; blank lines ignored."""
    fields = []
    for number, line in enumerate(body.splitlines(), 1):
        if not line.strip():
            continue
        name, sep, value = line.partition(":")
        if not sep or not name.strip() or " " in name.strip():
            raise ParseError(f"line {number}: expected 'Name: value', got {line[:80]!r}")
        if name.strip().lower() not in FIELDS:
            raise ParseError(
                f"line {number}: unknown field {name.strip()[:40]!r} (expected Category, "
                "X-OCCI-Attribute, Link or X-OCCI-Location)"
            )
        fields.append((name, value))
    return parse_fields(fields)


def parse_uri_list(body: str) -> Document:
    """``text/uri-list`` (RFC 2483): one URI per line, ``#`` lines are comments."""
    return Document(
        locations=[
            parse_location(line) for line in body.splitlines() if line.strip() and line[0] != "#"
        ]
    )


# -- rendering ----------------------------------------------------------------------------
def _category_value(category: Category, *, full: bool, ascii_only: bool) -> str:
    parts = [
        category.term,
        f'scheme="{category.scheme}"',
        f'class="{category.cls}"',
    ]
    if category.title:
        parts.append("title=" + quote(category.title, ascii_only=ascii_only))
    if full:
        rel: list[str] = []
        if isinstance(category, Kind) and category.parent:
            rel = [category.parent.identifier]
        elif isinstance(category, Mixin):
            rel = [d.identifier for d in category.depends]
        if rel:
            parts.append(f'rel="{" ".join(rel)}"')
        if category.location:
            parts.append(f'location="{category.location}"')
        attrs = []
        for attribute in category.attributes:
            flags = [
                f
                for f, on in (
                    ("immutable", not attribute.mutable),
                    ("required", attribute.required),
                )
                if on
            ]
            attrs.append(attribute.name + ("{" + " ".join(flags) + "}" if flags else ""))
        if attrs:
            parts.append(f'attributes="{" ".join(attrs)}"')
        if isinstance(category, Kind | Mixin) and category.actions:
            parts.append(f'actions="{" ".join(a.identifier for a in category.actions)}"')
    return "; ".join(parts)


def render_value(value: Any, *, ascii_only: bool = False) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value) if isinstance(value, float) else str(value)
    if isinstance(value, list | dict):
        import json

        return quote(json.dumps(value), ascii_only=ascii_only)
    return quote(str(value), ascii_only=ascii_only)


def _link_value(link: Entity, *, ascii_only: bool) -> str:
    parts = [
        f"<{link.target[0]}>",
        f'rel="{link.target[1]}"',
        f'self="{link.location}"',
        f'category="{" ".join([link.kind.identifier, *(m.identifier for m in link.mixins)])}"',
    ]
    for name, value in link.attributes.items():
        if name.startswith("occi.core.") and name != "occi.core.id":
            continue
        parts.append(f"{name}={render_value(value, ascii_only=ascii_only)}")
    return "; ".join(parts)


def _action_link(entity: Entity, action: Action) -> str:
    return f'<{entity.location}?action={action.term}>; rel="{action.identifier}"'


def entity_fields(entity: Entity, *, ascii_only: bool) -> list[tuple[str, str]]:
    fields = [("Category", _category_value(entity.kind, full=False, ascii_only=ascii_only))]
    fields += [
        ("Category", _category_value(m, full=False, ascii_only=ascii_only)) for m in entity.mixins
    ]
    fields += [("Link", _link_value(link, ascii_only=ascii_only)) for link in entity.links]
    fields += [("Link", _action_link(entity, a)) for a in entity.actions]
    fields += [
        ("X-OCCI-Attribute", f"{name}={render_value(value, ascii_only=ascii_only)}")
        for name, value in entity.attributes.items()
        if value is not None and value != ""
    ]
    return fields


def category_fields(categories: Iterable[Category], *, ascii_only: bool) -> list[tuple[str, str]]:
    return [("Category", _category_value(c, full=True, ascii_only=ascii_only)) for c in categories]


def location_fields(locations: Iterable[str]) -> list[tuple[str, str]]:
    return [("X-OCCI-Location", loc) for loc in locations]


def plain_body(fields: list[tuple[str, str]]) -> str:
    return "".join(f"{name}: {value}\n" for name, value in fields)


def occi_headers(fields: list[tuple[str, str]]) -> dict[str, str]:
    """Fields as headers, several values of one name comma-separated (the spec's advice)."""
    headers: dict[str, list[str]] = {}
    for name, value in fields:
        headers.setdefault(name, []).append(value)
    return {name: ", ".join(values) for name, values in headers.items()}
