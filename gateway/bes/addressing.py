"""WS-Addressing 1.0 (2005/08) on the BES endpoint: honoured when present, never required.

Several BES clients send no addressing headers at all; then the reply has none either.
When a request carries them, wsa:Action must name the operation in the Body, wsa:To (if
given) must be this endpoint, and the reply carries the response action, a fresh
wsa:MessageID and wsa:RelatesTo pointing at the request's wsa:MessageID.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from urllib.parse import urlparse

from lxml import etree

from gateway.bes.faults import BESFault
from gateway.bes.namespaces import action, fault_action, q
from gateway.xmlns import WSA, WSA_ANONYMOUS


@dataclass(frozen=True)
class Addressing:
    present: bool
    action: str = ""
    message_id: str = ""
    to: str = ""
    reply_to: str = ""

    @classmethod
    def read(cls, entries: list[etree._Element]) -> Addressing:
        values: dict[str, str] = {}
        for entry in entries:
            if etree.QName(entry).namespace != WSA:
                continue
            name = etree.QName(entry).localname
            if name == "ReplyTo":
                address = entry.find(q(WSA, "Address"))
                values["reply_to"] = (address.text or "").strip() if address is not None else ""
            elif name in ("Action", "MessageID", "To"):
                key = {"Action": "action", "MessageID": "message_id", "To": "to"}[name]
                values[key] = (entry.text or "").strip()
        return cls(present=bool(values), **values)

    def check(self, operation: str, endpoint_path: str) -> None:
        """Refuse a request whose headers contradict its Body or its destination."""
        if self.action and self.action != action(operation):
            raise BESFault(
                "InvalidRequestMessage",
                f"wsa:Action is {self.action!r} but the Body holds {operation}; "
                f"send {action(operation)!r}",
                elements=["wsa:Action"],
            )
        if self.to and self.to != WSA_ANONYMOUS:
            path = urlparse(self.to).path.rstrip("/")
            if path != endpoint_path and not path.startswith(endpoint_path + "/activities/"):
                raise BESFault(
                    "InvalidRequestMessage",
                    f"wsa:To is {self.to!r}, which is not this BES endpoint ({endpoint_path})",
                    elements=["wsa:To"],
                )
        if self.reply_to and self.reply_to not in (WSA_ANONYMOUS, f"{WSA}/none"):
            raise BESFault(
                "UnsupportedFeature",
                f"wsa:ReplyTo {self.reply_to!r}: replies go back on the same HTTP "
                "connection only (anonymous)",
                features=["wsa:ReplyTo"],
            )

    def reply_headers(self, operation: str, *, fault: bool = False) -> list[etree._Element]:
        if not self.present:
            return []
        nsmap = {"wsa": WSA}
        headers = []
        reply_action = fault_action(operation) if fault else action(operation, response=True)
        el = etree.Element(q(WSA, "Action"), nsmap=nsmap)
        el.text = reply_action
        headers.append(el)
        el = etree.Element(q(WSA, "MessageID"), nsmap=nsmap)
        el.text = f"urn:uuid:{uuid.uuid4()}"
        headers.append(el)
        if self.message_id:
            el = etree.Element(q(WSA, "RelatesTo"), nsmap=nsmap)
            el.text = self.message_id
            headers.append(el)
        el = etree.Element(q(WSA, "To"), nsmap=nsmap)
        el.text = WSA_ANONYMOUS
        headers.append(el)
        return headers
