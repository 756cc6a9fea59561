"""AARC-G002 entitlements, read and written: real-world strings and broken ones."""

import pytest

from backends.contracts.entitlements import (
    Entitlement,
    EntitlementError,
    entitlements_of,
    format_entitlement,
    memberships_from,
    parse_entitlement,
)
from backends.contracts.model import VOMembership

REAL_WORLD = [
    # EGI Check-in
    (
        "urn:mace:egi.eu:group:vo.example.org:role=vm_operator#aai.egi.eu",
        Entitlement("urn:mace:egi.eu", "vo.example.org", "", "vm_operator", "aai.egi.eu"),
    ),
    # DARIAH AAI
    (
        "urn:geant:dariah.eu:group:egi-interop:role=member#aai.dariah.eu",
        Entitlement("urn:geant:dariah.eu", "egi-interop", "", "member", "aai.dariah.eu"),
    ),
    # Helmholtz AAI (Unity), nested subgroup
    (
        "urn:geant:helmholtz.de:group:HDF:subgroup-a:role=member#login.helmholtz.de",
        Entitlement("urn:geant:helmholtz.de", "HDF", "subgroup-a", "member", "login.helmholtz.de"),
    ),
    # two nesting levels, no role
    (
        "urn:geant:example.org:group:cms:analysis:higgs#login.example.org",
        Entitlement("urn:geant:example.org", "cms", "analysis/higgs", "", "login.example.org"),
    ),
    # percent-encoded space in a group name
    (
        "urn:geant:example.org:group:My%20Project#idp.example.org",
        Entitlement("urn:geant:example.org", "My Project", "", "", "idp.example.org"),
    ),
]


@pytest.mark.parametrize(("text", "expected"), REAL_WORLD)
def test_real_world_entitlements_read_and_write_back(text, expected):
    parsed = parse_entitlement(text)
    assert parsed == expected
    assert str(parsed).lower() == text.lower()  # percent-encoding case may differ


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("urn:mace:egi.eu:group:vo.example.org", "lacks the '#<group-authority>'"),
        ("urn:mace:egi.eu:group:vo.example.org#", "lacks the '#<group-authority>'"),
        ("urn:mace:egi.eu:vo.example.org#aai.egi.eu", "no ':group:'"),
        ("mace:egi.eu:group:vo#aai.egi.eu", "is not a URN"),
        ("urn:mace:egi.eu:group:#aai.egi.eu", "empty"),
        ("urn:mace:egi.eu:group:role=member#aai.egi.eu", "names no group"),
        ("urn:mace:egi.eu:group:vo:role=a:sub#aai.egi.eu", "'role=' before its last part"),
        ("urn:mace:egi.eu:group:v o#aai.egi.eu", "percent-encoded"),
        ("urn:mace:egi.eu:group:vo::sub#aai.egi.eu", "empty"),
        ("", "non-empty"),
    ],
)
def test_malformed_entitlements_say_what_is_wrong(text, complaint):
    with pytest.raises(EntitlementError, match=complaint.replace("(", r"\(")):
        parse_entitlement(text)


def test_memberships_become_entitlements_and_back():
    memberships = (
        VOMembership("cms", "", ("production", "vm_operator")),
        VOMembership("cms", "analysis/higgs"),
        VOMembership("atlas"),
    )
    texts = entitlements_of(memberships, "urn:geant:xtreemgate", "gw.example.org")
    assert "urn:geant:xtreemgate:group:cms:role=production#gw.example.org" in texts
    assert "urn:geant:xtreemgate:group:cms:analysis:higgs#gw.example.org" in texts
    back, refused = memberships_from([*texts, "garbage"])
    assert refused == ["garbage"]
    assert sorted(back, key=lambda m: (m.vo, m.group)) == sorted(
        memberships, key=lambda m: (m.vo, m.group)
    )


def test_writing_needs_an_authority_and_a_urn_namespace():
    with pytest.raises(EntitlementError, match="authority"):
        format_entitlement("urn:geant:x", "cms")
    with pytest.raises(EntitlementError, match="not a URN"):
        format_entitlement("geant:x", "cms", authority="a.example")
    # an issuer URL as authority is percent-encoded, and reads back
    text = format_entitlement("urn:geant:x", "cms", authority="http://127.0.0.1:8080")
    assert parse_entitlement(text).authority == "http://127.0.0.1:8080"
