"""AARC-G002 entitlements, scoped affiliations, attribute text, xsd times."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pytest
from lxml import etree

from backends.contracts.model import VOMembership
from gateway.saml.attributes import element_text
from gateway.saml.entitlements import EntitlementPolicy, TrustedAuthority
from gateway.saml.timeutil import parse_datetime, parse_duration

IDP = "https://idp.example.org/idp"
TRUSTED = [
    TrustedAuthority("aai.example.org", (IDP,), ("*",)),
    TrustedAuthority("vo.example.net", ("*",), ("cms",)),  # names the local VO cms
]


def local(name: str) -> bool:
    return name in ("cms", "atlas", "example.net")


def test_trusted_entitlements_merge_roles_and_affiliations() -> None:
    got = EntitlementPolicy(TRUSTED, local).memberships(
        IDP,
        {
            "eduPersonEntitlement": [
                "urn:geant:example.org:group:fusion:role=admin#aai.example.org",
                "urn:geant:example.org:group:fusion:role=member#aai.example.org",
                "urn:geant:example.org:group:fusion:ws1:sub#aai.example.org",
                "urn:mace:dir:entitlement:common-lib-terms",  # not about groups: skipped
            ],
            "eduPersonScopedAffiliation": ["staff@example.org", "nonsense"],
        },
    )
    assert got == (
        VOMembership("example.org", "", ("staff",)),
        VOMembership("fusion", "", ("admin", "member")),
        VOMembership("fusion", "ws1/sub", ()),
    )


@pytest.mark.parametrize(
    ("idp", "value", "why"),
    [
        (IDP, "urn:geant:evil.net:group:fusion#aai.evil.net", "'aai.evil.net' is not trusted"),
        # a trusted authority, but "*" never covers a VO this gateway manages
        (IDP, "urn:geant:example.org:group:atlas#aai.example.org", "the local VO 'atlas'"),
        ("https://other.example/idp", "urn:x:y:group:fusion#aai.example.org", "may not assert"),
        (IDP, "urn:geant:example.org:group:fusion:role=a:b#aai.example.org", "'role=' before"),
        (IDP, "urn:geant:vo.example.net:group:lhcb#vo.example.net", "may not grant the VO 'lhcb'"),
    ],
)
def test_untrusted_entitlements_are_ignored_and_logged(
    idp: str, value: str, why: str, caplog: pytest.LogCaptureFixture
) -> None:
    policy = EntitlementPolicy(TRUSTED, local)
    with caplog.at_level(logging.WARNING, logger="xtreemgate.saml"):
        assert policy.memberships(idp, {"eduPersonEntitlement": [value]}) == ()
    assert why in caplog.text and value in caplog.text


def test_a_local_vo_is_granted_only_where_the_site_names_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    policy = EntitlementPolicy(TRUSTED, local)
    got = policy.memberships(
        "https://any.example/idp",
        {
            "eduPersonEntitlement": ["urn:geant:vo.example.net:group:cms:role=pi#vo.example.net"],
            "eduPersonScopedAffiliation": ["member@example.net"],  # scope = a local VO
        },
    )
    assert got == (VOMembership("cms", "", ("pi",)),)
    assert "the scope names the local VO 'example.net'" in caplog.text
    assert EntitlementPolicy([]).memberships(IDP, {"eduPersonEntitlement": [str(got)]}) == ()
    assert (
        EntitlementPolicy(TRUSTED, affiliations=False).memberships(
            IDP, {"eduPersonScopedAffiliation": ["member@example.org"]}
        )
        == ()
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
