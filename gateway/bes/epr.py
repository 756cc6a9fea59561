"""Activity endpoint references (WS-Addressing EPRs).

An activity's EPR carries its id twice: in the Address (``<base>/bes/activities/<id>``)
and as the reference parameter ``xg:ActivityIdentifier``. Clients that keep only the
address, and clients that keep only the reference parameters, both find it again; when
both are sent they must agree.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

from lxml import etree

from gateway.bes.faults import BESFault, invalid_request
from gateway.bes.namespaces import XG, q
from gateway.xmlns import WSA

_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
ACTIVITIES_SEGMENT = "/activities/"


def activity_address(base_url: str, activity_id: str) -> str:
    return f"{base_url}{ACTIVITIES_SEGMENT}{activity_id}"


def activity_epr(tag: str, base_url: str, activity_id: str) -> etree._Element:
    """An EPR element named ``tag`` (e.g. bes-factory:ActivityIdentifier)."""
    epr = etree.Element(tag, nsmap={"wsa": WSA, "xg": XG})
    etree.SubElement(epr, q(WSA, "Address")).text = activity_address(base_url, activity_id)
    params = etree.SubElement(epr, q(WSA, "ReferenceParameters"))
    etree.SubElement(params, q(XG, "ActivityIdentifier")).text = activity_id
    return epr


def activity_id_of(epr: etree._Element) -> str:
    """The activity id an EPR names, or an InvalidRequestMessage fault saying why not."""
    from_params = ""
    params = epr.find(q(WSA, "ReferenceParameters"))
    if params is not None:
        for child in params:
            if isinstance(child.tag, str) and etree.QName(child).localname == "ActivityIdentifier":
                from_params = (child.text or "").strip()
    from_address = ""
    address = epr.find(q(WSA, "Address"))
    text = (address.text or "").strip() if address is not None else ""
    if ACTIVITIES_SEGMENT in text:  # string work, not urlparse: batches hold thousands
        path = text.split("?", 1)[0].split("#", 1)[0]
        from_address = unquote(path.rsplit(ACTIVITIES_SEGMENT, 1)[1].strip("/"))
    if from_params and from_address and from_params != from_address:
        raise BESFault(
            "InvalidRequestMessage",
            f"the EPR's address names activity {from_address!r} but its reference "
            f"parameter names {from_params!r}",
            elements=["wsa:ReferenceParameters"],
        )
    found = from_params or from_address
    if not found:
        raise invalid_request(
            "wsa:EndpointReference",
            "names no activity: expected wsa:Address .../bes/activities/<id> or the "
            "reference parameter xg:ActivityIdentifier",
        )
    if not _ID.match(found):
        raise BESFault(
            "UnknownActivityIdentifier", f"{found[:80]!r} is not an activity id of this endpoint"
        )
    return found
