"""Handlers of openapi/portal.yaml: server-rendered pages, no front-end build.

The caller is found through the authenticator chain and gets the same VO memberships
every other front end sees (:meth:`gateway.runtime.Runtime.authenticate`); without a
login the browser goes to the discovery page and comes back. The Cancel form of an
activity carries a token bound to the SAML login session (SameSite=Lax cookies already
keep other sites' POSTs out; the token also stops a same-site page from posting), and
terminates the activity through the one path BES TerminateActivities uses, when the VO
policy permits ``terminate`` on it.
"""

from __future__ import annotations

import html
import logging
import urllib.parse
from typing import Any

import flask

from backends.contracts.interfaces import BackendError
from backends.contracts.model import Principal
from backends.services.activities import NotTerminable
from backends.store.activities import ActivityRecord
from gateway import runtime
from gateway.activities.access import ActivityRefused, UnknownActivity, authorised
from gateway.auth.chain import AuthenticationFailed, AuthRequest
from gateway.portal.vms import PortalVM, StopRefused, vms_of
from gateway.portal.vms import stop as stop_vm_as

log = logging.getLogger("xtreemgate.portal")
ACTIVITIES_SHOWN = 50
HTML = {"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store"}


def _principal() -> Principal | None:
    request = AuthRequest(
        headers={k.lower(): v for k, v in flask.request.headers.items()},
        remote_addr=flask.request.remote_addr or "",
        transport_secure=flask.request.scheme == "https",
    )
    try:
        return runtime.current().authenticate(request)
    except AuthenticationFailed:
        return None


def _to_discovery() -> flask.Response:
    response = flask.Response(status=303)
    response.headers["Location"] = "/saml/discovery?" + urllib.parse.urlencode(
        {"return_to": "/portal/"}
    )
    return response


def _session_cookie() -> str:
    sp = runtime.current().saml
    return flask.request.cookies.get(sp.config.session_cookie, "") if sp is not None else ""


def _csrf_token() -> str:
    sp = runtime.current().saml
    return sp.csrf_token(_session_cookie()) if sp is not None else ""


def _page(title: str, body: str, status: int = 200) -> flask.Response:
    page = (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}"
        "td,th{padding:.2em .6em;text-align:left}</style></head>"
        f"<body>{body}</body></html>"
    )
    return flask.Response(page, status, HTML)


def _error(status: int, message: str) -> flask.Response:
    body = (
        f"<h1>Not done</h1><p id='error'>{html.escape(message)}</p>"
        "<p><a href='/portal/'>Back to the portal</a></p>"
    )
    return _page("xtreemgate portal", body, status)


def _activities(principal: Principal) -> list[ActivityRecord]:
    rt = runtime.current()
    records = rt.activity_store.list(principal.name, limit=ACTIVITIES_SHOWN)
    live = [r for r in records if not r.state.terminal]
    if live and rt.services is not None:
        try:  # the backend's word on live ones; its absence leaves the last known state
            fresh = rt.activities.refresh(live)
            records = [fresh.get(r.id, r) for r in records]
        except BackendError:
            pass
    return records


def _memberships_table(principal: Principal) -> str:
    rows = "".join(
        "<tr class='vo'>"
        f"<td>{html.escape(m.vo)}</td><td>{html.escape(m.group or '/')}</td>"
        f"<td>{html.escape(', '.join(m.roles) or '—')}</td></tr>"
        for m in principal.memberships
    )
    if not rows:
        return "<p id='vos'>You are not a member of any VO.</p>"
    return f"<table id='vos'><tr><th>VO</th><th>Group</th><th>Roles</th></tr>{rows}</table>"


def _activities_table(records: list[ActivityRecord], csrf: str) -> str:
    if not records:
        return "<p id='activities'>You have no activities.</p>"
    rows = []
    for r in records:
        state = r.state.value + (f" ({r.substate})" if r.substate else "")
        action = ""
        if not r.state.terminal and csrf:
            action = _form(f"/portal/activities/{r.id}/cancel", csrf, "cancel", r.id, "Cancel")
        rows.append(
            f"<tr class='activity' id='activity-{html.escape(r.id)}'>"
            f"<td><code>{html.escape(r.id)}</code></td>"
            f"<td class='state'>{html.escape(state)}</td>"
            f"<td class='reason'>{html.escape(r.reason)}</td>"
            f"<td>{html.escape(r.vo or '—')}</td>"
            f"<td>{r.created_at.strftime('%Y-%m-%d %H:%M:%S')} UTC</td>"
            f"<td>{action}</td></tr>"
        )
    return (
        "<table id='activities'><tr><th>Activity</th><th>State</th><th>Reason</th>"
        f"<th>VO</th><th>Submitted</th><th></th></tr>{''.join(rows)}</table>"
    )


def _vms_table(vms: list[PortalVM], csrf: str) -> str:
    if not vms:
        return "<p id='vms'>You have no virtual machines.</p>"
    rows = []
    for v in vms:
        action = ""
        if v.state == "active" and csrf:
            action = _form(f"/portal/vms/{v.id}/stop", csrf, "stop", v.id, "Stop")
        rows.append(
            f"<tr class='vm' id='vm-{html.escape(v.id)}'><td>{html.escape(v.title or v.id)}</td>"
            f"<td class='state'>{html.escape(v.state)}</td>"
            f"<td>{html.escape(v.state_message)}</td><td>{action}</td></tr>"
        )
    return (
        "<table id='vms'><tr><th>VM</th><th>State</th><th></th><th></th></tr>"
        f"{''.join(rows)}</table>"
    )


def _form(path: str, csrf: str, css: str, item: str, label: str) -> str:
    """A one-button POST form carrying the session-bound token."""
    return (
        f"<form method='post' action='{html.escape(urllib.parse.quote(path))}'>"
        f"<input type='hidden' name='csrf_token' value='{html.escape(csrf)}'>"
        f"<button class='{css}' id='{css}-{html.escape(item)}'>{label}</button></form>"
    )


def home() -> Any:
    principal = _principal()
    if principal is None:
        return _to_discovery()
    name = html.escape(principal.display_name or principal.name)
    csrf = _csrf_token()
    body = (
        f"<h1>Welcome, <span id='who'>{name}</span></h1>"
        f"<p>Signed in as <code id='subject'>{html.escape(principal.name)}</code> "
        f"via {html.escape(str(principal.attributes.get('idp', principal.authenticated_by)))}."
        "</p><h2>Your virtual organisations</h2>"
        f"{_memberships_table(principal)}"
        "<h2>Your activities</h2>"
        f"{_activities_table(_activities(principal), csrf)}"
        "<h2>Your virtual machines</h2>"
        f"{_vms_table(vms_of(runtime.current(), principal), csrf)}"
        "<form method='post' action='/saml/token'><button id='token'>Get an API token</button>"
        "</form><p><a id='logout' href='/saml/logout'>Log out</a></p>"
    )
    return _page("xtreemgate portal", body)


def _form_caller(what: str, body: dict[str, str] | None) -> Principal | flask.Response:
    """The caller of a portal form, or the answer refusing it: forms need a SAML login
    session and the token bound to it."""
    principal = _principal()
    if principal is None:
        return _to_discovery()
    sp = runtime.current().saml
    if sp is None or principal.authenticated_by != "saml":
        return _error(403, "portal forms need a SAML login session; scripts use BES or the API")
    if not sp.check_csrf(_session_cookie(), (body or {}).get("csrf_token", "")):
        log.warning("portal: %s by %s refused: bad form token", what, principal.name)
        return _error(403, "this form does not belong to your login session: reload the portal")
    return principal


def _back_to_portal() -> flask.Response:
    response = flask.Response(status=303)
    response.headers["Location"] = "/portal/"
    response.headers["Cache-Control"] = "no-store"
    return response


def cancel_activity(activity_id: str, body: dict[str, str] | None = None) -> Any:
    principal = _form_caller(f"cancel of {activity_id}", body)
    if not isinstance(principal, Principal):
        return principal
    rt = runtime.current()
    try:
        record = authorised(rt.activity_store, rt.vo, principal, activity_id, "terminate")
    except UnknownActivity:
        return _error(404, f"there is no activity {activity_id}")
    except ActivityRefused as refused:
        reason = refused.decision.reason
        log.warning("portal: cancel of %s by %s refused: %s", activity_id, principal.name, reason)
        return _error(403, f"you may not cancel activity {activity_id}: {reason}")
    try:
        rt.activities.terminate(record, principal.name)
    except NotTerminable as exc:
        return _error(409, str(exc))
    except BackendError as exc:
        return _error(502, f"activity {activity_id} could not be cancelled: {exc}")
    log.info("portal: %s cancelled activity %s", principal.name, activity_id)
    return _back_to_portal()


def stop_vm(vm_id: str, body: dict[str, str] | None = None) -> Any:
    principal = _form_caller(f"stop of VM {vm_id}", body)
    if not isinstance(principal, Principal):
        return principal
    try:
        stop_vm_as(runtime.current(), principal, vm_id)
    except StopRefused as exc:
        log.warning("portal: stop of VM %s by %s refused: %s", vm_id, principal.name, exc)
        return _error(exc.status, f"VM {vm_id} was not stopped: {exc}")
    log.info("portal: %s stopped VM %s", principal.name, vm_id)
    return _back_to_portal()
