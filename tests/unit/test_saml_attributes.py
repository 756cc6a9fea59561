"""AARC-G002 entitlements, scoped affiliations, attribute text, xsd times."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from lxml import etree

from backends.model import VOMembership
from gateway.saml.attributes import element_text
from gateway.saml.entitlements import memberships_from_attributes, parse_aarc_g002
from gateway.saml.timeutil import parse_datetime, parse_duration


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("urn:geant:example.org:group:fusion#aai.example.org", VOMembership("fusion")),
        ("urn:geant:example.org:group:fusion:ws1:sub#a", VOMembership("fusion", "ws1/sub")),
        (
            "urn:geant:example.org:group:fusion:role=admin#aai.example.org",
            VOMembership("fusion", "", ("admin",)),
        ),
        (
            "urn:geant:example.org:group:fusion:ws1:role=pi#a",
            VOMembership("fusion", "ws1", ("pi",)),
        ),
        ("urn:mace:dir:entitlement:common-lib-terms", None),
        ("urn:geant:example.org:group:#a", None),
        ("not a urn", None),
    ],
)
def test_aarc_g002(value: str, expected: VOMembership | None) -> None:
    assert parse_aarc_g002(value) == expected


def test_memberships_merge_roles_and_affiliations() -> None:
    got = memberships_from_attributes(
        {
            "eduPersonEntitlement": [
                "urn:geant:example.org:group:fusion:role=admin#a",
                "urn:geant:example.org:group:fusion:role=member#a",
                "urn:geant:example.org:group:fusion:ws1#a",
            ],
            "eduPersonScopedAffiliation": ["staff@example.org", "nonsense"],
        }
    )
    assert got == (
        VOMembership("example.org", "", ("staff",)),
        VOMembership("fusion", "", ("admin", "member")),
        VOMembership("fusion", "ws1", ()),
    )


def test_text_survives_comments_and_processing_instructions() -> None:
    node = etree.fromstring(b"<v>user@evil.org<!---->.good.org<?x y?></v>")
    assert node.text == "user@evil.org"  # what a naive reader would take
    assert element_text(node) == "user@evil.org.good.org"


def test_xsd_times() -> None:
    assert parse_datetime("2026-11-25T08:00:00Z") == datetime(2026, 11, 25, 8, tzinfo=UTC)
    assert parse_datetime("2026-11-25T09:00:00.123456789+01:00").hour == 8
    assert parse_duration("PT1H") == 3600
    assert parse_duration("P1DT30M") == 86400 + 1800
    with pytest.raises(ValueError, match="xsd:duration"):
        parse_duration("P")
