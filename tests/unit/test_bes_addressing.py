"""EPRs, WS-Addressing checks and fault details, as pure functions."""

from __future__ import annotations

import pytest
from lxml import etree

from gateway.bes.addressing import Addressing
from gateway.bes.epr import activity_epr, activity_id_of
from gateway.bes.faults import BESFault
from gateway.bes.namespaces import BES, XG, action, q
from gateway.xmlns import WSA

ID = "4d5c52ee-c068-4f71-a191-4f65539a64d4"


def epr(address: str = "", parameter: str = "") -> etree._Element:
    el = etree.Element(q(BES, "ActivityIdentifier"))
    etree.SubElement(el, q(WSA, "Address")).text = address
    if parameter:
        params = etree.SubElement(el, q(WSA, "ReferenceParameters"))
        etree.SubElement(params, q(XG, "ActivityIdentifier")).text = parameter
    return el


def test_an_epr_round_trips():
    made = activity_epr(q(BES, "ActivityIdentifier"), "https://gw.example.org/bes", ID)
    assert made.findtext(q(WSA, "Address")) == f"https://gw.example.org/bes/activities/{ID}"
    assert activity_id_of(made) == ID


@pytest.mark.parametrize(
    "element",
    [
        epr(f"https://gw/bes/activities/{ID}"),
        epr(f"https://gw/bes/activities/{ID}/?x=1"),
        epr("https://gw/bes", ID),
        epr("", ID),
    ],
    ids=["address", "address-with-query", "parameter", "parameter-only"],
)
def test_either_form_names_the_activity(element):
    assert activity_id_of(element) == ID


def test_contradicting_and_empty_eprs_are_invalid_requests():
    with pytest.raises(BESFault) as caught:
        activity_id_of(epr(f"https://gw/bes/activities/{ID}", "other"))
    assert caught.value.name == "InvalidRequestMessage"
    with pytest.raises(BESFault) as caught:
        activity_id_of(epr("https://gw/bes"))
    assert caught.value.name == "InvalidRequestMessage"
    with pytest.raises(BESFault) as caught:
        activity_id_of(epr("", "../../etc/passwd"))
    assert caught.value.name == "UnknownActivityIdentifier"


def header(**values: str) -> list[etree._Element]:
    found = []
    for name, value in values.items():
        el = etree.Element(q(WSA, name))
        el.text = value
        found.append(el)
    return found


def test_addressing_is_optional_and_checked_when_present():
    none = Addressing.read([])
    assert not none.present and none.reply_headers("CreateActivity") == []
    none.check("CreateActivity", "/bes")
    good = Addressing.read(header(Action=action("CreateActivity"), MessageID="urn:uuid:1"))
    good.check("CreateActivity", "/bes")
    names = [etree.QName(h).localname for h in good.reply_headers("CreateActivity")]
    assert names == ["Action", "MessageID", "RelatesTo", "To"]
    with pytest.raises(BESFault, match="wsa:Action"):
        good.check("GetActivityStatuses", "/bes")
    Addressing.read(header(To="http://gw:8080/bes/")).check("CreateActivity", "/bes")
    with pytest.raises(BESFault, match="wsa:To"):
        Addressing.read(header(To="http://gw/occi")).check("CreateActivity", "/bes")


def test_unknown_activity_fault_carries_both_names():
    names = [
        etree.QName(e).localname
        for e in BESFault("UnknownActivityIdentifier", "x").detail_elements()
    ]
    assert names == ["InvalidActivityIdentifierFault", "UnknownActivityIdentifierFault"]
