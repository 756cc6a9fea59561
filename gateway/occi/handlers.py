"""The OCCI HTTP protocol (GFD.223): the handlers openapi/occi.yaml routes to.

Each handler reads the request in whichever rendering it came, asks
:class:`~gateway.occi.service.OCCIService`, and answers in the rendering negotiated from
``Accept``. Every answer carries the ``Server: xtreemgate/<v> OCCI/1.2`` header; every
refusal is ``text/plain`` with its reason.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable, Sequence
from typing import Any

import flask
from sqlalchemy.exc import IntegrityError

from backends.contracts.model import Principal
from gateway import runtime
from gateway.auth.security import current_principal
from gateway.monitoring.handlers import VERSION
from gateway.occi import jsonrender, negotiation, text
from gateway.occi.entity import Document, Entity, absolute, with_base
from gateway.occi.errors import OCCIError, bad_request, not_found
from gateway.occi.model import Category, Kind, Mixin
from gateway.occi.service import OCCIService

log = logging.getLogger("xtreemgate.occi")


class _OneBodyMediaTypeIsFine(logging.Filter):
    """OCCI operations accept every rendering as a body on purpose; connexion warns about
    that on each such request. The warning says nothing an operator can act on."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("this operation accepts multiple content types")


logging.getLogger("connexion.operations.openapi3").addFilter(_OneBodyMediaTypeIsFine())

SERVER = f"xtreemgate/{VERSION} OCCI/1.2"
# Rendered query interfaces by (registry generation, media type): a registry is immutable
# once built, and a new one (new templates or user mixins) gets a new key.
_query_cache: dict[tuple[int, str], tuple[str, dict[str, str]]] = {}


def service() -> OCCIService:
    return runtime.current().occi


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> flask.Response:
    response = flask.Response(message.rstrip("\n") + "\n", status=status, mimetype="text/plain")
    response.headers.update(headers or {})
    response.headers["Server"] = SERVER
    return response


def occi_operation(handler: Callable[..., flask.Response]) -> Callable[..., flask.Response]:
    """Version check, error mapping and the Server header around every handler."""

    @functools.wraps(handler)
    def wrapper(*args: Any, **kwargs: Any) -> flask.Response:
        try:
            negotiation.check_version(flask.request.headers)
            response = handler(*args, **kwargs)
        except OCCIError as exc:
            return _error(exc.status, exc.message, exc.headers)
        except text.ParseError as exc:
            return _error(400, f"cannot read the request: {exc}")
        except IntegrityError:  # a concurrent request stored the same id or location first
            log.info("OCCI write lost a race", exc_info=True)
            return _error(409, "a concurrent request changed the same entity; try again")
        response.headers["Server"] = SERVER
        return response

    return wrapper


# -- request and response -------------------------------------------------------------
def _document(*, with_body: bool = True) -> Document:
    """The request's OCCI fields, from its headers and (in any rendering) its body."""
    request = flask.request
    header_fields = [(k, v) for k, v in request.headers.items() if k.lower() in text.FIELDS]
    document = text.parse_fields(header_fields)
    if not with_body:
        return document
    body = request.get_data(cache=True)
    if not body.strip():
        return document
    media = (request.mimetype or "text/plain").lower()
    if media in ("application/json", "application/occi+json"):
        parsed = jsonrender.parse(body)
    else:
        try:
            decoded = body.decode("utf-8")
        except UnicodeDecodeError:
            raise bad_request("the body is not UTF-8 text") from None
        if media == "text/uri-list":
            parsed = text.parse_uri_list(decoded)
        elif media == "text/occi":
            if decoded.strip() not in ("", "OK"):  # some clients echo the response's "OK"
                raise bad_request(
                    "a text/occi request carries its fields in headers; its body must be empty"
                )
            return document
        else:
            parsed = text.parse_plain(decoded)
    document.categories += parsed.categories
    document.attributes.update(parsed.attributes)
    document.links += parsed.links
    document.locations += parsed.locations
    return document


def _render(media: str, fields: list[tuple[str, str]], status: int = 200) -> flask.Response:
    if media == "text/occi":
        response = flask.Response("OK\n", status=status, mimetype="text/occi")
        response.headers.update(text.occi_headers(fields))
        return response
    # an empty text/plain rendering is an empty body; "OK" is text/occi's (GFD.229 §5.3)
    return flask.Response(text.plain_body(fields), status=status, mimetype="text/plain")


def _json(
    doc: dict[str, Any], status: int = 200, media: str = "application/occi+json"
) -> flask.Response:
    return flask.Response(jsonrender.dumps(doc), status=status, mimetype=media)


def _base() -> str:
    """``server.public_url``: locations are rendered absolute under it, relative without."""
    return service().settings.server.public_url.rstrip("/")


def _entity_response(entity: Entity, status: int = 200) -> flask.Response:
    media = negotiation.choose(flask.request.headers.get("Accept"), listing=False)
    entity = with_base(entity, _base())
    if media in negotiation.JSON:
        response = _json(jsonrender.entity(entity), status, media)
    else:
        response = _render(
            media, text.entity_fields(entity, ascii_only=media == "text/occi"), status
        )
    if status == 201:
        response.headers["Location"] = entity.location
    return response


def _locations_response(
    locations: Sequence[str], entities: Callable[[], list[Entity]]
) -> flask.Response:
    media = negotiation.choose(flask.request.headers.get("Accept"), listing=True)
    base = _base()
    if media in negotiation.JSON:
        return _json(jsonrender.collection([with_base(e, base) for e in entities()]), media=media)
    locations = [absolute(loc, base) for loc in locations]
    if media == "text/uri-list":
        return flask.Response("".join(f"{loc}\n" for loc in locations), mimetype="text/uri-list")
    return _render(media, text.location_fields(locations))


def _categories_response(categories: Sequence[Category], media: str) -> flask.Response:
    if media in negotiation.JSON:
        return _json(jsonrender.categories(categories), media=media)
    return _render(media, text.category_fields(categories, ascii_only=media == "text/occi"))


def _done_response() -> flask.Response:
    media = negotiation.choose(flask.request.headers.get("Accept"), listing=False)
    if media in negotiation.JSON:
        return _json({"resources": []}, media=media)
    return _render(media, [])


def _principal() -> Principal:
    return current_principal()


def _kind(kind: str) -> Kind:
    found = service().registry().by_location(f"/{kind}/")
    if not isinstance(found, Kind):
        raise not_found(f"the collection /{kind}/")
    return found


# -- query interface ------------------------------------------------------------------------
@occi_operation
def query_get(category: str | None = None, **_: Any) -> flask.Response:
    wanted = list(_document(with_body=False).categories)
    if category:
        wanted.append(_category_ref(category))
    media = negotiation.choose(flask.request.headers.get("Accept"), listing=False)
    svc = service()
    owner = _principal().name
    registry = svc.registry(owner)
    key = (registry.generation, media)
    if not wanted and key in _query_cache:  # the same registry renders the same bytes
        body, headers = _query_cache[key]
        response = flask.Response(body, mimetype=media)
        response.headers.update(headers)
        return response
    categories: list[Category] = svc.discover(owner, wanted)
    if wanted and not categories:
        raise not_found("no category " + ", ".join(w.identifier for w in wanted))
    response = _categories_response(categories, media)
    if not wanted:
        if len(_query_cache) > 32:
            _query_cache.clear()
        extra = {k: v for k, v in response.headers.items() if k.lower() in text.FIELDS}
        _query_cache[key] = (response.get_data(as_text=True), extra)
    return response


@occi_operation
def query_post(**_: Any) -> flask.Response:
    service().add_user_mixins(_principal(), _document().categories)
    return _done_response()


@occi_operation
def query_delete(**_: Any) -> flask.Response:
    service().remove_user_mixins(_principal(), _document().categories)
    return _done_response()


def _category_ref(identifier: str) -> Any:
    from gateway.occi.entity import CategoryRef

    scheme, sep, term = identifier.rpartition("#")
    if not sep or not term:
        # a bare term (MartServer, rOCCI accept "?category=compute"): match by term
        found = [
            c for c in service().registry(_principal().name).categories() if c.term == identifier
        ]
        if not found:
            raise not_found(f"category {identifier!r}")
        return CategoryRef(found[0].term, found[0].scheme)
    return CategoryRef(term, scheme + "#")


# -- listing helpers ---------------------------------------------------------------------
def _filters(category: str | None, attribute: str | None) -> tuple[list[str], dict[str, Any]]:
    document = _document()
    categories = [c.identifier for c in document.categories]
    if category:
        categories.append(_category_ref(category).identifier)
    attributes = dict(document.attributes)
    if attribute:
        name, sep, value = attribute.partition("=")
        if sep:
            attributes[name.strip()] = text.parse_value(value, f"attribute filter {name}")
        else:
            attributes[""] = attribute
    return categories, attributes


def _matches(entity: Entity, categories: list[str], attributes: dict[str, Any]) -> bool:
    own = {k.identifier for k in entity.kind.lineage()} | {
        m.identifier for mixin in entity.mixins for m in mixin.lineage()
    }
    if any(c not in own for c in categories):
        return False
    for name, value in attributes.items():
        if name == "":
            if not any(str(v) == str(value) for v in entity.attributes.values()):
                return False
        elif str(entity.attributes.get(name)) != str(value):
            return False
    return True


def _page(items: list[Any], page: int | None, number: int | None) -> list[Any]:
    limit = service().settings.occi.max_collection
    if number is not None and number > limit:
        raise OCCIError(413, f"number={number} is more than the {limit} entities one answer holds")
    if page is None and number is None:
        if len(items) > limit:
            raise OCCIError(
                413,
                f"the collection holds {len(items)} entities, more than the {limit} one answer "
                f"holds; page through it with ?page=1&number={limit}",
            )
        return items
    size = number or limit
    start = ((page or 1) - 1) * size
    return items[start : start + size]


def _listing(
    kinds: list[Kind],
    page: int | None,
    number: int | None,
    category: str | None,
    attribute: str | None,
    only: Callable[[], list[Any]] | None = None,
) -> flask.Response:
    svc = service()
    principal = _principal()
    categories, attributes = _filters(category, attribute)
    if categories or attributes or only is not None:
        rows = only() if only is not None else _records_of(kinds)
        entities = [e for e in svc.entities(principal, rows) if _matches(e, categories, attributes)]
        entities = _page(entities, page, number)
        return _locations_response([e.location for e in entities], lambda: entities)
    listing = svc.listing(principal, kinds)
    media = negotiation.choose(flask.request.headers.get("Accept"), listing=True)
    paged = page is not None or number is not None
    if not paged and media in listing.bodies:  # rendered once per version of the collection
        return flask.Response(listing.bodies[media], mimetype=media)
    locations = [loc for loc, _kind in _page(listing.items, page, number)]

    def full() -> list[Entity]:
        from gateway.occi import records

        ids = [loc.rpartition("/")[2] for loc in locations]
        found = records.get_many(svc.db, ids)
        return svc.entities(principal, [found[i] for i in ids if i in found])

    if paged or media not in ("text/plain", "text/uri-list"):
        return _locations_response(locations, full)
    locations = [absolute(loc, _base()) for loc in locations]
    if media == "text/plain":
        body = text.plain_body(text.location_fields(locations))
    else:
        body = "".join(f"{loc}\n" for loc in locations)
    listing.bodies[media] = body.encode("utf-8")
    return flask.Response(listing.bodies[media], mimetype=media)


def _records_of(kinds: list[Kind]) -> list[Any]:
    from gateway.occi import records

    return records.of_kinds(service().db, [k.identifier for k in kinds])


# -- kind collections ---------------------------------------------------------------------
@occi_operation
def collection_get(
    kind: str,
    page: int | None = None,
    number: int | None = None,
    category: str | None = None,
    attribute: str | None = None,
    **_: Any,
) -> flask.Response:
    found = _kind(kind)
    return _listing(service().kinds_under(found), page, number, category, attribute)


@occi_operation
def collection_post(kind: str, action: str | None = None, **_: Any) -> flask.Response:
    found = _kind(kind)
    svc = service()
    document = _document()
    if action:
        chosen = svc.action_for(found, action, document)
        done = svc.act_on_all(_principal(), found, chosen, document)
        return _locations_response(done, lambda: [])
    entity = svc.create(_principal(), found, document)
    return _entity_response(entity, 201)


@occi_operation
def collection_delete(kind: str, **_: Any) -> flask.Response:
    service().delete_all(_principal(), _kind(kind))
    return _done_response()


# -- entities -----------------------------------------------------------------------------
@occi_operation
def entity_get(kind: str, entity_id: str, **_: Any) -> flask.Response:
    entity_id = entity_id.lower()  # ids are UUIDs: any case names the same entity
    return _entity_response(service().entity(_principal(), _kind(kind), entity_id))


@occi_operation
def entity_put(kind: str, entity_id: str, **_: Any) -> flask.Response:
    entity_id = entity_id.lower()  # ids are UUIDs: any case names the same entity
    found = _kind(kind)
    svc = service()
    document = _document()
    from gateway.occi import records

    existing = records.get(svc.db, entity_id)
    if existing is None:
        return _entity_response(svc.create(_principal(), found, document, entity_id), 201)
    if existing.kind != found.identifier:
        svc.operations.authorisation.require_free(
            _principal(), found, entity_id, "is already the id of an entity of another kind"
        )
    return _entity_response(svc.update(_principal(), found, entity_id, document, replace=True))


@occi_operation
def entity_post(kind: str, entity_id: str, action: str | None = None, **_: Any) -> flask.Response:
    entity_id = entity_id.lower()  # ids are UUIDs: any case names the same entity
    found = _kind(kind)
    svc = service()
    document = _document()
    if action:
        chosen = svc.action_for(found, action, document)
        entity, template = svc.act_and_save(_principal(), found, entity_id, chosen, document)
        if template is not None:  # save answers the new os_tpl (GFD.224 §3.1)
            media = negotiation.choose(flask.request.headers.get("Accept"), listing=False)
            return _categories_response([template], media)
        return _entity_response(entity)
    return _entity_response(svc.update(_principal(), found, entity_id, document, replace=False))


@occi_operation
def entity_delete(kind: str, entity_id: str, **_: Any) -> flask.Response:
    entity_id = entity_id.lower()  # ids are UUIDs: any case names the same entity
    service().delete(_principal(), _kind(kind), entity_id)
    return _done_response()


# -- mixin collections -------------------------------------------------------------------
_MIXIN_PATH = re.compile(r"^[A-Za-z0-9_./-]+$")


def _mixin(location: str) -> Mixin:
    path = "/mixins/" + location.strip("/") + "/"
    if not _MIXIN_PATH.match(path):
        raise not_found(f"the mixin collection {path!r}")
    found = service().registry(_principal().name).by_location(path)
    if not isinstance(found, Mixin):
        raise not_found(f"the mixin collection {path}")
    return found


@occi_operation
def mixin_get(
    location: str,
    page: int | None = None,
    number: int | None = None,
    category: str | None = None,
    attribute: str | None = None,
    **_: Any,
) -> flask.Response:
    mixin = _mixin(location)
    svc = service()
    principal = _principal()
    return _listing(
        [], page, number, category, attribute, only=lambda: svc.tagged(principal, mixin)
    )


@occi_operation
def mixin_post(location: str, **_: Any) -> flask.Response:
    mixin = _mixin(location)
    document = _document()
    if not document.locations:
        raise bad_request(
            "name the entities to tag: X-OCCI-Location fields or a text/uri-list body"
        )
    service().tag(_principal(), mixin, document.locations, replace=False)
    return _mixin_collection(mixin)


@occi_operation
def mixin_put(location: str, **_: Any) -> flask.Response:
    mixin = _mixin(location)
    service().tag(_principal(), mixin, _document().locations, replace=True)
    return _mixin_collection(mixin)


def _mixin_collection(mixin: Mixin) -> flask.Response:
    """The collection as it is now: what POST and PUT on it answer (GFD.223 §11.2, §11.3.2)."""
    svc = service()
    entities = svc.entities(_principal(), svc.tagged(_principal(), mixin))
    return _locations_response([e.location for e in entities], lambda: entities)


@occi_operation
def mixin_delete(location: str, **_: Any) -> flask.Response:
    mixin = _mixin(location)
    service().untag(_principal(), mixin, _document().locations)
    return _done_response()


# The same query interface at its well-known location (one operationId per route).
well_known_get = query_get
well_known_post = query_post
well_known_delete = query_delete


# One handler per kind and operation, as openapi/occi.yaml names them (compute_list,
# compute_get, …): connexion routes by operationId, one route each.
def _bound(handler: Callable[..., flask.Response], kind: str) -> Callable[..., flask.Response]:
    def bound(**kwargs: Any) -> flask.Response:
        return handler(kind=kind, **kwargs)

    bound.__name__ = bound.__qualname__ = f"{kind}_{handler.__name__}"
    bound.__doc__ = handler.__doc__
    return bound


_OPERATIONS = {
    "list": collection_get,
    "create": collection_post,
    "delete_all": collection_delete,
    "get": entity_get,
    "put": entity_put,
    "update": entity_post,
    "delete": entity_delete,
}
for _kind_term in (
    "resource",  # core#resource and core#link: read-only collections of their children
    "link",
    "compute",
    "storage",
    "network",
    "networkinterface",
    "storagelink",
    "cluster",
    "clustermember",
):
    for _op, _handler in _OPERATIONS.items():
        globals()[f"{_kind_term}_{_op}"] = _bound(_handler, _kind_term)
