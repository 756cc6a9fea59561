"""Hostile responses: each starts as a real pysaml2-signed Response from a real login and
is tampered with lxml. Every one must be refused (403), with the reason logged, and no
session created."""

from __future__ import annotations

import base64
import copy
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from lxml import etree

from gateway.saml import dsig
from gateway.saml.namespaces import DS, SAML, SAMLP, q
from tests.interop.saml_idp import make_keypair
from tests.interop.test_saml_sso import idp_response, sessions

pytestmark = pytest.mark.service


def _tree(form: dict[str, str]) -> etree._Element:
    return etree.fromstring(base64.b64decode(form["SAMLResponse"]))


def _assertion(root: etree._Element) -> etree._Element:
    return root.find(q(SAML, "Assertion"))


def _resign(element: etree._Element, key: bytes, cert: bytes) -> None:
    old = element.find(q(DS, "Signature"))
    if old is not None:
        element.remove(old)
    dsig.sign(element, key, cert, index=1)


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _idp_key(world: Any) -> tuple[bytes, bytes]:
    return world.idp.key.read_bytes(), world.idp.cert.read_bytes()


# Each tamper gets the parsed Response and the world; returns the bytes to post.
def unsigned(root: etree._Element, world: Any) -> bytes:
    sig = _assertion(root).find(q(DS, "Signature"))
    sig.getparent().remove(sig)
    return etree.tostring(root)


def wrong_key(root: etree._Element, world: Any) -> bytes:
    key, cert = make_keypair(world.directory, "mallory")
    _resign(_assertion(root), key.read_bytes(), cert.read_bytes())
    return etree.tostring(root)


def _resigned(change: Callable[[etree._Element], None]) -> Callable[[etree._Element, Any], bytes]:
    def tamper(root: etree._Element, world: Any) -> bytes:
        assertion = _assertion(root)
        change(assertion)
        _resign(assertion, *_idp_key(world))
        return etree.tostring(root)

    return tamper


def _expire(assertion: etree._Element) -> None:
    past = _stamp(datetime.now(UTC) - timedelta(hours=1))
    for node in assertion.iter(q(SAML, "Conditions"), q(SAML, "SubjectConfirmationData")):
        node.set("NotOnOrAfter", past)


def _future(assertion: etree._Element) -> None:
    assertion.find(q(SAML, "Conditions")).set(
        "NotBefore", _stamp(datetime.now(UTC) + timedelta(hours=1))
    )


def _audience(assertion: etree._Element) -> None:
    for audience in assertion.iter(q(SAML, "Audience")):
        audience.text = "https://other-sp.example.org/shibboleth"


def _recipient(assertion: etree._Element) -> None:
    for data in assertion.iter(q(SAML, "SubjectConfirmationData")):
        data.set("Recipient", "https://other-sp.example.org/Shibboleth.sso/SAML2/POST")


def unsolicited(root: etree._Element, world: Any) -> bytes:
    del root.attrib["InResponseTo"]
    assertion = _assertion(root)
    for data in assertion.iter(q(SAML, "SubjectConfirmationData")):
        del data.attrib["InResponseTo"]
    _resign(assertion, *_idp_key(world))
    return etree.tostring(root)


def _evil_copy(assertion: etree._Element, new_id: bool = True) -> etree._Element:
    evil = copy.deepcopy(assertion)
    sig = evil.find(q(DS, "Signature"))
    if sig is not None:
        evil.remove(sig)
    if new_id:
        evil.set("ID", "_evil0000000000000000000000000000")
    for value in evil.iter(q(SAML, "AttributeValue")):
        if value.text == "alice@example.org":
            value.text = "admin@example.org"
    return evil


def wrap_moved_to_extensions(root: etree._Element, world: Any) -> bytes:
    original = _assertion(root)
    evil = _evil_copy(original)
    index = root.index(original)
    root.remove(original)
    extensions = etree.Element(q(SAMLP, "Extensions"))
    extensions.append(original)
    root.insert(1, extensions)
    root.insert(index + 1, evil)
    return etree.tostring(root)


def wrap_copied_same_id(root: etree._Element, world: Any) -> bytes:
    original = _assertion(root)
    root.insert(root.index(original), _evil_copy(original, new_id=False))
    return etree.tostring(root)


def wrap_in_signature_object(root: etree._Element, world: Any) -> bytes:
    """The evil assertion carries the original signature; the signed original hides in
    that signature's ds:Object (the XSW variant that fools 'any signature verifies')."""
    original = _assertion(root)
    evil = _evil_copy(original, new_id=True)
    signature = copy.deepcopy(original.find(q(DS, "Signature")))
    obj = etree.SubElement(signature, q(DS, "Object"))
    root.replace(original, evil)
    obj.append(original)
    evil.insert(1, signature)
    return etree.tostring(root)


def wrap_unsigned_sibling(root: etree._Element, world: Any) -> bytes:
    original = _assertion(root)
    root.append(_evil_copy(original))
    return etree.tostring(root)


def wrap_signed_first_unsigned_second(root: etree._Element, world: Any) -> bytes:
    original = _assertion(root)
    evil = _evil_copy(original)
    root.insert(root.index(original), evil)  # unsigned evil before the signed original
    return etree.tostring(root)


def comment_truncation(root: etree._Element, world: Any) -> bytes:
    """mallory@example.org<!---->.evil.net: the signature still verifies (exclusive
    c14n drops comments); an SP reading only .text would see mallory@example.org."""
    for value in root.iter(q(SAML, "AttributeValue")):
        if value.text == "mallory@example.org.evil.net":
            value.text = "mallory@example.org"
            comment = etree.Comment("")
            comment.tail = ".evil.net"
            value.append(comment)
    return etree.tostring(root)


def wrong_destination(root: etree._Element, world: Any) -> bytes:
    root.set("Destination", "https://other-sp.example.org/acs")
    return etree.tostring(root)


def xxe(root: etree._Element, world: Any) -> bytes:
    body = etree.tostring(root).decode().replace("alice@example.org", "&xxe;", 1)
    return f'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>{body}'.encode()


def entity_bomb(root: etree._Element, world: Any) -> bytes:
    decl = '<!ENTITY a "aaaaaaaaaa">' + "".join(
        f'<!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">' for i in range(8)
    )
    body = etree.tostring(root).decode().replace("alice@example.org", "&i;", 1)
    return f"<!DOCTYPE r [{decl}]>{body}".encode()


CASES = {
    "unsigned": (unsigned, "not signed"),
    "wrong-key": (wrong_key, "does not verify"),
    "expired": (_resigned(_expire), "expired"),
    "not-yet-valid": (_resigned(_future), "not valid before"),
    "wrong-audience": (_resigned(_audience), "audience"),
    "wrong-recipient": (_resigned(_recipient), "Recipient"),
    "wrong-destination": (wrong_destination, "Destination"),
    "unsolicited": (unsolicited, "unsolicited"),
    "xsw-moved-to-extensions": (wrap_moved_to_extensions, "not signed"),
    "xsw-copied-same-id": (wrap_copied_same_id, "exactly one Assertion"),
    "xsw-in-signature-object": (wrap_in_signature_object, "not this element"),
    "xsw-unsigned-sibling": (wrap_unsigned_sibling, "exactly one Assertion"),
    "xsw-unsigned-first": (wrap_signed_first_unsigned_second, "exactly one Assertion"),
    "xxe": (xxe, "document type declarations"),
    "entity-bomb": (entity_bomb, "document type declarations"),
}


def _post(world: Any, browser: requests.Session, document: bytes) -> requests.Response:
    return browser.post(
        f"{world.gateway}/saml/acs",
        data={"SAMLResponse": base64.b64encode(document).decode()},
        allow_redirects=False,
        timeout=10,
    )


def _refused(
    world: Any, caplog: pytest.LogCaptureFixture, answer: requests.Response, words: str
) -> None:
    assert answer.status_code == 403, answer.text
    assert words in answer.json()["detail"], answer.json()["detail"]
    assert "Set-Cookie" not in answer.headers
    logged = [r.getMessage() for r in caplog.records if r.name == "xtreemgate.saml"]
    assert any("SAML response refused" in m and words in m for m in logged), logged


@pytest.mark.parametrize("case", list(CASES))
def test_hostile_response_is_refused(
    saml_world: Any, caplog: pytest.LogCaptureFixture, case: str
) -> None:
    caplog.set_level(logging.INFO, logger="xtreemgate.saml")
    tamper, words = CASES[case]
    browser, form = idp_response(saml_world)
    before = sessions(saml_world)
    _refused(saml_world, caplog, _post(saml_world, browser, tamper(_tree(form), saml_world)), words)
    assert sessions(saml_world) == before


def test_unsigned_by_the_idp_is_refused(saml_world: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="xtreemgate.saml")
    browser, form = idp_response(saml_world, sign_assertion=False, sign_response=False)
    before = sessions(saml_world)
    _refused(
        saml_world,
        caplog,
        _post(saml_world, browser, base64.b64decode(form["SAMLResponse"])),
        "not signed",
    )
    assert sessions(saml_world) == before


def test_sha1_signature_is_refused_by_default(
    saml_world: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="xtreemgate.saml")
    browser, form = idp_response(saml_world, sha1=True)
    assert "xmldsig#rsa-sha1" in base64.b64decode(form["SAMLResponse"]).decode()
    before = sessions(saml_world)
    _refused(
        saml_world,
        caplog,
        _post(saml_world, browser, base64.b64decode(form["SAMLResponse"])),
        "rsa-sha1",
    )
    assert sessions(saml_world) == before


def test_rsa_v15_key_transport_is_refused(
    saml_world: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """PKCS#1 v1.5 key transport is the Bleichenbacher oracle of XML Encryption."""
    from gateway.saml.namespaces import XENC

    caplog.set_level(logging.INFO, logger="xtreemgate.saml")
    browser, form = idp_response(saml_world, encrypt_assertion=True)
    root = _tree(form)
    methods = list(root.iter(q(XENC, "EncryptionMethod")))
    assert methods, "the IdP was asked to encrypt"
    for method in methods:
        if "rsa-oaep" in method.get("Algorithm"):
            method.set("Algorithm", "http://www.w3.org/2001/04/xmlenc#rsa-1_5")
    _refused(saml_world, caplog, _post(saml_world, browser, etree.tostring(root)), "rsa-1_5")


def test_undecryptable_assertion_gives_one_uniform_reason(
    saml_world: Any, caplog: pytest.LogCaptureFixture
) -> None:
    from gateway.saml.namespaces import XENC

    caplog.set_level(logging.INFO, logger="xtreemgate.saml")
    browser, form = idp_response(saml_world, encrypt_assertion=True)
    root = _tree(form)
    value = next(root.iter(q(XENC, "CipherValue")))
    raw = bytearray(base64.b64decode(value.text))
    raw[-1] ^= 0x01  # a flipped bit in the last block: padding or content breaks
    value.text = base64.b64encode(bytes(raw)).decode()
    _refused(
        saml_world,
        caplog,
        _post(saml_world, browser, etree.tostring(root)),
        "EncryptedAssertion cannot be decrypted with the SP key",
    )


def test_response_signature_removed_is_refused(
    saml_world: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="xtreemgate.saml")
    browser, form = idp_response(saml_world, sign_assertion=False, sign_response=True)
    root = _tree(form)
    root.remove(root.find(q(DS, "Signature")))
    _refused(saml_world, caplog, _post(saml_world, browser, etree.tostring(root)), "not signed")


def test_response_signature_wrapping_is_refused(
    saml_world: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """An evil Response carries the original (signed) Response in its Extensions and a
    copy of its signature, which references the original's ID."""
    caplog.set_level(logging.INFO, logger="xtreemgate.saml")
    browser, form = idp_response(saml_world, sign_assertion=False, sign_response=True)
    original = _tree(form)
    evil = copy.deepcopy(original)
    evil.set("ID", "_evilresponse00000000000000000000")
    extensions = etree.Element(q(SAMLP, "Extensions"))
    extensions.append(original)
    evil.insert(2, extensions)
    _refused(
        saml_world, caplog, _post(saml_world, browser, etree.tostring(evil)), "not this element"
    )


def test_replay_is_refused(saml_world: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="xtreemgate.saml")
    browser, form = idp_response(saml_world)
    first = browser.post(
        f"{saml_world.gateway}/saml/acs", data=form, allow_redirects=False, timeout=10
    )
    assert first.status_code == 303
    before = sessions(saml_world)
    again = requests.post(
        f"{saml_world.gateway}/saml/acs", data=form, allow_redirects=False, timeout=10
    )
    _refused(saml_world, caplog, again, "already answered")
    assert sessions(saml_world) == before


def test_replay_cache_refuses_a_second_use_even_when_requests_are_not_checked(
    saml_world: Any,
) -> None:
    """The persisted replay cache, on its own: a fresh cache over the same database (as
    another gateway process would have) refuses an assertion ID the first one saw."""
    from gateway.saml.state import ReplayCache

    until = datetime.now(UTC) + timedelta(minutes=5)
    assert ReplayCache(saml_world.runtime.db).first_use("https://idp", "_a1", until)
    assert not ReplayCache(saml_world.runtime.db).first_use("https://idp", "_a1", until)
    assert ReplayCache(saml_world.runtime.db).first_use("https://other-idp", "_a1", until)


def test_comment_cannot_truncate_a_scoped_value(
    saml_world: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="xtreemgate.saml")
    browser, form = idp_response(saml_world, user="mallory", password="evil")
    before = sessions(saml_world)
    answer = _post(saml_world, browser, comment_truncation(_tree(form), saml_world))
    # The signature still verifies; the full value is read and its scope is refused.
    _refused(saml_world, caplog, answer, "'mallory@example.org.evil.net'")
    assert sessions(saml_world) == before


def test_unsolicited_is_accepted_where_allowed(saml_world: Any) -> None:
    """The same IdP-initiated (re-signed, no InResponseTo) Response passes a validator
    whose policy allows unsolicited Responses: the refusal above is the policy's."""
    import dataclasses

    from gateway.saml.response import ResponseValidator

    sp = saml_world.sp
    _browser, form = idp_response(saml_world)
    document = unsolicited(_tree(form), saml_world)
    allowing = ResponseValidator(
        dataclasses.replace(sp.validator.policy, allow_unsolicited=True),
        sp.federations,
        sp.requests,
        sp.replay,
        [sp.encryption.key_pem],
        sp.attribute_map,
    )
    result = allowing.validate(base64.b64encode(document).decode(), acs_url=sp.acs_url)
    assert result.request is None
    assert result.attributes["eduPersonPrincipalName"] == ["alice@example.org"]


# -- #16.1: an IdP of the federation speaking for another IdP's (or SP's) users -------
def _qualified(**qualifiers: str) -> Callable[[etree._Element], None]:
    def change(assertion: etree._Element) -> None:
        name_id = assertion.find(f"{q(SAML, 'Subject')}/{q(SAML, 'NameID')}")
        name_id.set("Format", "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent")
        name_id.text = "victim-persistent-id"
        for attribute, value in qualifiers.items():
            name_id.set(attribute, value)

    return change


QUALIFIER_CASES = {
    "other-idp": (
        _qualified(NameQualifier="https://victim-idp.example.net/idp"),
        "NameQualifier 'https://victim-idp.example.net/idp' is not the issuing IdP",
    ),
    "other-sp": (
        _qualified(SPNameQualifier="https://other-sp.example.net/sp"),
        "SPNameQualifier 'https://other-sp.example.net/sp' is not this SP",
    ),
}


@pytest.mark.parametrize("case", list(QUALIFIER_CASES))
def test_nameid_qualified_by_another_party_is_refused(
    saml_world: Any, caplog: pytest.LogCaptureFixture, case: str
) -> None:
    caplog.set_level(logging.INFO, logger="xtreemgate.saml")
    change, words = QUALIFIER_CASES[case]
    browser, form = idp_response(saml_world)
    before = sessions(saml_world)
    answer = _post(saml_world, browser, _resigned(change)(_tree(form), saml_world))
    _refused(saml_world, caplog, answer, words)
    assert sessions(saml_world) == before


def test_persistent_nameid_is_qualified_by_the_issuer(saml_world: Any) -> None:
    """Qualifiers that name the issuer and this SP pass; the principal is built from
    the issuer, never from the attributes as sent."""
    sp = saml_world.sp
    sp_config = sp.config.identifier
    browser, form = idp_response(saml_world)
    change = _qualified(NameQualifier=saml_world.idp.entity_id, SPNameQualifier=sp.entity_id)
    document = _resigned(change)(_tree(form), saml_world)
    sp.config.identifier = ["persistent-nameid"]
    try:
        answer = _post(saml_world, browser, document)
    finally:
        sp.config.identifier = sp_config
    assert answer.status_code == 303, answer.text
    me = browser.get(f"{saml_world.gateway}/saml/session", timeout=10).json()
    assert me["name"] == f"{saml_world.idp.entity_id}!{sp.entity_id}!victim-persistent-id"


# -- #16.2: hostile input is a 4xx with the reason, never a 500 -----------------------
def _twice_signed_assertion(root: etree._Element, world: Any) -> bytes:
    assertion = _assertion(root)
    signature = assertion.find(q(DS, "Signature"))
    assertion.insert(assertion.index(signature) + 1, copy.deepcopy(signature))
    return etree.tostring(root)


def _far_future(assertion: etree._Element) -> None:
    for node in assertion.iter(q(SAML, "Conditions"), q(SAML, "SubjectConfirmationData")):
        node.set("NotOnOrAfter", "9999-12-31T23:59:59Z")


def test_two_signatures_on_the_assertion_are_refused(
    saml_world: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="xtreemgate.saml")
    browser, form = idp_response(saml_world)
    answer = _post(saml_world, browser, _twice_signed_assertion(_tree(form), saml_world))
    _refused(saml_world, caplog, answer, "<Assertion> has 2 signatures")


def test_two_signatures_on_the_response_are_refused(
    saml_world: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="xtreemgate.saml")
    browser, form = idp_response(saml_world, sign_response=True)
    root = _tree(form)
    signature = root.find(q(DS, "Signature"))
    root.insert(root.index(signature) + 1, copy.deepcopy(signature))
    answer = _post(saml_world, browser, etree.tostring(root))
    _refused(saml_world, caplog, answer, "<Response> has 2 signatures")


def test_a_year_9999_validity_is_refused(saml_world: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="xtreemgate.saml")
    browser, form = idp_response(saml_world)
    answer = _post(saml_world, browser, _resigned(_far_future)(_tree(form), saml_world))
    _refused(saml_world, caplog, answer, "'9999-12-31T23:59:59Z' is beyond the year 9000")


def test_an_oversized_form_is_a_4xx_with_the_reason(saml_world: Any) -> None:
    """Bigger than the framework's form parser takes: its own error, answered."""
    answer = requests.post(
        f"{saml_world.gateway}/saml/acs",
        data={"SAMLResponse": "A" * (1024 * 1024 + 16)},
        allow_redirects=False,
        timeout=30,
    )
    assert 400 <= answer.status_code < 500, answer.text
    assert answer.headers["Content-Type"] == "application/problem+json"
    assert "KB" in answer.json()["detail"] or "large" in answer.json()["detail"]
