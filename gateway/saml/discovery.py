"""Choosing an identity provider: a server-rendered page that searches the federation's
IdPs by display name, remembers the last choice in a cookie, and speaks the SAML IdP
Discovery Protocol (``entityID``, ``return``, ``returnIDParam``, ``isPassive``) so the
SP's own login (or a federation's central discovery service) can use it."""

from __future__ import annotations

import html
import urllib.parse
from typing import Any

import flask

from gateway.saml.sp import SAMLError, ServiceProvider, check_return_to

LAST_IDP_COOKIE = "xg_saml_idp"


def _page(title: str, body: str) -> str:
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        "<style>body{font-family:sans-serif;max-width:40em;margin:2em auto}"
        "li{margin:.3em 0}</style></head>"
        f"<body>{body}</body></html>"
    )


def _return_url(sp: ServiceProvider, target: str | None, param: str, entity_id: str) -> str:
    """Where the Discovery Protocol answers: only this SP's own discovery response
    (as its metadata says), never an arbitrary site."""
    allowed = f"{sp.public_url}/saml/login"
    if target is None:
        target = allowed
    if any(not 0x21 <= ord(c) <= 0x7E for c in target):  # would end or bend the Location
        raise SAMLError(f"return URL {target!r} contains spaces, control or non-ASCII characters")
    if target.split("?", 1)[0] != allowed:
        raise SAMLError(f"return URL {target!r} is not this SP's DiscoveryResponse ({allowed})")
    if not entity_id:
        return target
    glue = "&" if "?" in target else "?"
    return target + glue + urllib.parse.urlencode({param: entity_id})


def render(sp: ServiceProvider, params: dict[str, str]) -> Any:
    """The discovery page, or a redirect when the protocol asks for a passive answer."""
    query = params.get("q", "").strip()
    return_to = check_return_to(params.get("return_to"))
    protocol_return = params.get("return")
    id_param = params.get("returnIDParam") or "entityID"
    requester = params.get("entityID")
    if requester and requester != sp.entity_id:
        raise SAMLError(f"this discovery service serves {sp.entity_id!r}, not {requester!r}")
    last = flask.request.cookies.get(LAST_IDP_COOKIE, "")
    last_idp = sp.federations.lookup(last) if last else None
    if params.get("isPassive") == "true":
        chosen = last_idp.entity_id if last_idp else ""
        response = flask.Response(status=303)
        response.headers["Location"] = _return_url(sp, protocol_return, id_param, chosen)
        return response

    def link(entity_id: str) -> str:
        if protocol_return is not None:
            return _return_url(sp, protocol_return, id_param, entity_id)
        return "/saml/login?" + urllib.parse.urlencode({"idp": entity_id, "return_to": return_to})

    hits = sp.federations.search(query, limit=50) if query else []
    items = "".join(
        f"<li><a class='idp' href='{html.escape(link(idp.entity_id))}'>"
        f"{html.escape(idp.display_name())}</a></li>"
        for idp in hits
    )
    remembered = (
        f"<p>Last time you used <a id='last-idp' href='{html.escape(link(last_idp.entity_id))}'>"
        f"{html.escape(last_idp.display_name())}</a>.</p>"
        if last_idp
        else ""
    )
    hidden = "".join(
        f"<input type='hidden' name='{name}' value='{html.escape(params[name])}'>"
        for name in ("return_to", "return", "returnIDParam", "entityID")
        if params.get(name)
    )
    found = (
        f"<ul id='results'>{items}</ul>"
        if hits
        else (f"<p id='none'>No institution matches {html.escape(query)!s}.</p>" if query else "")
    )
    body = (
        "<h1>Log in with your institution</h1>"
        f"{remembered}"
        "<form method='get' action='/saml/discovery'>"
        f"<label>Institution <input id='q' name='q' value='{html.escape(query)}' "
        "autofocus></label>"
        f"{hidden}<button id='search' type='submit'>Search</button></form>"
        f"{found}<p><small>{len(sp.federations)} identity providers known.</small></p>"
    )
    return flask.Response(
        _page("Log in — xtreemgate", body), 200, {"Content-Type": "text/html; charset=utf-8"}
    )
