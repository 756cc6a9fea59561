"""SAML attributes by the names the gateway uses: the standard eduPerson / SAML
subject-id OIDs (and their FriendlyNames), extended or overridden by ``saml.attribute_map``."""

from __future__ import annotations

from collections.abc import Mapping

from lxml import etree

from gateway.saml.namespaces import SAML, q

# Attribute Name (urn:oid, as REFEDS / eduPerson / SAML Subject-ID define them) -> name.
STANDARD = {
    "urn:oasis:names:tc:SAML:attribute:subject-id": "subject-id",
    "urn:oasis:names:tc:SAML:attribute:pairwise-id": "pairwise-id",
    "urn:oid:1.3.6.1.4.1.5923.1.1.1.6": "eduPersonPrincipalName",
    "urn:oid:1.3.6.1.4.1.5923.1.1.1.7": "eduPersonEntitlement",
    "urn:oid:1.3.6.1.4.1.5923.1.1.1.9": "eduPersonScopedAffiliation",
    "urn:oid:1.3.6.1.4.1.5923.1.1.1.1": "eduPersonAffiliation",
    "urn:oid:1.3.6.1.4.1.5923.1.1.1.10": "eduPersonTargetedID",
    "urn:oid:1.3.6.1.4.1.5923.1.1.1.13": "eduPersonUniqueId",
    "urn:oid:2.16.840.1.113730.3.1.241": "displayName",
    "urn:oid:0.9.2342.19200300.100.1.3": "mail",
    "urn:oid:2.5.4.42": "givenName",
    "urn:oid:2.5.4.4": "sn",
    "urn:oid:2.5.4.3": "cn",
    "urn:oid:0.9.2342.19200300.100.1.1": "uid",
    "urn:oid:1.3.6.1.4.1.25178.1.2.9": "schacHomeOrganization",
}
FRIENDLY = {name: name for name in STANDARD.values()}
OID_OF = {name: oid for oid, name in STANDARD.items()}


class AttributeMap:
    """Turns an AttributeStatement into ``{name: [values]}``; unknown attributes keep
    their SAML Name, so nothing is silently lost."""

    def __init__(self, extra: Mapping[str, str] | None = None) -> None:
        self._map = {**STANDARD, **FRIENDLY, **(extra or {})}

    def name_of(self, attribute: etree._Element) -> str:
        name = attribute.get("Name", "")
        return self._map.get(name) or self._map.get(attribute.get("FriendlyName", ""), name)

    def read(self, assertion: etree._Element) -> dict[str, list[str]]:
        values: dict[str, list[str]] = {}
        for statement in assertion.iterchildren(q(SAML, "AttributeStatement")):
            for attribute in statement.iterchildren(q(SAML, "Attribute")):
                bucket = values.setdefault(self.name_of(attribute), [])
                for value in attribute.iterchildren(q(SAML, "AttributeValue")):
                    bucket.append(element_text(value))
        return values


def element_text(element: etree._Element) -> str:
    """All the character data of an element from the parsed tree: comments and
    processing instructions inside are skipped, never treated as the end of the value
    (``user@evil.org<!---->.good.org`` reads as ``user@evil.org.good.org``)."""
    if len(element) == 0:  # no child at all (comments and PIs count): .text is all of it
        return (element.text or "").strip()
    return "".join(element.itertext()).strip()
