"""SOAP 1.1 envelopes: reading one safely, writing responses and faults.

Parsing goes through :func:`gateway.xmlsafe.parse` (no DTD, no entities, no network, a
size bound), so a hostile document becomes an InvalidRequestMessage fault at the cost of
one cheap parse. Header entries marked ``mustUnderstand="1"`` that the gateway does not
process get the SOAP 1.1 MustUnderstand fault (§4.2.3), as the standard demands.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from lxml import etree

from gateway import xmlsafe
from gateway.bes.faults import BESFault
from gateway.bes.namespaces import q
from gateway.xmlns import SOAP12_ENV, SOAP_ENV, WSA, WSSE

UNDERSTOOD_HEADERS = (WSA, WSSE)
CONTENT_TYPE = "text/xml; charset=utf-8"


@dataclass(frozen=True)
class Envelope:
    header: etree._Element | None
    payload: etree._Element  # the one element in the Body

    def header_entries(self) -> list[etree._Element]:
        if self.header is None:
            return []
        return [e for e in self.header if isinstance(e.tag, str)]


def parse_envelope(data: bytes, *, max_bytes: int) -> Envelope:
    try:
        root = xmlsafe.parse(data, max_bytes=max_bytes)
    except xmlsafe.UnsafeXML as exc:
        raise BESFault(
            "InvalidRequestMessage",
            f"the request is not acceptable XML: {exc}",
            elements=["soap:Envelope"],
        ) from exc
    if root.tag == q(SOAP12_ENV, "Envelope"):
        raise BESFault(
            "",
            "this endpoint speaks SOAP 1.1 (http://schemas.xmlsoap.org/soap/envelope/)",
            code="VersionMismatch",
        )
    if root.tag != q(SOAP_ENV, "Envelope"):
        raise BESFault(
            "InvalidRequestMessage",
            f"the document element is {etree.QName(root).text}, not a SOAP 1.1 Envelope",
            elements=["soap:Envelope"],
        )
    children = [c for c in root if isinstance(c.tag, str)]
    header = next((c for c in children if c.tag == q(SOAP_ENV, "Header")), None)
    body = next((c for c in children if c.tag == q(SOAP_ENV, "Body")), None)
    if body is None:
        raise BESFault("InvalidRequestMessage", "the Envelope has no Body", elements=["soap:Body"])
    payload = [c for c in body if isinstance(c.tag, str)]
    if len(payload) != 1:
        raise BESFault(
            "InvalidRequestMessage",
            f"the Body must hold exactly one request element, it holds {len(payload)}",
            elements=["soap:Body"],
        )
    envelope = Envelope(header, payload[0])
    for entry in envelope.header_entries():
        must = entry.get(q(SOAP_ENV, "mustUnderstand"), "0").strip()
        namespace = etree.QName(entry).namespace
        if must in ("1", "true") and namespace not in UNDERSTOOD_HEADERS:
            raise BESFault(
                "",
                f"header {etree.QName(entry).text} is marked mustUnderstand and this "
                "endpoint does not process it",
                code="MustUnderstand",
            )
    return envelope


def envelope_bytes(body: Iterable[etree._Element], headers: Iterable[etree._Element] = ()) -> bytes:
    env = etree.Element(q(SOAP_ENV, "Envelope"), nsmap={"soap": SOAP_ENV})
    header_entries = list(headers)
    if header_entries:
        etree.SubElement(env, q(SOAP_ENV, "Header")).extend(header_entries)
    etree.SubElement(env, q(SOAP_ENV, "Body")).extend(body)
    return etree.tostring(env, xml_declaration=True, encoding="utf-8")
