"""The Web Browser SSO Response (SAML core §3.2.2, profiles §4.1.4): every check a
serious SP makes, in an order that keeps state untouched until the message is proven.

1. bytes → tree through :mod:`gateway.xmlsafe` (no DTD, no entities, bounded);
2. Issuer known from federation metadata, Destination is our ACS, Status is Success;
3. signatures with the IdP's metadata keys: the Response's own, and the Assertion's own
   (see :mod:`gateway.saml.dsig`); from then on only the verified elements are read —
   the Assertion is the single direct child of a verified Response or is itself verified;
4. an EncryptedAssertion is decrypted with the SP's encryption key;
5. Issuer, bearer SubjectConfirmation (Recipient, NotOnOrAfter, InResponseTo),
   Conditions (NotBefore/NotOnOrAfter with clock skew, Audience);
6. InResponseTo consumed from the outstanding requests, then the assertion ID recorded
   in the replay cache — the only two writes, both after every other check.
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol

import xmlsec
from lxml import etree

from gateway import xmlsafe
from gateway.saml import dsig
from gateway.saml.attributes import AttributeMap, element_text
from gateway.saml.federation import IdentityProvider
from gateway.saml.namespaces import CM_BEARER, SAML, SAMLP, STATUS_SUCCESS, XENC, q
from gateway.saml.timeutil import parse_datetime

log = logging.getLogger("xtreemgate.saml")

MAX_RESPONSE_BYTES = 512 * 1024
MAX_YEAR = 9000  # times past it are nonsense, and near 9999 the arithmetic overflows
_ENCRYPTION_ALGORITHMS = {
    "http://www.w3.org/2009/xmlenc11#aes128-gcm",
    "http://www.w3.org/2009/xmlenc11#aes192-gcm",
    "http://www.w3.org/2009/xmlenc11#aes256-gcm",
    "http://www.w3.org/2001/04/xmlenc#aes128-cbc",
    "http://www.w3.org/2001/04/xmlenc#aes192-cbc",
    "http://www.w3.org/2001/04/xmlenc#aes256-cbc",
    # pysaml2 IdPs encrypt with 3DES and cannot be told otherwise; accepted, not advertised.
    "http://www.w3.org/2001/04/xmlenc#tripledes-cbc",
    "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p",
    "http://www.w3.org/2009/xmlenc11#rsa-oaep",
}


class ResponseRejected(Exception):
    """The Response is refused; ``reason`` says which check failed, for logs and users."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class IdPDirectory(Protocol):
    def lookup(self, entity_id: str) -> IdentityProvider | None: ...


class OutstandingRequests(Protocol):
    def consume(self, request_id: str) -> object | None: ...


class BrowserBinding(Protocol):
    """Whether the browser posting a Response is the one that sent the request."""

    def __call__(self, request_id: str) -> bool: ...


class Replay(Protocol):
    def first_use(self, issuer: str, assertion_id: str, expires_at: datetime) -> bool: ...


@dataclass(frozen=True)
class ValidationPolicy:
    entity_id: str
    clock_skew: int = 180
    want_response_signed: bool = False
    want_assertions_signed: bool = True
    want_assertions_encrypted: bool = False
    allow_unsolicited: bool = False
    scoped_attributes: tuple[str, ...] = ()
    accept_sha1: bool = False


@dataclass
class AuthenticatedAssertion:
    """What a verified assertion says; built only from verified elements."""

    idp: IdentityProvider
    assertion_id: str
    name_id: str
    name_id_format: str
    name_qualifier: str
    sp_name_qualifier: str
    session_index: str
    session_not_on_or_after: datetime | None
    not_on_or_after: datetime
    attributes: dict[str, list[str]]
    request: object | None = None  # the outstanding request it answers
    authn_instant: datetime | None = None
    encrypted: bool = False
    signed: list[str] = field(default_factory=list)


def decode_post(value: str) -> bytes:
    """The HTTP-POST binding's base64 (whitespace tolerated, nothing else)."""
    try:  # strict (only the base64 alphabet, correct padding), in C
        data = binascii.a2b_base64(value.encode("ascii"), strict_mode=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        try:  # IdPs may wrap base64 in lines; only then is the copy without them made
            data = base64.b64decode("".join(value.split()), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ResponseRejected("SAMLResponse is not base64") from exc
    if len(data) > MAX_RESPONSE_BYTES:
        raise ResponseRejected(f"SAMLResponse is larger than {MAX_RESPONSE_BYTES} bytes")
    return data


def _time(node: etree._Element, attribute: str) -> datetime | None:
    value = node.get(attribute)
    if value is None:
        return None
    try:
        moment = parse_datetime(value)
    except ValueError as exc:
        raise ResponseRejected(f"{etree.QName(node).localname}/@{attribute}: {exc}") from exc
    if moment.year > MAX_YEAR:  # adding the clock skew to it would overflow
        raise ResponseRejected(
            f"{etree.QName(node).localname}/@{attribute} {value!r} is beyond the year {MAX_YEAR}"
        )
    return moment


def _one(parent: etree._Element, tag: str, what: str) -> etree._Element:
    found = parent.findall(tag)
    if len(found) != 1:
        raise ResponseRejected(f"expected exactly one {what}, found {len(found)}")
    return found[0]


class ResponseValidator:
    """Checks one POSTed Response; stateless apart from the two stores it writes last."""

    def __init__(
        self,
        policy: ValidationPolicy,
        idps: IdPDirectory,
        requests: OutstandingRequests,
        replay: Replay,
        decryption_keys: Sequence[bytes],
        attribute_map: AttributeMap,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.policy = policy
        self.idps = idps
        self.requests = requests
        self.replay = replay
        self.decryption_keys = [
            xmlsec.Key.from_memory(pem, xmlsec.KeyFormat.PEM) for pem in decryption_keys
        ]
        self.attribute_map = attribute_map
        self.clock = clock

    # -- the pipeline --------------------------------------------------------------------
    def validate(
        self, saml_response: str | bytes, *, acs_url: str, browser: BrowserBinding | None = None
    ) -> AuthenticatedAssertion:
        """A Response as the HTTP-POST binding carries it (base64); ``browser`` says
        whether a request ID was started by the browser that posts the answer."""
        data = decode_post(
            saml_response.decode() if isinstance(saml_response, bytes) else saml_response
        )
        return self.validate_xml(data, acs_url=acs_url, browser=browser)

    def validate_xml(
        self, data: bytes, *, acs_url: str, browser: BrowserBinding | None = None
    ) -> AuthenticatedAssertion:
        """A Response document as bytes (the PAOS binding carries it in a SOAP body).

        Whatever a hostile document makes the checks raise is a refusal with its reason,
        never an uncaught error (a 500 that loses the reason)."""
        try:
            return self._validate_xml(data, acs_url, browser)
        except dsig.SignatureError as exc:
            raise ResponseRejected(f"signature refused: {exc}") from exc
        except OverflowError as exc:
            raise ResponseRejected(f"a time in the Response is out of range ({exc})") from exc

    def _validate_xml(
        self, data: bytes, acs_url: str, browser: BrowserBinding | None
    ) -> AuthenticatedAssertion:
        try:
            root = xmlsafe.parse(data, max_bytes=MAX_RESPONSE_BYTES)
        except xmlsafe.UnsafeXML as exc:
            raise ResponseRejected(f"SAMLResponse refused: {exc}") from exc
        if root.tag != q(SAMLP, "Response"):
            raise ResponseRejected(f"expected samlp:Response, got {root.tag}")
        if root.get("Version") != "2.0":
            raise ResponseRejected(f"Response Version {root.get('Version')!r} is not 2.0")
        idp = self._issuer(root, None)
        destination = root.get("Destination")
        if destination is not None and destination != acs_url:
            raise ResponseRejected(f"Destination {destination!r} is not this ACS ({acs_url})")
        self._status(root)

        signed: list[str] = []
        response_signature = dsig.signature_of(root)
        if response_signature is not None:
            try:
                root = dsig.verify(root, idp.signing_keys(), allow_sha1=self.policy.accept_sha1)
            except dsig.SignatureError as exc:
                raise ResponseRejected(f"Response signature: {exc}") from exc
            if destination is None:  # profiles §3.5.5.2 for signed messages
                raise ResponseRejected("signed Response lacks the Destination attribute")
            signed.append("Response")
        elif self.policy.want_response_signed:
            raise ResponseRejected("Response is not signed, and this SP requires it")

        assertion, encrypted = self._the_assertion(root)
        if self.policy.want_assertions_encrypted and not encrypted:
            raise ResponseRejected("assertion is not encrypted, and this SP requires it")
        if dsig.signature_of(assertion) is not None:
            try:
                assertion = dsig.verify(
                    assertion, idp.signing_keys(), allow_sha1=self.policy.accept_sha1
                )
            except dsig.SignatureError as exc:
                raise ResponseRejected(f"Assertion signature: {exc}") from exc
            signed.append("Assertion")
        elif self.policy.want_assertions_signed:
            raise ResponseRejected("Assertion is not signed, and this SP requires it")
        if not signed:
            raise ResponseRejected("neither the Response nor the Assertion is signed")

        result = self._assertion(assertion, idp, root.get("InResponseTo"), acs_url)
        result.encrypted = encrypted
        result.signed = signed
        result.request = self._answered_request(root.get("InResponseTo"), idp, browser)
        if not self.replay.first_use(idp.entity_id, result.assertion_id, result.not_on_or_after):
            raise ResponseRejected(f"assertion {result.assertion_id!r} was already used (replay)")
        return result

    # -- the pieces ----------------------------------------------------------------------
    def _issuer(self, node: etree._Element, expected: IdentityProvider | None) -> IdentityProvider:
        issuer = node.find(q(SAML, "Issuer"))
        if issuer is None:
            if expected is not None and node.tag == q(SAMLP, "Response"):
                return expected  # optional on a Response (core §3.2.2)
            raise ResponseRejected(f"<{etree.QName(node).localname}> has no Issuer")
        entity_id = element_text(issuer)
        if expected is not None:
            if entity_id != expected.entity_id:
                raise ResponseRejected(
                    f"Assertion Issuer {entity_id!r} is not the Response's ({expected.entity_id!r})"
                )
            return expected
        idp = self.idps.lookup(entity_id)
        if idp is None:
            raise ResponseRejected(f"Issuer {entity_id!r} is not an IdP in the federation metadata")
        return idp

    @staticmethod
    def _status(root: etree._Element) -> None:
        status = root.find(q(SAMLP, "Status"))
        code = status.find(q(SAMLP, "StatusCode")) if status is not None else None
        value = code.get("Value") if code is not None else None
        if value != STATUS_SUCCESS:
            inner = code.find(q(SAMLP, "StatusCode")) if code is not None else None
            message = status.find(q(SAMLP, "StatusMessage")) if status is not None else None
            detail = " / ".join(
                x
                for x in (
                    value,
                    inner.get("Value") if inner is not None else "",
                    element_text(message) if message is not None else "",
                )
                if x
            )
            raise ResponseRejected(f"the IdP answered with status {detail or '(none)'}")

    def _the_assertion(self, root: etree._Element) -> tuple[etree._Element, bool]:
        plain = root.findall(q(SAML, "Assertion"))
        sealed = root.findall(q(SAML, "EncryptedAssertion"))
        if len(plain) + len(sealed) != 1:
            raise ResponseRejected(
                f"Response must carry exactly one Assertion or EncryptedAssertion, "
                f"found {len(plain)} and {len(sealed)}"
            )
        if plain:
            return plain[0], False
        return self._decrypt(sealed[0]), True

    def _decrypt(self, sealed: etree._Element) -> etree._Element:
        """The Assertion inside an EncryptedAssertion. Every failure gives the same
        reason, so the answers are no oracle for the ciphertext (the XML Encryption
        CBC and PKCS#1 v1.5 attacks); RSA v1.5 key transport is refused outright."""
        uniform = "EncryptedAssertion cannot be decrypted with the SP key"
        data = sealed.find(q(XENC, "EncryptedData"))
        if data is None:
            raise ResponseRejected("EncryptedAssertion has no xenc:EncryptedData")
        if not self.decryption_keys:
            raise ResponseRejected("EncryptedAssertion received but no decryption key is set")
        for method in sealed.iter(q(XENC, "EncryptionMethod")):
            if method.get("Algorithm") not in _ENCRYPTION_ALGORITHMS:
                raise ResponseRejected(
                    f"encryption algorithm {method.get('Algorithm')!r} is not accepted"
                )
        for key in self.decryption_keys:
            manager = xmlsec.KeysManager()
            manager.add_key(key)
            ctx = xmlsec.EncryptionContext(manager)
            try:
                ctx.decrypt(data)
            except xmlsec.Error:
                continue
            found = [c for c in sealed if isinstance(c.tag, str) and c.tag == q(SAML, "Assertion")]
            if len(found) != 1:
                break
            return found[0]
        raise ResponseRejected(uniform)

    def _assertion(
        self,
        assertion: etree._Element,
        idp: IdentityProvider,
        in_response_to: str | None,
        acs_url: str,
    ) -> AuthenticatedAssertion:
        now = self.clock()
        skew = timedelta(seconds=self.policy.clock_skew)
        if assertion.get("Version") != "2.0":
            raise ResponseRejected("Assertion Version is not 2.0")
        assertion_id = assertion.get("ID") or ""
        if not assertion_id:
            raise ResponseRejected("Assertion has no ID")
        self._issuer(assertion, idp)

        subject = _one(assertion, q(SAML, "Subject"), "Subject in the Assertion")
        name_id = subject.find(q(SAML, "NameID"))
        if name_id is not None:
            self._check_qualifiers(name_id, idp)
        confirmed_until: datetime | None = None
        reasons = []
        for confirmation in subject.iterchildren(q(SAML, "SubjectConfirmation")):
            if confirmation.get("Method") != CM_BEARER:
                continue
            data = confirmation.find(q(SAML, "SubjectConfirmationData"))
            if data is None:
                reasons.append("bearer confirmation without SubjectConfirmationData")
                continue
            recipient = data.get("Recipient")
            until = _time(data, "NotOnOrAfter")
            if recipient != acs_url:
                reasons.append(f"Recipient {recipient!r} is not this ACS ({acs_url})")
            elif until is None:
                reasons.append("bearer confirmation has no NotOnOrAfter")
            elif now >= until + skew:
                reasons.append(f"bearer confirmation expired at {until.isoformat()}")
            elif data.get("NotBefore") is not None:
                reasons.append("bearer confirmation must not carry NotBefore")
            elif data.get("InResponseTo") != in_response_to:
                reasons.append(
                    f"confirmation InResponseTo {data.get('InResponseTo')!r} does not match "
                    f"the Response's {in_response_to!r}"
                )
            else:
                confirmed_until = until
                break
        if confirmed_until is None:
            raise ResponseRejected(
                "no valid bearer SubjectConfirmation: " + ("; ".join(reasons) or "none present")
            )

        conditions = assertion.find(q(SAML, "Conditions"))
        not_on_or_after = confirmed_until
        if conditions is not None:
            not_before = _time(conditions, "NotBefore")
            until = _time(conditions, "NotOnOrAfter")
            if not_before is not None and now + skew < not_before:
                raise ResponseRejected(f"assertion is not valid before {not_before.isoformat()}")
            if until is not None:
                if now >= until + skew:
                    raise ResponseRejected(f"assertion expired at {until.isoformat()}")
                not_on_or_after = min(not_on_or_after, until)
            for restriction in conditions.iterchildren(q(SAML, "AudienceRestriction")):
                audiences = [element_text(a) for a in restriction.iterchildren(q(SAML, "Audience"))]
                if self.policy.entity_id not in audiences:
                    raise ResponseRejected(
                        f"assertion is for audience {audiences}, not {self.policy.entity_id!r}"
                    )
        if conditions is None or conditions.find(q(SAML, "AudienceRestriction")) is None:
            raise ResponseRejected("assertion has no AudienceRestriction")

        statement = assertion.find(q(SAML, "AuthnStatement"))
        if statement is None:
            raise ResponseRejected("assertion has no AuthnStatement")
        attributes = self.attribute_map.read(assertion)
        self._check_scopes(attributes, idp)
        return AuthenticatedAssertion(
            idp=idp,
            assertion_id=assertion_id,
            name_id=element_text(name_id) if name_id is not None else "",
            name_id_format=name_id.get("Format", "") if name_id is not None else "",
            # Checked above: the issuer and this SP, whatever the IdP sent or left out.
            name_qualifier=idp.entity_id,
            sp_name_qualifier=self.policy.entity_id,
            session_index=statement.get("SessionIndex", ""),
            session_not_on_or_after=_time(statement, "SessionNotOnOrAfter"),
            not_on_or_after=not_on_or_after + skew,
            attributes=attributes,
            authn_instant=_time(statement, "AuthnInstant"),
        )

    def _check_qualifiers(self, name_id: etree._Element, idp: IdentityProvider) -> None:
        """A NameID qualified by another IdP (or for another SP) is refused (core
        §2.2.2): a federation's IdP must not speak for another IdP's users."""
        qualifier = name_id.get("NameQualifier")
        if qualifier is not None and qualifier != idp.entity_id:
            raise ResponseRejected(
                f"NameID NameQualifier {qualifier!r} is not the issuing IdP {idp.entity_id!r}"
            )
        sp_qualifier = name_id.get("SPNameQualifier")
        if sp_qualifier is not None and sp_qualifier != self.policy.entity_id:
            raise ResponseRejected(
                f"NameID SPNameQualifier {sp_qualifier!r} is not this SP {self.policy.entity_id!r}"
            )

    def _check_scopes(self, attributes: dict[str, list[str]], idp: IdentityProvider) -> None:
        for name in self.policy.scoped_attributes:
            for value in attributes.get(name, ()):
                _, at, scope = value.rpartition("@")
                if not at or not scope:
                    raise ResponseRejected(f"{name} value {value!r} has no @scope")
                if not idp.scope_allows(scope):
                    raise ResponseRejected(
                        f"{name} value {value!r}: scope {scope!r} is not among the IdP's "
                        f"shibmd:Scope {[s.value for s in idp.scopes]}"
                    )

    def _answered_request(
        self, in_response_to: str | None, idp: IdentityProvider, browser: BrowserBinding | None
    ) -> object | None:
        if in_response_to is None:
            if not self.policy.allow_unsolicited:
                raise ResponseRejected("unsolicited Response (no InResponseTo) is not accepted")
            return None
        request = self.requests.consume(in_response_to)
        if request is None:
            raise ResponseRejected(
                f"InResponseTo {in_response_to!r} names no outstanding request of this SP "
                "(unknown, expired or already answered)"
            )
        # An ECP request names no IdP (the client picks one): "" accepts any known IdP.
        if getattr(request, "idp", idp.entity_id) not in ("", idp.entity_id):
            raise ResponseRejected(
                f"request {in_response_to!r} was sent to {request.idp!r}, "  # type: ignore[attr-defined]
                f"answered by {idp.entity_id!r}"
            )
        if browser is not None and not browser(in_response_to):
            raise ResponseRejected(
                f"request {in_response_to!r} was not started by this browser (its request "
                "cookie is missing: start the login again from this browser)"
            )
        return request
