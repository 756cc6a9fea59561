"""The SP's own metadata (SAML metadata §2.4.4 SPSSODescriptor), regenerated from the
configuration and signed, for federations and IdPs to register."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from lxml import etree

from gateway.saml import dsig, protocol
from gateway.saml.attributes import OID_OF
from gateway.saml.keys import KeyPair
from gateway.saml.namespaces import (
    ATTRNAME_URI,
    BINDING_PAOS,
    BINDING_POST,
    BINDING_REDIRECT,
    DS,
    IDPDISC,
    MD,
    MDUI,
    NAMEID_PERSISTENT,
    NAMEID_TRANSIENT,
    PROTOCOL,
    q,
)
from gateway.saml.timeutil import format_datetime


@dataclass(frozen=True)
class SPEndpoints:
    entity_id: str
    acs: str
    slo: str
    ecp_acs: str
    discovery_response: str


def build(
    endpoints: SPEndpoints,
    signing: KeyPair,
    encryption: KeyPair,
    *,
    want_assertions_signed: bool,
    authn_requests_signed: bool,
    requested_attributes: list[str],
    display_name: str,
    organization_url: str,
    contact_email: str,
    validity_seconds: int,
) -> bytes:
    """Signed metadata as bytes (UTF-8, with XML declaration)."""
    nsmap = {"md": MD, "ds": DS, "mdui": MDUI, "idpdisc": IDPDISC}
    until = datetime.now(UTC) + timedelta(seconds=validity_seconds)
    entity = etree.Element(
        q(MD, "EntityDescriptor"),
        nsmap=nsmap,
        entityID=endpoints.entity_id,
        ID=protocol.new_id(),
        validUntil=format_datetime(until),
    )
    sp = etree.SubElement(
        entity,
        q(MD, "SPSSODescriptor"),
        protocolSupportEnumeration=PROTOCOL,
        AuthnRequestsSigned="true" if authn_requests_signed else "false",
        WantAssertionsSigned="true" if want_assertions_signed else "false",
    )
    extensions = etree.SubElement(sp, q(MD, "Extensions"))
    etree.SubElement(
        extensions,
        q(IDPDISC, "DiscoveryResponse"),
        Binding=IDPDISC,
        Location=endpoints.discovery_response,
        index="1",
    )
    ui = etree.SubElement(extensions, q(MDUI, "UIInfo"))
    name = etree.SubElement(ui, q(MDUI, "DisplayName"))
    name.set("{http://www.w3.org/XML/1998/namespace}lang", "en")
    name.text = display_name
    for use, pair in (("signing", signing), ("encryption", encryption)):
        descriptor = etree.SubElement(sp, q(MD, "KeyDescriptor"), use=use)
        info = etree.SubElement(descriptor, q(DS, "KeyInfo"))
        data = etree.SubElement(info, q(DS, "X509Data"))
        etree.SubElement(data, q(DS, "X509Certificate")).text = pair.cert_base64
        if use == "encryption":
            for algorithm in (
                "http://www.w3.org/2009/xmlenc11#aes256-gcm",
                "http://www.w3.org/2009/xmlenc11#aes128-gcm",
                "http://www.w3.org/2001/04/xmlenc#aes256-cbc",
                "http://www.w3.org/2001/04/xmlenc#aes128-cbc",
                "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p",
            ):
                etree.SubElement(descriptor, q(MD, "EncryptionMethod"), Algorithm=algorithm)
    etree.SubElement(
        sp, q(MD, "SingleLogoutService"), Binding=BINDING_REDIRECT, Location=endpoints.slo
    )
    for fmt in (NAMEID_PERSISTENT, NAMEID_TRANSIENT):
        etree.SubElement(sp, q(MD, "NameIDFormat")).text = fmt
    etree.SubElement(
        sp,
        q(MD, "AssertionConsumerService"),
        Binding=BINDING_POST,
        Location=endpoints.acs,
        index="0",
        isDefault="true",
    )
    etree.SubElement(
        sp,
        q(MD, "AssertionConsumerService"),
        Binding=BINDING_PAOS,
        Location=endpoints.ecp_acs,
        index="1",
    )
    if requested_attributes:
        service = etree.SubElement(sp, q(MD, "AttributeConsumingService"), index="0")
        label = etree.SubElement(service, q(MD, "ServiceName"))
        label.set("{http://www.w3.org/XML/1998/namespace}lang", "en")
        label.text = display_name
        for attribute in requested_attributes:
            etree.SubElement(
                service,
                q(MD, "RequestedAttribute"),
                Name=OID_OF.get(attribute, attribute),
                FriendlyName=attribute,
                NameFormat=ATTRNAME_URI,
                isRequired="false",
            )
    organization = etree.SubElement(entity, q(MD, "Organization"))
    for tag, text in (
        ("OrganizationName", display_name),
        ("OrganizationDisplayName", display_name),
        ("OrganizationURL", organization_url or endpoints.entity_id),
    ):
        node = etree.SubElement(organization, q(MD, tag))
        node.set("{http://www.w3.org/XML/1998/namespace}lang", "en")
        node.text = text
    if contact_email:
        contact = etree.SubElement(entity, q(MD, "ContactPerson"), contactType="technical")
        etree.SubElement(contact, q(MD, "EmailAddress")).text = "mailto:" + contact_email
    dsig.sign(entity, signing.key_pem, signing.cert_pem, index=0)
    return etree.tostring(entity, xml_declaration=True, encoding="UTF-8")
