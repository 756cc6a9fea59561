"""Web Browser SSO against a real IdP (pysaml2), driven over real HTTP like a browser:
redirect to the IdP, post its login form, take the auto-submit form's SAMLResponse and
post it to the gateway's ACS."""

from __future__ import annotations

import re
import urllib.parse
from typing import Any

import pytest
import requests
from sqlalchemy import func, select

from backends.store.tables.saml import SAMLSession

pytestmark = pytest.mark.service


def idp_response(
    world: Any,
    user: str = "alice",
    password: str = "wonderland",  # noqa: S107
    **options: Any,
) -> tuple[requests.Session, dict[str, str]]:
    """Start login at the gateway, log in at the IdP; the form the IdP auto-submits."""
    world.idp.options.clear()
    world.idp.options.update(options)
    browser = requests.Session()
    start = browser.get(
        f"{world.gateway}/saml/login",
        params={"idp": world.idp.entity_id, "return_to": "/saml/session"},
        allow_redirects=False,
        timeout=10,
    )
    assert start.status_code == 303, start.text
    login_page = browser.get(start.headers["Location"], timeout=10)
    assert login_page.status_code == 200, login_page.text
    fields = dict(re.findall(r'name="(\w+)" value="([^"]*)"', login_page.text))
    answer = browser.post(
        f"{world.idp.base}/login",
        data={
            **{k: _unescape(v) for k, v in fields.items()},
            "username": user,
            "password": password,
        },
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    action = re.search(r'action="([^"]+)"', answer.text).group(1)
    form = dict(re.findall(r'name="(\w+)" value="([^"]*)"', answer.text))
    assert _unescape(action) == f"{world.gateway}/saml/acs"
    return browser, {k: _unescape(v) for k, v in form.items()}


def _unescape(value: str) -> str:
    import html

    return html.unescape(value)


def sessions(world: Any) -> int:
    with world.runtime.db.session() as session:
        return session.scalar(select(func.count()).select_from(SAMLSession))


def test_sp_metadata_is_signed_and_complete(saml_world: Any) -> None:
    from gateway import xmlsafe
    from gateway.saml import dsig
    from gateway.saml.namespaces import MD, q

    answer = requests.get(f"{saml_world.gateway}/saml/metadata", timeout=10)
    assert answer.headers["Content-Type"] == "application/samlmetadata+xml"
    root = xmlsafe.parse(answer.content)
    cert = saml_world.sp.signing.cert_pem
    assert dsig.verify(root, [dsig.key_from_cert(cert)]) is root
    sp = root.find(q(MD, "SPSSODescriptor"))
    uses = sorted(k.get("use") for k in sp.iter(q(MD, "KeyDescriptor")))
    assert uses == ["encryption", "signing"]
    acs = sp.find(q(MD, "AssertionConsumerService"))
    assert acs.get("Location") == f"{saml_world.gateway}/saml/acs"
    assert sp.find(q(MD, "SingleLogoutService")).get("Location") == f"{saml_world.gateway}/saml/slo"
    names = {r.get("FriendlyName") for r in sp.iter(q(MD, "RequestedAttribute"))}
    assert {"eduPersonPrincipalName", "eduPersonEntitlement"} <= names


@pytest.mark.parametrize(
    "options",
    [
        {"sign_assertion": True},
        {"sign_assertion": True, "sign_response": True},
        {"sign_assertion": True, "encrypt_assertion": True},
    ],
    ids=["assertion-signed", "both-signed", "encrypted"],
)
def test_redirect_post_sso_logs_in_and_gives_a_token(saml_world: Any, options: dict) -> None:
    browser, form = idp_response(saml_world, **options)
    assert saml_world.idp.options["seen_signed_request"]  # the IdP wants signed requests
    before = sessions(saml_world)
    answer = browser.post(
        f"{saml_world.gateway}/saml/acs", data=form, allow_redirects=False, timeout=10
    )
    assert answer.status_code == 303, answer.text
    assert answer.headers["Location"] == "/saml/session"
    cookie = answer.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert sessions(saml_world) == before + 1

    me = browser.get(f"{saml_world.gateway}/saml/session", timeout=10).json()
    assert me["name"] == "alice@example.org"
    assert me["display_name"] == "Alice Liddell"
    assert me["idp"] == saml_world.idp.entity_id
    vos = {(m["vo"], m["group"], tuple(m["roles"])) for m in me["memberships"]}
    assert ("fusion", "", ("admin",)) in vos
    assert ("fusion", "ws1", ()) in vos
    assert ("example.org", "", ("member", "staff")) in vos

    token = browser.post(f"{saml_world.gateway}/saml/token", timeout=10)
    assert token.status_code == 201, token.text
    whoami = requests.get(
        f"{saml_world.gateway}/api/v1/whoami",
        headers={"Authorization": f"Bearer {token.json()['access_token']}"},
        timeout=10,
    )
    assert whoami.json()["name"] == "alice@example.org"
    assert whoami.json()["authenticated_by"] == "bearer"
    # the same VOs as the login gave (the IdP's trusted entitlements), for API clients too
    by_token = {(m["vo"], m["group"], tuple(m["roles"])) for m in whoami.json()["memberships"]}
    assert {("fusion", "", ("admin",)), ("fusion", "ws1", ())} <= by_token
    # The session cookie itself is a credential of the chain (portal pages).
    by_cookie = browser.get(f"{saml_world.gateway}/api/v1/whoami", timeout=10)
    assert by_cookie.status_code == 200, by_cookie.text
    assert by_cookie.json()["authenticated_by"] == "saml"


def test_sp_initiated_single_logout(saml_world: Any) -> None:
    browser, form = idp_response(saml_world)
    browser.post(f"{saml_world.gateway}/saml/acs", data=form, allow_redirects=False, timeout=10)
    count = sessions(saml_world)
    out = browser.get(f"{saml_world.gateway}/saml/logout", allow_redirects=False, timeout=10)
    assert out.status_code == 303
    assert out.headers["Location"].startswith(f"{saml_world.idp.base}/slo/redirect?SAMLRequest=")
    assert "Signature=" in out.headers["Location"]
    assert sessions(saml_world) == count - 1
    # The IdP (pysaml2) accepts our LogoutRequest and answers with a signed response.
    at_idp = browser.get(out.headers["Location"], allow_redirects=False, timeout=10)
    assert at_idp.status_code == 303, at_idp.text
    back = browser.get(at_idp.headers["Location"], allow_redirects=False, timeout=10)
    assert back.status_code == 303, back.text
    assert browser.get(f"{saml_world.gateway}/saml/session", timeout=10).status_code == 401


def test_idp_initiated_single_logout_ends_the_session(saml_world: Any) -> None:
    from saml2 import BINDING_HTTP_REDIRECT
    from saml2.saml import NAMEID_FORMAT_TRANSIENT, NameID
    from saml2.xmldsig import SIG_RSA_SHA256

    browser, form = idp_response(saml_world)
    browser.post(f"{saml_world.gateway}/saml/acs", data=form, allow_redirects=False, timeout=10)
    assert browser.get(f"{saml_world.gateway}/saml/session", timeout=10).status_code == 200
    server = saml_world.idp.server
    _id, request = server.create_logout_request(
        f"{saml_world.gateway}/saml/slo",
        saml_world.sp.entity_id,
        name_id=NameID(format=NAMEID_FORMAT_TRANSIENT, text="_alice-transient"),
    )
    http_args = server.apply_binding(
        BINDING_HTTP_REDIRECT,
        str(request),
        f"{saml_world.gateway}/saml/slo",
        "rs1",
        sign=True,
        sigalg=SIG_RSA_SHA256,
    )
    location = dict(http_args["headers"])["Location"]
    answer = requests.get(location, allow_redirects=False, timeout=10)
    assert answer.status_code == 303, answer.text
    assert answer.headers["Location"].startswith(
        f"{saml_world.idp.base}/slo/redirect?SAMLResponse="
    )
    # pysaml2 accepts our LogoutResponse, signature included.
    from urllib.parse import parse_qsl, urlsplit

    back = dict(parse_qsl(urlsplit(answer.headers["Location"]).query))
    from saml2.sigver import verify_redirect_signature

    sp_cert = saml_world.sp.signing.cert_base64
    assert verify_redirect_signature(back, server.sec.sec_backend, cert=sp_cert)
    logout = server.parse_logout_request_response(back["SAMLResponse"], BINDING_HTTP_REDIRECT)
    assert logout.status_ok()
    assert logout.response.in_response_to == request.id
    assert browser.get(f"{saml_world.gateway}/saml/session", timeout=10).status_code == 401
    # Unsigned, the same request is refused.
    unsigned = server.apply_binding(
        BINDING_HTTP_REDIRECT, str(request), f"{saml_world.gateway}/saml/slo", "rs1"
    )
    refused = requests.get(dict(unsigned["headers"])["Location"], allow_redirects=False, timeout=10)
    assert refused.status_code == 403
    assert "not signed" in refused.json()["detail"]


def test_login_names_unknown_idp(saml_world: Any) -> None:
    answer = requests.get(
        f"{saml_world.gateway}/saml/login",
        params={"idp": "https://nowhere.example/idp"},
        allow_redirects=False,
        timeout=10,
    )
    assert answer.status_code == 404
    assert "not an identity provider" in answer.json()["detail"]


def test_open_redirect_is_not_possible(saml_world: Any) -> None:
    from gateway.saml.sp import safe_return_to

    assert safe_return_to("https://evil.example/") == "/saml/session"
    assert safe_return_to("//evil.example/") == "/saml/session"
    assert safe_return_to("/portal/vms") == "/portal/vms"
    assert urllib.parse.quote("/") == "/"


def test_discovery_searches_by_name_and_remembers_the_choice(saml_world: Any) -> None:
    browser = requests.Session()
    page = browser.get(
        f"{saml_world.gateway}/saml/discovery",
        params={"q": "example university", "return_to": "/portal/"},
        timeout=10,
    )
    assert page.status_code == 200
    assert "Example University" in page.text
    link = re.search(r"class='idp' href='([^']+)'", page.text).group(1)
    start = browser.get(f"{saml_world.gateway}{_unescape(link)}", allow_redirects=False, timeout=10)
    assert start.status_code == 303
    assert start.headers["Location"].startswith(f"{saml_world.idp.base}/sso/redirect?")
    again = browser.get(f"{saml_world.gateway}/saml/discovery", timeout=10)
    assert "id='last-idp'" in again.text
    nothing = browser.get(f"{saml_world.gateway}/saml/discovery", params={"q": "zzz"}, timeout=10)
    assert "No institution matches" in nothing.text


def test_discovery_protocol_passive_and_return_checks(saml_world: Any) -> None:
    browser = requests.Session()
    browser.get(
        f"{saml_world.gateway}/saml/login",
        params={"idp": saml_world.idp.entity_id},
        allow_redirects=False,
        timeout=10,
    )
    own = f"{saml_world.gateway}/saml/login"
    passive = browser.get(
        f"{saml_world.gateway}/saml/discovery",
        params={"entityID": saml_world.sp.entity_id, "return": own, "isPassive": "true"},
        allow_redirects=False,
        timeout=10,
    )
    assert passive.status_code == 303
    assert passive.headers["Location"] == own + "?" + urllib.parse.urlencode(
        {"entityID": saml_world.idp.entity_id}
    )
    elsewhere = browser.get(
        f"{saml_world.gateway}/saml/discovery",
        params={"return": "https://evil.example/collect", "isPassive": "true"},
        allow_redirects=False,
        timeout=10,
    )
    assert elsewhere.status_code == 400
    assert "DiscoveryResponse" in elsewhere.json()["detail"]


def test_portal_sends_strangers_to_discovery_and_shows_vos_after_login(saml_world: Any) -> None:
    stranger = requests.get(f"{saml_world.gateway}/portal/", allow_redirects=False, timeout=10)
    assert stranger.status_code == 303
    assert stranger.headers["Location"].startswith("/saml/discovery?")
    browser, form = idp_response(saml_world)
    browser.post(f"{saml_world.gateway}/saml/acs", data=form, allow_redirects=False, timeout=10)
    page = browser.get(f"{saml_world.gateway}/portal/", timeout=10)
    assert page.status_code == 200
    assert "Alice Liddell" in page.text
    assert page.text.count("<tr class='vo'>") == 3
    assert "<td>fusion</td><td>/</td><td>admin</td>" in page.text


# -- #16.2 / #16.3: where the browser goes back to ------------------------------------
@pytest.mark.parametrize(
    "return_to",
    [
        "/\t/evil.example/",  # /%09/evil.example/: browsers drop the tab, then //evil
        "/\n/evil.example/",
        "/portal/\r\nSet-Cookie: xg_saml_session=planted",
        "/\\evil.example/",
        " //evil.example/",
        "/portal/\u00e9t\u00e9",
        "/elsewhere/not-a-gateway-page",
        "https://evil.example/",
    ],
    ids=["tab", "newline", "crlf", "backslash", "space", "non-ascii", "foreign-path", "url"],
)
def test_login_refuses_a_return_to_that_is_no_page_of_this_gateway(
    saml_world: Any, return_to: str
) -> None:
    from gateway.saml.sp import safe_return_to

    answer = requests.get(
        f"{saml_world.gateway}/saml/login",
        params={"idp": saml_world.idp.entity_id, "return_to": return_to},
        allow_redirects=False,
        timeout=10,
    )
    assert answer.status_code == 400, answer.text
    assert "return_to" in answer.json()["detail"]
    assert "Location" not in answer.headers
    discovery = requests.get(
        f"{saml_world.gateway}/saml/discovery", params={"return_to": return_to}, timeout=10
    )
    assert discovery.status_code == 400, discovery.text
    # An unsolicited Response's RelayState goes to the session page instead.
    assert safe_return_to(return_to) == "/saml/session"
    assert safe_return_to("/portal/vms?x=1") == "/portal/vms?x=1"


def test_discovery_return_with_crlf_is_refused(saml_world: Any) -> None:
    own = f"{saml_world.gateway}/saml/login"
    answer = requests.get(
        f"{saml_world.gateway}/saml/discovery",
        params={"return": own + "?x=1\r\nSet-Cookie: a=b", "isPassive": "true"},
        allow_redirects=False,
        timeout=10,
    )
    assert answer.status_code == 400, answer.text
    assert "control" in answer.json()["detail"]


# -- #16.5: the Response must come back to the browser that asked for it ---------------
def test_a_response_posted_by_another_browser_is_refused(saml_world: Any) -> None:
    """Login CSRF: the attacker's own Response, auto-posted from the victim's browser."""
    attacker, form = idp_response(saml_world)
    assert any(c.name.startswith("xg_saml_rq_") for c in attacker.cookies)
    before = sessions(saml_world)
    victim = requests.Session()
    answer = victim.post(
        f"{saml_world.gateway}/saml/acs", data=form, allow_redirects=False, timeout=10
    )
    assert answer.status_code == 403, answer.text
    assert "not started by this browser" in answer.json()["detail"]
    assert "Set-Cookie" not in answer.headers
    assert sessions(saml_world) == before


def test_the_request_cookie_is_bound_and_spent(saml_world: Any) -> None:
    start = requests.get(
        f"{saml_world.gateway}/saml/login",
        params={"idp": saml_world.idp.entity_id},
        allow_redirects=False,
        timeout=10,
    )
    cookie = next(c for c in start.cookies if c.name.startswith("xg_saml_rq_"))
    assert cookie.path == "/saml/" and cookie.has_nonstandard_attr("HttpOnly")
    browser, form = idp_response(saml_world)
    answer = browser.post(
        f"{saml_world.gateway}/saml/acs", data=form, allow_redirects=False, timeout=10
    )
    assert answer.status_code == 303, answer.text
    assert not any(c.name.startswith("xg_saml_rq_") for c in browser.cookies)


# -- #16.4: single logout --------------------------------------------------------------
def _idp_logout_query(world: Any, *, name_id: str = "_alice-transient", **header: str) -> str:
    """A LogoutRequest from the IdP, redirect-signed with its key: the query string."""
    from cryptography.hazmat.primitives import serialization
    from lxml import etree

    from gateway.saml import binding, protocol
    from gateway.saml.namespaces import SAML, q

    destination = header.pop("destination", f"{world.gateway}/saml/slo")
    request = protocol.message(
        "LogoutRequest", world.idp.entity_id, destination=destination or None
    )
    for name, value in header.items():
        request.set(name, value)
    etree.SubElement(
        request,
        q(SAML, "NameID"),
        Format="urn:oasis:names:tc:SAML:2.0:nameid-format:transient",
    ).text = name_id
    key = serialization.load_pem_private_key(world.idp.key.read_bytes(), password=None)
    url = binding.encode(
        f"{world.gateway}/saml/slo", "SAMLRequest", etree.tostring(request), signing_key=key
    )
    return url.split("?", 1)[1]


def _logged_in(world: Any) -> requests.Session:
    browser, form = idp_response(world)
    answer = browser.post(f"{world.gateway}/saml/acs", data=form, allow_redirects=False, timeout=10)
    assert answer.status_code == 303, answer.text
    return browser


def _slo(world: Any, query: str) -> requests.Response:
    return requests.get(f"{world.gateway}/saml/slo?{query}", allow_redirects=False, timeout=10)


def _refusal_logged(caplog: pytest.LogCaptureFixture, words: str) -> None:
    logged = [r.getMessage() for r in caplog.records if r.name == "xtreemgate.saml"]
    assert any("single logout refused" in m and words in m for m in logged), logged


def test_logout_request_given_twice_is_refused(
    saml_world: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """An unsigned request for the victim first, a validly signed one (for someone
    else) last: read from one and verified on the other, it would end her session."""
    import logging

    from gateway.saml import binding, protocol

    caplog.set_level(logging.INFO, logger="xtreemgate.saml")
    victim = _logged_in(saml_world)
    signed = _idp_logout_query(saml_world, name_id="_someone-else")
    forged = protocol.message(
        "LogoutRequest", saml_world.idp.entity_id, destination=f"{saml_world.gateway}/saml/slo"
    )
    from lxml import etree

    from gateway.saml.namespaces import SAML, q

    etree.SubElement(forged, q(SAML, "NameID")).text = "_alice-transient"
    first = urllib.parse.urlencode({"SAMLRequest": binding.deflate(etree.tostring(forged))})
    answer = _slo(saml_world, f"{first}&{signed}")
    assert answer.status_code == 400, answer.text
    assert "SAMLRequest parameter is given more than once" in answer.json()["detail"]
    _refusal_logged(caplog, "more than once")
    assert victim.get(f"{saml_world.gateway}/saml/session", timeout=10).status_code == 200


def test_signed_logout_request_is_fresh_once_and_for_this_slo(
    saml_world: Any, caplog: pytest.LogCaptureFixture
) -> None:
    import logging
    from datetime import UTC, datetime, timedelta

    caplog.set_level(logging.INFO, logger="xtreemgate.saml")
    browser = _logged_in(saml_world)
    stale = (datetime.now(UTC) - timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    cases = [
        (_idp_logout_query(saml_world, IssueInstant=stale), 400, "older than"),
        (_idp_logout_query(saml_world, destination=""), 400, "Destination None"),
    ]
    for query, status, words in cases:
        answer = _slo(saml_world, query)
        assert answer.status_code == status, answer.text
        assert words in answer.json()["detail"]
        _refusal_logged(caplog, words)
        assert browser.get(f"{saml_world.gateway}/saml/session", timeout=10).status_code == 200
    fresh = _idp_logout_query(saml_world)
    assert _slo(saml_world, fresh).status_code == 303
    assert browser.get(f"{saml_world.gateway}/saml/session", timeout=10).status_code == 401
    again_browser = _logged_in(saml_world)
    replayed = _slo(saml_world, fresh)
    assert replayed.status_code == 403, replayed.text
    assert "already used (replay)" in replayed.json()["detail"]
    _refusal_logged(caplog, "replay")
    assert again_browser.get(f"{saml_world.gateway}/saml/session", timeout=10).status_code == 200


def test_after_logout_the_browser_lands_on_a_page(saml_world: Any) -> None:
    browser = _logged_in(saml_world)
    out = browser.get(f"{saml_world.gateway}/saml/logout", allow_redirects=False, timeout=10)
    at_idp = browser.get(out.headers["Location"], allow_redirects=False, timeout=10)
    back = browser.get(at_idp.headers["Location"], allow_redirects=False, timeout=10)
    assert back.status_code == 303, back.text
    landing = browser.get(f"{saml_world.gateway}{back.headers['Location']}", timeout=10)
    assert landing.status_code == 200, landing.text
    assert "Log in with your institution" in landing.text
    # Without a session (or an IdP SLO endpoint) the same page.
    again = browser.get(f"{saml_world.gateway}/saml/logout", allow_redirects=False, timeout=10)
    assert again.headers["Location"] == back.headers["Location"]
