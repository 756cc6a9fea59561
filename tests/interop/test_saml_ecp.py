"""ECP for command-line clients, against the pysaml2 IdP's SOAP endpoint (HTTP Basic
there): the PAOS conversation of SAML profiles §4.2, relaying every message byte for
byte, then the session exchanged for a gateway bearer token.

pysaml2's own ECP client (saml2.ecp_client) cannot be the client here: it re-serialises
the IdP's Response with new namespace prefixes before relaying it, which breaks any
exclusive-c14n signature; the gateway refuses that, and a test below shows it does."""

from __future__ import annotations

import base64
import copy
from collections.abc import Callable
from typing import Any

import pytest
import requests
from lxml import etree

pytestmark = pytest.mark.service

SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
PAOS = "urn:liberty:paos:2003-08"
ECP = "urn:oasis:names:tc:SAML:2.0:profiles:SSO:ecp"
ECP_HEADERS = {
    "Accept": "text/html; application/vnd.paos+xml",
    "PAOS": f'ver="{PAOS}";"{ECP}"',
}


def _envelope(body: etree._Element, *headers: etree._Element) -> bytes:
    envelope = etree.Element(f"{{{SOAP}}}Envelope", nsmap={"S": SOAP})
    if headers:
        header = etree.SubElement(envelope, f"{{{SOAP}}}Header")
        header.extend(headers)
    etree.SubElement(envelope, f"{{{SOAP}}}Body").append(body)
    return etree.tostring(envelope)


def ecp_login(
    world: Any,
    user: str = "alice",
    password: str = "wonderland",  # noqa: S107
    tamper: Callable[[etree._Element], None] = lambda _response: None,
) -> requests.Response:
    session = requests.Session()
    # 1. The SP's PAOS request.
    first = session.get(f"{world.gateway}/saml/ecp", headers=ECP_HEADERS, timeout=10)
    assert first.status_code == 200, first.text
    assert first.headers["Content-Type"] == "application/vnd.paos+xml"
    sp_envelope = etree.fromstring(first.content)
    consumer = sp_envelope.find(f"{{{SOAP}}}Header/{{{PAOS}}}Request").get("responseConsumerURL")
    relay = sp_envelope.find(f"{{{SOAP}}}Header/{{{ECP}}}RelayState")
    authn_request = sp_envelope.find(f"{{{SOAP}}}Body")[0]
    # 2. The AuthnRequest, without the SP's headers, to the IdP's SOAP endpoint.
    credentials = base64.b64encode(f"{user}:{password}".encode()).decode()
    at_idp = requests.post(
        f"{world.idp.base}/sso/ecp",
        data=_envelope(authn_request),
        headers={"Content-Type": "text/xml", "Authorization": f"Basic {credentials}"},
        timeout=30,
    )
    assert at_idp.status_code == 200, at_idp.text
    idp_envelope = etree.fromstring(at_idp.content)
    acs = idp_envelope.find(f"{{{SOAP}}}Header/{{{ECP}}}Response").get(
        "AssertionConsumerServiceURL"
    )
    assert acs == consumer  # the client's own check (profiles §4.2.4.5)
    response = idp_envelope.find(f"{{{SOAP}}}Body")[0]
    tamper(response)
    # 3. The IdP's Response, untouched, to the SP's PAOS consumer.
    return session.post(
        consumer,
        data=_envelope(response, copy.deepcopy(relay)),
        headers={"Content-Type": "application/vnd.paos+xml"},
        allow_redirects=False,
        timeout=10,
    )


def test_ecp_login_then_token(saml_world: Any) -> None:
    answer = ecp_login(saml_world)
    assert answer.status_code == 302, answer.text
    assert "xg_saml_session=" in answer.headers["Set-Cookie"]
    cookie = {"xg_saml_session": answer.cookies["xg_saml_session"]}
    me = requests.get(f"{saml_world.gateway}/saml/session", cookies=cookie, timeout=10).json()
    assert me["name"] == "alice@example.org"
    token = requests.post(f"{saml_world.gateway}/saml/token", cookies=cookie, timeout=10)
    assert token.status_code == 201, token.text
    whoami = requests.get(
        f"{saml_world.gateway}/api/v1/whoami",
        headers={"Authorization": f"Bearer {token.json()['access_token']}"},
        timeout=10,
    )
    assert whoami.json()["name"] == "alice@example.org"


def test_ecp_with_wrong_password_gets_nothing(saml_world: Any) -> None:
    with pytest.raises(AssertionError, match="401"):
        ecp_login(saml_world, password="wrong")


def test_pysaml2_ecp_client_relay_is_refused_as_altered(saml_world: Any) -> None:
    """pysaml2's ECP client re-serialises the signed Response; the signature no longer
    holds and the gateway says so (its own relay above, byte for byte, is accepted)."""
    from saml2 import SAMLError
    from saml2.ecp_client import Client

    from tests.interop.saml_idp import xmlsec1

    client = Client(
        "alice",
        "wonderland",
        sp=f"{saml_world.gateway}/saml/ecp",
        metadata_file=str(saml_world.directory / "federation.xml"),
        xmlsec_binary=xmlsec1(),
    )
    with pytest.raises(SAMLError, match="signature does not verify"):
        client.get(url=f"{saml_world.gateway}/saml/session", idp_entity_id=saml_world.idp.entity_id)


def test_ecp_endpoint_explains_itself_to_plain_clients(saml_world: Any) -> None:
    answer = requests.get(f"{saml_world.gateway}/saml/ecp", headers={"PAOS": "nothing"}, timeout=10)
    assert answer.status_code == 406
    assert "application/vnd.paos+xml" in answer.json()["detail"]


def test_ecp_consumer_refuses_a_forged_response(saml_world: Any) -> None:
    forged = etree.fromstring(
        b'<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" ID="_x" Version="2.0"/>'
    )
    answer = requests.post(
        f"{saml_world.gateway}/saml/ecp",
        data=_envelope(forged),
        headers={"Content-Type": "application/vnd.paos+xml"},
        allow_redirects=False,
        timeout=10,
    )
    assert answer.status_code == 403
    assert "Issuer" in answer.json()["detail"]


def test_ecp_response_with_two_signatures_is_refused(saml_world: Any) -> None:
    """#16.2: a 403 naming the ambiguity, not an uncaught SignatureError (500)."""

    def twice(response: etree._Element) -> None:
        assertion = response.find("{urn:oasis:names:tc:SAML:2.0:assertion}Assertion")
        signature = assertion.find("{http://www.w3.org/2000/09/xmldsig#}Signature")
        assertion.insert(assertion.index(signature) + 1, copy.deepcopy(signature))

    answer = ecp_login(saml_world, tamper=twice)
    assert answer.status_code == 403, answer.text
    assert "<Assertion> has 2 signatures" in answer.json()["detail"]
