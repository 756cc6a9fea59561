"""The /bes endpoint: SOAP 1.1 POSTs, the WSDL at ``?wsdl``, its schemas under
``/bes/schemas/``.

SOAP cannot be described in OpenAPI, so this is a plain Flask route on connexion's Flask
app. It calls the shared authenticator chain itself (handing over the wsse:Security
header), and :class:`BESPaths` names the route for the metrics and access log, which
otherwise see it as "unmatched".
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

import flask
from lxml import etree

from gateway import runtime as runtime_module
from gateway.auth.chain import AuthenticationFailed, AuthRequest
from gateway.auth.wssecurity import EXTRA_KEY
from gateway.bes import factory, management
from gateway.bes.addressing import Addressing
from gateway.bes.context import Call
from gateway.bes.faults import SERVER, BESFault
from gateway.bes.namespaces import BES, BES_MGMT, q
from gateway.bes.soap import CONTENT_TYPE, envelope_bytes, parse_envelope
from gateway.monitoring.logs import REQUEST_ID
from gateway.monitoring.middleware import ROUTE_KEY
from gateway.resources import data_dir
from gateway.runtime import Runtime
from gateway.xmlns import WSSE

log = logging.getLogger("xtreemgate.bes")
PATH = "/bes"
ACTIVITIES_COLLECTION = "/api/v1/activities"

Operation = Callable[[Call, etree._Element], etree._Element]
OPERATIONS: dict[str, tuple[str, Operation]] = {
    q(BES, "CreateActivity"): ("CreateActivity", factory.create_activity),
    q(BES, "GetActivityStatuses"): ("GetActivityStatuses", factory.get_activity_statuses),
    q(BES, "TerminateActivities"): ("TerminateActivities", factory.terminate_activities),
    q(BES, "GetActivityDocuments"): ("GetActivityDocuments", factory.get_activity_documents),
    q(BES, "GetFactoryAttributesDocument"): (
        "GetFactoryAttributesDocument",
        factory.get_factory_attributes_document,
    ),
    q(BES_MGMT, "StopAcceptingNewActivities"): (
        "StopAcceptingNewActivities",
        management.stop_accepting_new_activities,
    ),
    q(BES_MGMT, "StartAcceptingNewActivities"): (
        "StartAcceptingNewActivities",
        management.start_accepting_new_activities,
    ),
}
WSDLS = {"": "bes-factory.wsdl", "factory": "bes-factory.wsdl", "management": "bes-management.wsdl"}
_SCHEMA_NAME = re.compile(r"^[a-z0-9-]+\.(xsd|wsdl)$")


def endpoint_url(rt: Runtime) -> str:
    """The address clients use: server.public_url when set, else what this request used."""
    if rt.settings.server.public_url:
        return rt.settings.public_url + PATH
    return flask.request.url_root.rstrip("/") + PATH


# -- GET: WSDL and schemas ------------------------------------------------------------
def _rewrite_locations(text: str, base: str) -> str:
    """Point the documents at each other (and at this gateway, never the network)."""
    replacements = {
        'schemaLocation="http://schemas.xmlsoap.org/soap/envelope/"': (
            f'schemaLocation="{base}/schemas/soap-envelope.xsd"'
        ),
        'schemaLocation="http://www.w3.org/2002/ws/addr/ns/ws-addr"': (
            f'schemaLocation="{base}/schemas/ws-addr.xsd"'
        ),
        'schemaLocation="./jsdl.xsd"': f'schemaLocation="{base}/schemas/jsdl.xsd"',
        'schemaLocation="bes-factory.xsd"': f'schemaLocation="{base}/schemas/bes-factory.xsd"',
        'schemaLocation="bes-management.xsd"': (
            f'schemaLocation="{base}/schemas/bes-management.xsd"'
        ),
    }
    for old, new in replacements.items():
        text = text.replace(old, new)
    return re.sub(r'(<soap:address\s+location=")[^"]*(")', rf"\g<1>{base}\g<2>", text)


def _xml(text: str) -> flask.Response:
    return flask.Response(text, mimetype="text/xml", headers={"Cache-Control": "max-age=300"})


def schema(name: str) -> flask.Response:
    path = data_dir("schemas") / name
    if not _SCHEMA_NAME.match(name) or not path.is_file():
        flask.abort(404)
    base = endpoint_url(runtime_module.current())
    return _xml(_rewrite_locations(path.read_text(encoding="utf-8"), base))


def get() -> flask.Response:
    args = flask.request.args
    if "wsdl" in args or "WSDL" in args:
        which = args.get("wsdl", args.get("WSDL", ""))
        if which not in WSDLS:
            flask.abort(404)
        return schema(WSDLS[which])
    url = endpoint_url(runtime_module.current())
    return flask.Response(
        f"OGSA-BES 1.0 endpoint (SOAP 1.1). POST SOAP requests here.\n"
        f"Factory WSDL: {url}?wsdl\nManagement WSDL: {url}?wsdl=management\n",
        mimetype="text/plain",
    )


# -- POST: SOAP -----------------------------------------------------------------------
def _fault_response(
    fault: BESFault, addressing: Addressing | None, operation: str, headers: dict | None = None
) -> flask.Response:
    reply_headers = addressing.reply_headers(operation, fault=True) if addressing else []
    body = envelope_bytes([fault.fault_element()], reply_headers)
    return flask.Response(
        body, status=fault.http_status, content_type=CONTENT_TYPE, headers=headers or {}
    )


def _read_body(limit: int) -> bytes:
    length = flask.request.content_length
    if length is not None and length > limit:
        raise BESFault(
            "InvalidRequestMessage",
            f"the request is {length} bytes; at most {limit} are accepted",
            elements=["soap:Envelope"],
        )
    data = flask.request.stream.read(limit + 1)
    if len(data) > limit:
        raise BESFault(
            "InvalidRequestMessage",
            f"the request is larger than {limit} bytes",
            elements=["soap:Envelope"],
        )
    return data


def post() -> flask.Response:
    rt = runtime_module.current()
    addressing: Addressing | None = None
    operation = "Fault"
    try:
        envelope = parse_envelope(
            _read_body(rt.settings.bes.max_request_bytes),
            max_bytes=rt.settings.bes.max_request_bytes,
        )
        addressing = Addressing.read(envelope.header_entries())
        known = OPERATIONS.get(envelope.payload.tag)
        if known is None:
            raise BESFault(
                "InvalidRequestMessage",
                f"{etree.QName(envelope.payload).text} is not an operation of this endpoint; "
                "it offers " + ", ".join(name for name, _ in OPERATIONS.values()),
                elements=[etree.QName(envelope.payload).localname],
            )
        operation, handler = known
        addressing.check(operation, PATH)
        security = next(
            (e for e in envelope.header_entries() if e.tag == q(WSSE, "Security")), None
        )
        request = flask.request
        view = AuthRequest(
            headers={k.lower(): v for k, v in request.headers.items()},
            remote_addr=request.remote_addr or "",
            transport_secure=request.scheme == "https",
            extra={EXTRA_KEY: security},
        )
        try:
            principal = rt.authenticate(view)  # the chain, then the VO memberships
        except AuthenticationFailed as exc:
            return _unauthenticated(rt, addressing, operation, f"{exc.mechanism}: {exc.reason}")
        if principal is None:
            return _unauthenticated(
                rt,
                addressing,
                operation,
                "no credentials: send a WS-Security UsernameToken, a Bearer token or HTTP Basic",
            )
        result = handler(Call(principal, rt, endpoint_url(rt)), envelope.payload)
    except BESFault as fault:
        return _fault_response(fault, addressing, operation)
    except Exception:
        log.exception("BES %s failed", operation)
        fault = BESFault(
            "",
            f"internal error while handling {operation}; quote request id {REQUEST_ID.get()}",
            code=SERVER,
        )
        return _fault_response(fault, addressing, operation)
    body = envelope_bytes([result], addressing.reply_headers(operation))
    return flask.Response(body, status=200, content_type=CONTENT_TYPE)


def _unauthenticated(
    rt: Runtime, addressing: Addressing, operation: str, reason: str
) -> flask.Response:
    """HTTP 401 with the challenges (for Basic/Bearer clients) and a NotAuthorized fault
    body (for SOAP toolkits that only read the envelope)."""
    fault = BESFault("NotAuthorized", reason, http_status=401)
    challenges = rt.chain.challenges()
    headers = {"WWW-Authenticate": ", ".join(challenges)} if challenges else {}
    return _fault_response(fault, addressing, operation, headers)


# -- mounting -------------------------------------------------------------------------
class BESPaths:
    """ASGI middleware for the BES front end's paths.

    - names /bes requests for the metrics and access log (connexion does not know them);
    - serves the job-control collection at ``/api/v1/activities`` as well as at
      ``/api/v1/activities/`` (its OpenAPI document's base path), where connexion would
      otherwise answer a 308 without a Location.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            path = scope.get("path", "")
            if path == PATH or path.startswith(PATH + "/"):
                label = "gateway.bes.soap" if scope.get("method") == "POST" else "gateway.bes.wsdl"
                extensions = scope.get("extensions")
                if extensions is None:
                    extensions = scope["extensions"] = {}
                extensions[ROUTE_KEY] = label
            elif path == ACTIVITIES_COLLECTION:
                scope["path"] = path + "/"
                scope["raw_path"] = (path + "/").encode()
        await self.app(scope, receive, send)


def mount(app: Any) -> None:
    """Add /bes to connexion's FlaskApp (outside the OpenAPI documents)."""
    app.add_url_rule(PATH, "bes_get", get, methods=["GET"])
    app.add_url_rule(PATH, "bes_post", post, methods=["POST"])
    app.add_url_rule(PATH + "/schemas/<name>", "bes_schema", schema, methods=["GET"])
