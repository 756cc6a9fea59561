"""Attributes to principal: identifier choice (subject-id, eduPersonPrincipalName,
persistent NameID), configured attribute names, VO memberships."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from lxml import etree

from backends.contracts.model import VOMembership
from gateway.saml.attributes import AttributeMap
from gateway.saml.federation import IdentityProvider, Scope
from gateway.saml.response import AuthenticatedAssertion, ResponseRejected
from gateway.saml.sp import ServiceProvider

IDP = IdentityProvider(
    "https://idp.example.org", (), (), (), (), (Scope("example.org"),), False, {}, "test"
)


def assertion(attributes: dict[str, list[str]], **kw: Any) -> AuthenticatedAssertion:
    return AuthenticatedAssertion(
        idp=kw.get("idp", IDP),
        assertion_id="_a",
        name_id=kw.get("name_id", "_transient"),
        name_id_format=kw.get("fmt", "urn:oasis:names:tc:SAML:2.0:nameid-format:transient"),
        name_qualifier=kw.get("name_qualifier", ""),
        sp_name_qualifier=kw.get("sp_name_qualifier", ""),
        session_index="",
        session_not_on_or_after=None,
        not_on_or_after=datetime.now(UTC),
        attributes=attributes,
    )


@pytest.fixture
def sp(make_settings: Any) -> Any:
    from backends.store import Database

    settings = make_settings(
        saml={
            "enabled": True,
            "key_size": 2048,
            "entitlement_authorities": [
                {"authority": "x.org", "idps": ["https://idp.example.org"]}
            ],
        }
    )
    db = Database(settings.database_url)
    provider = ServiceProvider(settings, db)
    yield provider
    db.dispose()


def test_identifier_order_and_persistent_nameid(sp: Any) -> None:
    both = {"subject-id": ["s1@example.org"], "eduPersonPrincipalName": ["a@example.org"]}
    assert sp.principal(assertion(both)).name == "s1@example.org"
    assert sp.principal(assertion({"eduPersonPrincipalName": ["a@example.org"]})).name == (
        "a@example.org"
    )
    persistent = assertion(
        {}, name_id="opaque123", fmt="urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"
    )
    assert sp.principal(persistent).name == f"https://idp.example.org!{sp.entity_id}!opaque123"
    with pytest.raises(ResponseRejected, match="none of the identifiers"):
        sp.principal(assertion({"mail": ["a@example.org"]}))


def test_an_identifier_speaks_only_for_the_issuing_idp(sp: Any) -> None:
    """#16.1: another IdP's qualifiers or scopes never name the principal."""
    persistent = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"
    claimed = assertion(
        {},
        name_id="opaque123",
        fmt=persistent,
        name_qualifier="https://victim-idp.example.net",
        sp_name_qualifier="https://other-sp.example.net",
    )
    assert sp.principal(claimed).name == f"https://idp.example.org!{sp.entity_id}!opaque123"
    # subject-id, pairwise-id, ePPN out of the issuer's scope are dropped, not believed.
    for name in ("subject-id", "pairwise-id", "eduPersonPrincipalName", "eduPersonUniqueId"):
        foreign = {name: ["victim@victim.example.net"]}
        with pytest.raises(ResponseRejected, match="none of the identifiers"):
            sp.principal(assertion(foreign))
        fallback = assertion({**foreign, "eduPersonPrincipalName": ["a@example.org"]})
        if name != "eduPersonPrincipalName":
            assert sp.principal(fallback).name == "a@example.org"
    # nor a VO membership by another IdP's affiliation scope
    principal = sp.principal(
        assertion(
            {
                "eduPersonPrincipalName": ["a@example.org"],
                "eduPersonScopedAffiliation": ["member@victim.example.net", "staff@example.org"],
            }
        )
    )
    assert [m.vo for m in principal.memberships] == ["example.org"]
    # eduPersonTargetedID (a NameID value) is qualified like a persistent NameID
    sp.config.identifier = ["eduPersonTargetedID"]
    targeted = sp.principal(assertion({"eduPersonTargetedID": ["opaque9"]}))
    assert targeted.name == f"https://idp.example.org!{sp.entity_id}!opaque9"
    unscoped = IdentityProvider("https://adfs.example.org", (), (), (), (), (), False, {}, "t")
    sp.config.identifier = ["subject-id"]
    with pytest.raises(ResponseRejected, match="none of the identifiers"):
        sp.principal(assertion({"subject-id": ["a@example.org"]}, idp=unscoped))


def test_principal_carries_display_name_and_memberships(sp: Any) -> None:
    principal = sp.principal(
        assertion(
            {
                "eduPersonPrincipalName": ["a@example.org"],
                "displayName": ["Alice"],
                "eduPersonEntitlement": [
                    "urn:geant:x.org:group:cms:role=pi#x.org",
                    "urn:geant:x.org:group:atlas#untrusted.org",
                ],
            }
        )
    )
    assert principal.authenticated_by == "saml"
    assert principal.display_name == "Alice"
    assert principal.memberships == (VOMembership("cms", "", ("pi",)),)
    assert principal.attributes["idp"] == "https://idp.example.org"


def test_attribute_map_by_oid_friendly_name_and_configuration() -> None:
    statement = etree.fromstring(
        b'<saml:Assertion xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion">'
        b"<saml:AttributeStatement>"
        b'<saml:Attribute Name="urn:oid:1.3.6.1.4.1.5923.1.1.1.6">'
        b"<saml:AttributeValue>a@example.org</saml:AttributeValue></saml:Attribute>"
        b'<saml:Attribute Name="urn:x:local" FriendlyName="mail">'
        b"<saml:AttributeValue>a@mail</saml:AttributeValue></saml:Attribute>"
        b'<saml:Attribute Name="urn:oid:1.2.3">'
        b"<saml:AttributeValue>x</saml:AttributeValue></saml:Attribute>"
        b"</saml:AttributeStatement></saml:Assertion>"
    )
    assert AttributeMap().read(statement) == {
        "eduPersonPrincipalName": ["a@example.org"],
        "mail": ["a@mail"],
        "urn:oid:1.2.3": ["x"],
    }
    assert AttributeMap({"urn:oid:1.2.3": "orcid"}).read(statement)["orcid"] == ["x"]


def test_a_saml_token_carries_the_login_memberships_and_nothing_malformed() -> None:
    from gateway.auth.chain import _login_memberships

    vos = [
        {"vo": "fusion", "group": "ws1", "roles": ["pi", 3]},
        {"vo": ""},
        {"vo": "x", "roles": "admin"},
        "cms",
    ]
    assert _login_memberships({"auth": "saml", "vos": vos}) == (
        VOMembership("fusion", "ws1", ("pi",)),
    )
    # only a token /saml/token wrote counts; the others carry no memberships
    assert _login_memberships({"auth": "bearer", "vos": vos}) == ()
    assert _login_memberships({"auth": "saml", "vos": "fusion"}) == ()
