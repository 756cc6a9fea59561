"""The SAML 2.0 protocol messages the SP sends (SAML core §3.2): every request and
response starts with the same header — ID, Version, IssueInstant, an optional
Destination and the saml:Issuer — so it is built here once, for the browser SSO and ECP
AuthnRequests and the single-logout request and response alike."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

from lxml import etree

from gateway.saml.namespaces import SAML, SAMLP, q
from gateway.saml.timeutil import format_datetime

NSMAP = {"samlp": SAMLP, "saml": SAML}


def new_id() -> str:
    """A SAML ID (xsd:ID: must not start with a digit), 128 random bits."""
    return "_" + secrets.token_hex(16)


def message(
    name: str,
    issuer: str,
    *,
    message_id: str = "",
    destination: str | None = None,
    parent: etree._Element | None = None,
    **attributes: str,
) -> etree._Element:
    """``samlp:<name>`` with the common header and its issuer; ``attributes`` follow it
    (AssertionConsumerServiceURL, InResponseTo, ...). A child of ``parent`` if given."""
    header = {
        "ID": message_id or new_id(),
        "Version": "2.0",
        "IssueInstant": format_datetime(datetime.now(UTC)),
    }
    if destination is not None:
        header["Destination"] = destination
    header.update(attributes)
    tag = q(SAMLP, name)
    if parent is None:
        element = etree.Element(tag, header, nsmap=NSMAP)
    else:
        element = etree.SubElement(parent, tag, header, nsmap=NSMAP)
    etree.SubElement(element, q(SAML, "Issuer")).text = issuer
    return element


def authn_request(
    issuer: str,
    request_id: str,
    consumer_url: str,
    protocol_binding: str,
    *,
    destination: str | None = None,
    parent: etree._Element | None = None,
) -> etree._Element:
    """An AuthnRequest asking for the answer at ``consumer_url`` over
    ``protocol_binding``, letting the IdP create the user's name identifier."""
    request = message(
        "AuthnRequest",
        issuer,
        message_id=request_id,
        destination=destination,
        parent=parent,
        AssertionConsumerServiceURL=consumer_url,
        ProtocolBinding=protocol_binding,
    )
    etree.SubElement(request, q(SAMLP, "NameIDPolicy"), AllowCreate="true")
    return request
