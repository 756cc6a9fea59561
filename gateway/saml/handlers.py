"""Handlers of openapi/saml.yaml: thin, each one SAML step on the ServiceProvider."""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import Any

import flask
from connexion.problem import problem

from gateway import runtime
from gateway.saml.response import ResponseRejected
from gateway.saml.sp import SAMLError, ServiceProvider, safe_return_to

# Where a finished logout leaves the browser: a page of the gateway that exists, from
# which the user can log in again.
LOGGED_OUT = "/saml/discovery"


def _sp() -> ServiceProvider:
    sp = runtime.current().saml
    if sp is None:
        raise SAMLError("SAML is not enabled on this gateway (saml.enabled)", 404)
    return sp


def _problem(exc: SAMLError | ResponseRejected, status: int | None = None) -> Any:
    code = status or getattr(exc, "status", 400)
    titles = {
        406: "Not Acceptable",
        400: "Bad Request",
        401: "Unauthorized",
        403: "Forbidden",
        404: "Not Found",
        409: "Conflict",
    }
    return problem(code, titles.get(code, "Error"), exc.reason)


def _see_other(location: str) -> flask.Response:
    response = flask.Response(status=303)
    response.headers["Location"] = location
    response.headers["Cache-Control"] = "no-store"
    return response


def metadata() -> Any:
    try:
        document = _sp().metadata()
    except SAMLError as exc:
        return _problem(exc)
    return flask.Response(
        document,
        200,
        {"Content-Type": "application/samlmetadata+xml", "Cache-Control": "max-age=3600"},
    )


def login(idp: str | None = None, entityID: str | None = None, return_to: str | None = None) -> Any:
    try:
        sp = _sp()
        chosen = idp or entityID
        if not chosen:
            raise SAMLError("name the identity provider: /saml/login?idp=<entityID>")
        location, request_id = sp.authn_request(chosen, return_to)
    except SAMLError as exc:
        return _problem(exc)
    response = _see_other(location)
    # Remembered for the discovery page (a preference, not a credential).
    _set_cookie(response, sp, "xg_saml_idp", chosen, max_age=365 * 86400, path="/saml/")
    # The request's binding to this browser, carried back by the IdP's cross-site POST
    # to the ACS: SameSite=None (with Secure, which browsers require for it) under https;
    # without SameSite over plain http, where browsers send a fresh cookie on such a POST.
    name, value = sp.request_cookie(request_id)
    secure = sp.public_url.startswith("https://")
    response.set_cookie(
        name,
        value,
        max_age=sp.config.request_lifetime,
        path="/saml/",
        secure=secure,
        httponly=True,
        samesite="None" if secure else None,
    )
    return response


def _set_cookie(
    response: Any, sp: ServiceProvider, name: str, value: str, *, max_age: int, path: str
) -> None:
    """A cookie of the SP's: HTTP-only, Lax, and Secure when the gateway is served over
    HTTPS."""
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=path,
        secure=sp.public_url.startswith("https://"),
        httponly=True,
        samesite="Lax",
    )


def discovery(**params: str) -> Any:
    from gateway.saml import discovery as page

    try:
        return page.render(_sp(), {k: v for k, v in flask.request.args.items()})
    except SAMLError as exc:
        return _problem(exc)


def acs(body: dict[str, str]) -> Any:
    try:
        sp = _sp()
        assertion, principal = sp.consume(body["SAMLResponse"], cookies=flask.request.cookies)
    except SAMLError as exc:
        return _problem(exc)
    except ResponseRejected as exc:
        return _problem(exc, 403)
    # A solicited login returns where it started; an unsolicited one (if allowed) where
    # its RelayState says, as long as that is a local path.
    to = getattr(assertion.request, "return_to", None) or body.get("RelayState")
    response = _login_redirect(sp, assertion, principal, to)
    request_id = getattr(assertion.request, "id", None)
    if request_id:  # answered: its binding cookie has done its work
        response.delete_cookie(sp.request_cookie(request_id)[0], path="/saml/")
    return response


def _login_redirect(sp: ServiceProvider, assertion: Any, principal: Any, to: str | None) -> Any:
    """A new session, its cookie, and the way back into the gateway."""
    cookie = sp.start_session(assertion, principal)
    response = _see_other(safe_return_to(to))
    _set_cookie(
        response, sp, sp.config.session_cookie, cookie, max_age=sp.config.session_lifetime, path="/"
    )
    return response


def ecp_start(**_params: str) -> Any:
    from gateway.saml import ecp

    try:
        sp = _sp()
        if not ecp.client_speaks_paos(
            flask.request.headers.get("Accept", ""), flask.request.headers.get("PAOS", "")
        ):
            raise SAMLError(
                f"this is the ECP endpoint: send 'Accept: {ecp.MIME_PAOS}' and a PAOS header "
                f"naming {ecp.ECP} (SAML profiles §4.2.3.1)",
                406,
            )
        envelope = sp.ecp_request()
    except SAMLError as exc:
        return _problem(exc)
    return flask.Response(
        envelope, 200, {"Content-Type": ecp.MIME_PAOS, "Cache-Control": "no-store"}
    )


def ecp_consume(body: Any = None) -> Any:
    try:
        sp = _sp()
        data = flask.request.get_data()
        assertion, principal = sp.consume_ecp(data)
    except SAMLError as exc:
        return _problem(exc)
    except ResponseRejected as exc:
        return _problem(exc, 403)
    response = _login_redirect(sp, assertion, principal, "/saml/session")
    response.status_code = 302  # ECP clients (pysaml2's among them) expect 302 here
    return response


def slo(**_params: str) -> Any:
    try:
        sp = _sp()
        location = sp.single_logout(flask.request.query_string.decode("latin-1"))
    except SAMLError as exc:
        return _problem(exc)
    return _see_other(location or LOGGED_OUT)


def logout(**_params: str) -> Any:
    try:
        sp = _sp()
    except SAMLError as exc:
        return _problem(exc)
    cookie = flask.request.cookies.get(sp.config.session_cookie, "")
    location = sp.logout_request_url(cookie) if cookie else None
    response = _see_other(location or LOGGED_OUT)
    response.delete_cookie(sp.config.session_cookie, path="/")
    return response


def _current_session(sp: ServiceProvider, *, enrich: bool = True) -> Any:
    """The login session and its principal, with the VO store's memberships added by the
    same resolver every other authenticator's principal goes through (``enrich``)."""
    cookie = flask.request.cookies.get(sp.config.session_cookie, "")
    found = sp.session(cookie) if cookie else None
    if found is None:
        raise SAMLError("no SAML login session: log in at /saml/login", 401)
    resolver = runtime.current().memberships
    if resolver is None or not enrich:
        return found
    return found[0], resolver.enrich(found[1])


def session(**_params: str) -> Any:
    try:
        sp = _sp()
        login_session, principal = _current_session(sp)
    except SAMLError as exc:
        return _problem(exc)
    return (
        {
            "name": principal.name,
            "display_name": principal.display_name,
            "idp": login_session.idp,
            "expires_at": login_session.expires_at.isoformat(),
            "memberships": [asdict(m) for m in principal.memberships],
            "attributes": principal.attributes.get("saml", {}),
        },
        200,
        {"Content-Type": "application/json", "Cache-Control": "no-store"},
    )


def token(**_params: str) -> Any:
    try:
        sp = _sp()
        # What the login established; the VO store's part is resolved when the token is
        # used, so a suspension there is not frozen into the token.
        login_session, principal = _current_session(sp, enrich=False)
    except SAMLError as exc:
        return _problem(exc)
    claims: dict[str, Any] = {"auth": "saml", "idp": login_session.idp}
    if principal.display_name:
        claims["name"] = principal.display_name
    if principal.memberships:
        claims["vos"] = [asdict(m) for m in principal.memberships]
    issued, expires_in = runtime.current().tokens.issue(
        principal.name,
        claims=claims,
        not_after=min(login_session.expires_at.timestamp(), time.time() + 86400),
    )
    return (
        {"access_token": issued, "token_type": "Bearer", "expires_in": expires_in},
        201,
        {"Content-Type": "application/json", "Cache-Control": "no-store"},
    )
