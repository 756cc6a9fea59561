"""Handlers of openapi/portal.yaml. The caller is found through the authenticator chain
(the SAML session cookie is one of its mechanisms); without a login the browser goes to
the discovery page and comes back."""

from __future__ import annotations

import html
import urllib.parse
from typing import Any

import flask

from backends.model import Principal
from gateway import runtime
from gateway.auth.chain import AuthenticationFailed, AuthRequest


def _principal() -> Principal | None:
    request = AuthRequest(
        headers={k.lower(): v for k, v in flask.request.headers.items()},
        remote_addr=flask.request.remote_addr or "",
        transport_secure=flask.request.scheme == "https",
    )
    try:
        return runtime.current().chain.authenticate(request)
    except AuthenticationFailed:
        return None


def home() -> Any:
    principal = _principal()
    if principal is None:
        response = flask.Response(status=303)
        response.headers["Location"] = "/saml/discovery?" + urllib.parse.urlencode(
            {"return_to": "/portal/"}
        )
        return response
    rows = "".join(
        "<tr class='vo'>"
        f"<td>{html.escape(m.vo)}</td><td>{html.escape(m.group or '/')}</td>"
        f"<td>{html.escape(', '.join(m.roles) or '—')}</td></tr>"
        for m in principal.memberships
    )
    vos = (
        f"<table id='vos'><tr><th>VO</th><th>Group</th><th>Roles</th></tr>{rows}</table>"
        if rows
        else "<p id='vos'>You are not a member of any VO.</p>"
    )
    name = html.escape(principal.display_name or principal.name)
    body = (
        f"<h1>Welcome, <span id='who'>{name}</span></h1>"
        f"<p>Signed in as <code id='subject'>{html.escape(principal.name)}</code> "
        f"via {html.escape(str(principal.attributes.get('idp', principal.authenticated_by)))}."
        "</p><h2>Your virtual organisations</h2>"
        f"{vos}"
        "<form method='post' action='/saml/token'><button id='token'>Get an API token</button>"
        "</form><p><a id='logout' href='/saml/logout'>Log out</a></p>"
    )
    page = (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        "<title>xtreemgate portal</title></head>"
        f"<body>{body}</body></html>"
    )
    return flask.Response(
        page, 200, {"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store"}
    )
