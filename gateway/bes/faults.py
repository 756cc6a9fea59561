"""BES faults: the standard's fault elements with details a person can act on.

Unknown activity ids: the WSDL names the fault ``InvalidActivityIdentifierFault``, while
deployed servers (ARC) sent ``UnknownActivityIdentifierFault``. The gateway puts BOTH in
the detail, WSDL name first: a WSDL-driven client (zeep, JSAGA) matches the first, a
client written against ARC finds the second, and the document still validates against
the official schema (detail content is lax).
"""

from __future__ import annotations

from collections.abc import Sequence

from lxml import etree

from gateway.bes.namespaces import BES, XG, q
from gateway.xmlns import SOAP_ENV

CLIENT = "Client"
SERVER = "Server"


class BESFault(Exception):
    """A fault to answer with. ``name`` is the BES fault without the 'Fault' suffix
    (NotAuthorized, …); an empty name is a plain SOAP fault without a BES detail."""

    def __init__(
        self,
        name: str,
        message: str,
        *,
        code: str = CLIENT,
        elements: Sequence[str] = (),
        features: Sequence[str] = (),
        state: str = "",
        http_status: int = 500,
    ) -> None:
        super().__init__(message)
        self.name = name
        self.message = message
        self.code = code
        self.elements = tuple(elements)
        self.features = tuple(features)
        self.state = state
        self.http_status = http_status

    def detail_elements(self) -> list[etree._Element]:
        """The children of the SOAP fault's ``detail`` (empty for a plain SOAP fault)."""
        if not self.name:
            return []
        if self.name in ("UnknownActivityIdentifier", "InvalidActivityIdentifier"):
            found = []
            for name in ("InvalidActivityIdentifierFault", "UnknownActivityIdentifierFault"):
                el = etree.Element(q(BES, name), nsmap={"bes-factory": BES})
                etree.SubElement(el, q(BES, "Message")).text = self.message
                found.append(el)
            return found
        el = etree.Element(q(BES, f"{self.name}Fault"), nsmap={"bes-factory": BES})
        if self.name == "UnsupportedFeature":
            for feature in self.features:
                etree.SubElement(el, q(BES, "Feature")).text = feature
        elif self.name == "InvalidRequestMessage":
            for element in self.elements:
                etree.SubElement(el, q(BES, "InvalidElement")).text = element
            etree.SubElement(el, q(BES, "Message")).text = self.message
        elif self.name in ("CantApplyOperationToCurrentState", "OperationWillBeAppliedEventually"):
            etree.SubElement(el, q(BES, "ActivityStatus"), state=self.state or "Pending")
            etree.SubElement(el, q(BES, "Message")).text = self.message
        else:  # NotAuthorized, NotAcceptingNewActivities: say why in an extension element
            etree.SubElement(el, q(XG, "Reason"), nsmap={"xg": XG}).text = self.message
        return [el]

    def fault_element(self, tag: str = q(SOAP_ENV, "Fault")) -> etree._Element:
        """A soap:Fault (or, for batch responses, a bes-factory:Fault of that type)."""
        fault = etree.Element(tag, nsmap={"soap": SOAP_ENV})
        etree.SubElement(fault, "faultcode").text = f"soap:{self.code}"
        etree.SubElement(fault, "faultstring").text = self.message
        details = self.detail_elements()
        if details:
            detail = etree.SubElement(fault, "detail")
            detail.extend(details)
        return fault


def invalid_request(element: str, why: str) -> BESFault:
    return BESFault("InvalidRequestMessage", f"{element}: {why}", elements=[element])


def unknown_activity(activity_id: str) -> BESFault:
    return BESFault(
        "UnknownActivityIdentifier",
        f"no activity {activity_id!r} at this endpoint (it may never have existed here)",
    )
