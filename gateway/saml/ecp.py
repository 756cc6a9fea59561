"""SAML ECP (Enhanced Client or Proxy, SAML profiles §4.2) over PAOS, for command-line
clients that log in through their IdP without a browser.

1. The client asks the SP with ``Accept: application/vnd.paos+xml`` and a ``PAOS`` header;
   the SP answers a SOAP envelope: ``paos:Request`` (where to send the answer),
   ``ecp:Request`` and an AuthnRequest (ProtocolBinding PAOS) in the body.
2. The client sends the AuthnRequest to its IdP's SOAP endpoint with its own credentials.
3. The client posts the IdP's SOAP-wrapped Response to the SP's PAOS consumer, which
   checks it exactly like an HTTP-POST Response (gateway.saml.response) and answers with
   the session cookie.
"""

from __future__ import annotations

from lxml import etree

from gateway import xmlsafe
from gateway.saml import dsig, protocol
from gateway.saml.namespaces import BINDING_PAOS, SAML, SAMLP, q
from gateway.saml.response import ResponseRejected
from gateway.xmlns import SOAP_ENV

PAOS = "urn:liberty:paos:2003-08"
ECP = "urn:oasis:names:tc:SAML:2.0:profiles:SSO:ecp"
MIME_PAOS = "application/vnd.paos+xml"
ACTOR = "http://schemas.xmlsoap.org/soap/actor/next"


def client_speaks_paos(accept: str, paos_header: str) -> bool:
    """The client announced ECP (profiles §4.2.3.1): PAOS media type and service."""
    return MIME_PAOS in accept and PAOS in paos_header and ECP in paos_header


def authn_request_envelope(
    request_id: str,
    sp_entity_id: str,
    consumer_url: str,
    provider_name: str,
    signing: tuple[bytes, bytes] | None,
) -> bytes:
    """The SP's first answer: the SOAP envelope with PAOS/ECP headers and AuthnRequest."""
    envelope = etree.Element(q(SOAP_ENV, "Envelope"), nsmap={"S": SOAP_ENV})
    header = etree.SubElement(envelope, q(SOAP_ENV, "Header"))
    etree.SubElement(
        header,
        q(PAOS, "Request"),
        {
            q(SOAP_ENV, "mustUnderstand"): "1",
            q(SOAP_ENV, "actor"): ACTOR,
            "responseConsumerURL": consumer_url,
            "service": ECP,
        },
        nsmap={"paos": PAOS},
    )
    ecp_request = etree.SubElement(
        header,
        q(ECP, "Request"),
        {
            q(SOAP_ENV, "mustUnderstand"): "1",
            q(SOAP_ENV, "actor"): ACTOR,
            "IsPassive": "0",
            "ProviderName": provider_name,
        },
        nsmap={"ecp": ECP},
    )
    etree.SubElement(ecp_request, q(SAML, "Issuer"), nsmap={"saml": SAML}).text = sp_entity_id
    # Optional in the profile, but clients (pysaml2's) expect one to echo back.
    etree.SubElement(
        header,
        q(ECP, "RelayState"),
        {q(SOAP_ENV, "mustUnderstand"): "1", q(SOAP_ENV, "actor"): ACTOR},
        nsmap={"ecp": ECP},
    ).text = request_id
    body = etree.SubElement(envelope, q(SOAP_ENV, "Body"))
    request = protocol.authn_request(
        sp_entity_id, request_id, consumer_url, BINDING_PAOS, parent=body
    )
    if signing is not None:  # the SOAP binding has no query signature: sign the XML
        dsig.sign(request, signing[0], signing[1], index=1)
    return etree.tostring(envelope, xml_declaration=True, encoding="UTF-8")


def response_from_envelope(data: bytes) -> bytes:
    """The samlp:Response the client relays from its IdP, as its own document."""
    try:
        envelope = xmlsafe.parse(data, max_bytes=512 * 1024)
    except xmlsafe.UnsafeXML as exc:
        raise ResponseRejected(f"PAOS message refused: {exc}") from exc
    if envelope.tag != q(SOAP_ENV, "Envelope"):
        raise ResponseRejected(f"expected a SOAP 1.1 Envelope, got {envelope.tag}")
    body = envelope.find(q(SOAP_ENV, "Body"))
    children = [c for c in body if isinstance(c.tag, str)] if body is not None else []
    if len(children) != 1 or children[0].tag != q(SAMLP, "Response"):
        raise ResponseRejected("the SOAP Body must hold exactly one samlp:Response")
    # Serialised on its own (with the namespaces in scope) and checked like any POSTed
    # Response; exclusive c14n makes the signature independent of the envelope.
    return etree.tostring(children[0])
