"""The service provider as one object: configuration, keys, federations, state, and the
protocol steps the endpoints call (AuthnRequest, ACS, logout, sessions)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import secrets
import threading
import urllib.parse
from collections.abc import Mapping
from dataclasses import asdict
from datetime import UTC, datetime, timedelta

from lxml import etree

from backends.contracts.model import HealthReport, Principal, VOMembership
from backends.store import Database
from gateway import xmlsafe
from gateway.config import Settings
from gateway.saml import binding, keys, protocol, spmetadata
from gateway.saml.attributes import AttributeMap
from gateway.saml.entitlements import EntitlementPolicy, LocalVO
from gateway.saml.federation import Federations, IdentityProvider
from gateway.saml.namespaces import (
    BINDING_POST,
    BINDING_REDIRECT,
    NAMEID_PERSISTENT,
    SAML,
    SAMLP,
    STATUS_SUCCESS,
    q,
)
from gateway.saml.response import (
    AuthenticatedAssertion,
    BrowserBinding,
    ResponseRejected,
    ResponseValidator,
    ValidationPolicy,
)
from gateway.saml.state import LoginSession, ReplayCache, RequestStore, SessionStore
from gateway.saml.timeutil import parse_datetime

log = logging.getLogger("xtreemgate.saml")


class SAMLError(Exception):
    """A SAML step cannot proceed for a reason the user or operator can act on."""

    def __init__(self, reason: str, status: int = 400) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


# The gateway's own pages a login may come back to (its browser front ends and APIs).
RETURN_PREFIXES = ("/portal", "/saml/", "/api/", "/ui")
DEFAULT_RETURN = "/saml/session"
REQUEST_COOKIE_PREFIX = "xg_saml_rq_"


def return_to_problem(value: str) -> str:
    """Why ``value`` is no place to send the browser after login, or "" when it is.

    Browsers normalise a Location before they follow it (the WHATWG URL parser drops
    tabs and newlines anywhere, leading and trailing spaces and controls, and reads a
    backslash as a slash), so ``/%09/evil.example/`` (a tab once decoded) would become
    ``//evil.example/``: anything but printable ASCII (which is also all a Location
    header carries), and the backslash, is refused outright, and what remains must be a
    path of this gateway."""
    if any(not 0x21 <= ord(c) <= 0x7E or c == "\\" for c in value):
        return "it contains spaces, control or non-ASCII characters, or backslashes"
    parts = urllib.parse.urlsplit(value)
    if parts.scheme or parts.netloc or not value.startswith("/") or value.startswith("//"):
        return "it is not a local path"
    path = parts.path
    if not any(
        path == p.rstrip("/") or path.startswith(p.rstrip("/") + "/") for p in RETURN_PREFIXES
    ):
        return f"it is not a page of this gateway (one under {', '.join(RETURN_PREFIXES)})"
    return ""


def check_return_to(value: str | None) -> str:
    """The return path a login request names; :class:`SAMLError` (400) says why not."""
    if not value:
        return DEFAULT_RETURN
    problem = return_to_problem(value)
    if problem:
        raise SAMLError(f"return_to {value!r} is refused: {problem}")
    return value


def safe_return_to(value: str | None) -> str:
    """Only a path of this gateway: a login must never redirect to another site (open
    redirect); anything else goes to the session page."""
    if not value or return_to_problem(value):
        return DEFAULT_RETURN
    return value


# Values that are user@scope (SAML subject-id and pairwise-id, eduPerson): the scope says
# which IdP may assert them, whatever saml.scoped_attributes lists. The principal's name
# and its memberships (eduPersonScopedAffiliation) are built from in-scope values only.
SCOPED = frozenset(
    {
        "subject-id",
        "pairwise-id",
        "eduPersonPrincipalName",
        "eduPersonUniqueId",
        "eduPersonScopedAffiliation",
    }
)
# Identifiers that are an IdP's NameID for this SP (no scope): qualified by the issuer.
QUALIFIED_IDENTIFIERS = frozenset({"eduPersonTargetedID"})


def _scoped_to(value: str, idp: IdentityProvider) -> bool:
    """Whether a value carries a scope of the issuing IdP (its shibmd:Scope):
    otherwise one IdP of a federation could log in as another's user."""
    _, at, scope = value.rpartition("@")
    return bool(at and scope) and idp.scope_allows(scope)


def _in_scope(attributes: dict[str, list[str]], idp: IdentityProvider) -> dict[str, list[str]]:
    """The attributes with every scoped value outside the IdP's scope dropped, as
    Shibboleth SP drops them (logged, so an operator sees what was ignored)."""
    kept: dict[str, list[str]] = {}
    for name, values in attributes.items():
        if name not in SCOPED:
            kept[name] = values
            continue
        kept[name] = [v for v in values if _scoped_to(v, idp)]
        for value in values:
            if value not in kept[name]:
                log.warning(
                    "SAML %s %r from %s is outside its shibmd:Scope %s: ignored",
                    name,
                    value,
                    idp.entity_id,
                    [s.value for s in idp.scopes],
                )
    return kept


class ServiceProvider:
    def __init__(
        self, settings: Settings, db: Database, local_vo: LocalVO = lambda _name: False
    ) -> None:
        """``local_vo`` says whether the VO backend manages a VO of that name (an IdP
        never grants such a membership unless saml.entitlement_authorities names it)."""
        self.settings = settings
        self.config = settings.saml
        self.public_url = settings.public_url
        self.entity_id = settings.saml_entity_id
        self.acs_url = f"{self.public_url}/saml/acs"
        self.slo_url = f"{self.public_url}/saml/slo"
        self.directory = settings.state_path / "saml"
        host = self.public_url.split("://", 1)[-1].split("/", 1)[0]
        self.signing = keys.load_or_generate(
            self.config.signing_key,
            self.config.signing_cert,
            self.directory,
            "signing",
            host,
            self.config.key_size,
        )
        self.encryption = keys.load_or_generate(
            self.config.encryption_key,
            self.config.encryption_cert,
            self.directory,
            "encryption",
            host,
            self.config.key_size,
        )
        self._signing_key = self.signing.private_key()
        self._cookie_secret = self._session_secret()
        self.federations = Federations(self.config.federations, cache_dir=self.directory)
        self.requests = RequestStore(db, self.config.request_lifetime)
        self.replay = ReplayCache(db)
        self.sessions = SessionStore(db)
        self.attribute_map = AttributeMap(self.config.attribute_map)
        self.entitlements = EntitlementPolicy.of(self.config, local_vo)
        self.validator = ResponseValidator(
            ValidationPolicy(
                entity_id=self.entity_id,
                clock_skew=self.config.clock_skew,
                want_response_signed=self.config.want_response_signed,
                want_assertions_signed=self.config.want_assertions_signed,
                want_assertions_encrypted=self.config.want_assertions_encrypted,
                allow_unsolicited=self.config.allow_unsolicited,
                scoped_attributes=tuple(self.config.scoped_attributes),
                accept_sha1=self.config.accept_sha1,
            ),
            self.federations,
            self.requests,
            self.replay,
            [self.encryption.key_pem],
            self.attribute_map,
        )
        self._metadata: tuple[datetime, bytes] | None = None
        self._metadata_lock = threading.Lock()

    def _session_secret(self) -> bytes:
        if self.config.session_secret:
            return self.config.session_secret.encode()
        path = self.directory / "session.key"
        if not path.exists():
            self.directory.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as out:
                out.write(secrets.token_bytes(32))
            if not path.exists():
                os.replace(tmp, path)
            else:
                tmp.unlink()
        return path.read_bytes()

    def start(self) -> None:
        self.federations.start()

    def health(self) -> HealthReport:
        """Healthy when every federation source has verified, unexpired metadata."""
        status = self.federations.status()
        broken = [s for s in status if not s["identity_providers"] or s["error"]]
        parts = [
            f"{s['source']}: {s['identity_providers']} IdPs"
            + (f" ({s['error']})" if s["error"] else "")
            for s in status
        ]
        detail = "; ".join(parts) or "no federation configured"
        return HealthReport(
            not broken,
            f"SP {self.entity_id}: {detail}",
            {"identity_providers": len(self.federations)},
        )

    def close(self) -> None:
        self.federations.stop()

    # -- metadata ------------------------------------------------------------------------
    def metadata(self) -> bytes:
        """Signed SP metadata, re-signed when half its validity has passed."""
        now = datetime.now(UTC)
        with self._metadata_lock:
            if self._metadata is None or self._metadata[0] <= now:
                document = spmetadata.build(
                    spmetadata.SPEndpoints(
                        entity_id=self.entity_id,
                        acs=self.acs_url,
                        slo=self.slo_url,
                        ecp_acs=f"{self.public_url}/saml/ecp",
                        discovery_response=f"{self.public_url}/saml/login",
                    ),
                    self.signing,
                    self.encryption,
                    want_assertions_signed=self.config.want_assertions_signed,
                    authn_requests_signed=self.config.sign_authn_requests != "never",
                    requested_attributes=self.config.requested_attributes,
                    display_name=self.config.display_name,
                    organization_url=self.config.organization_url,
                    contact_email=self.config.contact_email,
                    validity_seconds=self.config.metadata_validity,
                )
                renew = now + timedelta(seconds=self.config.metadata_validity // 2)
                self._metadata = (renew, document)
            return self._metadata[1]

    # -- Web Browser SSO -----------------------------------------------------------------
    def identity_provider(self, entity_id: str) -> IdentityProvider:
        idp = self.federations.lookup(entity_id)
        if idp is None:
            raise SAMLError(
                f"{entity_id!r} is not an identity provider in the federation metadata", 404
            )
        return idp

    def _sign_requests_for(self, idp: IdentityProvider) -> bool:
        mode = self.config.sign_authn_requests
        return mode == "always" or (mode == "when_wanted" and idp.want_authn_requests_signed)

    def authn_request_url(self, entity_id: str, return_to: str | None) -> str:
        """Where to send the browser (see :meth:`authn_request`)."""
        return self.authn_request(entity_id, return_to)[0]

    def authn_request(self, entity_id: str, return_to: str | None) -> tuple[str, str]:
        """Where to send the browser: the IdP's HTTP-Redirect SSO endpoint with a fresh
        AuthnRequest, remembered for the InResponseTo check; and the request's ID, whose
        :meth:`request_cookie` the browser must carry back to the ACS. A ``return_to``
        that is not a path of this gateway is refused (400) before anything is sent."""
        return_to = check_return_to(return_to)
        idp = self.identity_provider(entity_id)
        endpoint = idp.endpoint("sso", BINDING_REDIRECT)
        if endpoint is None:
            raise SAMLError(f"IdP {entity_id!r} has no HTTP-Redirect SingleSignOnService", 409)
        request_id = protocol.new_id()
        request = protocol.authn_request(
            self.entity_id,
            request_id,
            self.acs_url,
            BINDING_POST,
            destination=endpoint.location,
        )
        self.requests.remember(request_id, idp.entity_id, return_to)
        location = binding.encode(
            endpoint.location,
            "SAMLRequest",
            etree.tostring(request),
            signing_key=self._signing_key if self._sign_requests_for(idp) else None,
        )
        return location, request_id

    def request_cookie(self, request_id: str) -> tuple[str, str]:
        """The cookie (name, value) that binds an AuthnRequest to the browser that sent
        it, as Shibboleth SP's relay-state cookie does: a Response posted by a browser
        without it is refused, so nobody can log a victim's browser into the attacker's
        account (login CSRF) with a Response the attacker obtained. The value is a MAC
        of the request ID, so nothing more is stored."""
        return REQUEST_COOKIE_PREFIX + request_id, self._mac(f"authn:{request_id}")

    def browser_started(self, cookies: Mapping[str, str]) -> BrowserBinding:
        """Whether the browser carrying ``cookies`` started a given request."""

        def started(request_id: str) -> bool:
            name, value = self.request_cookie(request_id)
            return hmac.compare_digest(cookies.get(name, ""), value)

        return started

    # -- ECP (PAOS) -----------------------------------------------------------------------
    @property
    def ecp_url(self) -> str:
        return f"{self.public_url}/saml/ecp"

    def ecp_request(self) -> bytes:
        """The PAOS envelope with a fresh AuthnRequest; the client picks the IdP, so the
        request state accepts an answer from any IdP of the federation."""
        from gateway.saml import ecp

        request_id = protocol.new_id()
        self.requests.remember(request_id, "", "/saml/session")
        # The client, not the SP, picks the IdP, so "when_wanted" cannot know whether it
        # wants signed requests; ECP IdPs authenticate the user directly and rarely do.
        # (A signed request must also survive the client re-serialising it.)
        signing = None
        if self.config.sign_authn_requests == "always":
            signing = (self.signing.key_pem, self.signing.cert_pem)
        return ecp.authn_request_envelope(
            request_id, self.entity_id, self.ecp_url, self.config.display_name, signing
        )

    def consume_ecp(self, envelope: bytes) -> tuple[AuthenticatedAssertion, Principal]:
        from gateway.saml import ecp

        try:
            document = ecp.response_from_envelope(envelope)
        except ResponseRejected as exc:
            log.warning("SAML response refused: %s", exc.reason)
            raise
        return self.consume(document, acs_url=self.ecp_url)

    def consume(
        self,
        saml_response: str | bytes,
        *,
        acs_url: str | None = None,
        cookies: Mapping[str, str] | None = None,
    ) -> tuple[AuthenticatedAssertion, Principal]:
        """The ACS: a verified assertion and the principal it establishes, or
        :class:`ResponseRejected` (logged with its reason). ``str`` is the HTTP-POST
        binding's base64; ``bytes`` a Response document (PAOS). ``cookies`` are the
        posting browser's: a solicited Response must come back to the browser that sent
        the request (:meth:`request_cookie`); None only where no browser is involved."""
        browser = self.browser_started(cookies) if cookies is not None else None
        try:
            if isinstance(saml_response, bytes):
                assertion = self.validator.validate_xml(
                    saml_response, acs_url=acs_url or "", browser=browser
                )
            else:
                assertion = self.validator.validate(
                    saml_response, acs_url=self.acs_url, browser=browser
                )
            principal = self.principal(assertion)
        except ResponseRejected as exc:
            log.warning("SAML response refused: %s", exc.reason)
            raise
        log.info(
            "SAML login of %s from %s (%s)",
            principal.name,
            assertion.idp.entity_id,
            "+".join(assertion.signed) + (", encrypted" if assertion.encrypted else ""),
        )
        return assertion, principal

    def principal(self, assertion: AuthenticatedAssertion) -> Principal:
        """The principal an assertion establishes, built only from what the issuing IdP
        may say: scoped values in its shibmd:Scope, NameIDs qualified by it and us."""
        idp = assertion.idp
        attributes = _in_scope(assertion.attributes, idp)
        name = ""
        for choice in self.config.identifier:
            if choice == "persistent-nameid":
                if assertion.name_id_format == NAMEID_PERSISTENT and assertion.name_id:
                    # Shibboleth's form: qualified so two IdPs' values never collide;
                    # by the issuer and this SP, never by what the IdP claims.
                    name = "!".join((idp.entity_id, self.entity_id, assertion.name_id))
            elif attributes.get(choice):
                name = attributes[choice][0]
                if choice in QUALIFIED_IDENTIFIERS:  # a NameID's value, as persistent
                    name = "!".join((idp.entity_id, self.entity_id, name))
            if name:
                break
        if not name:
            raise ResponseRejected(
                f"the assertion carries none of the identifiers {self.config.identifier} "
                "(scoped ones must be in the issuing IdP's shibmd:Scope)"
            )
        display = next((attributes[a][0] for a in ("displayName", "cn") if attributes.get(a)), "")
        return Principal(
            name=name,
            authenticated_by="saml",
            display_name=display,
            memberships=self.entitlements.memberships(assertion.idp.entity_id, attributes),
            attributes={"idp": assertion.idp.entity_id, "saml": attributes},
        )

    # -- sessions ------------------------------------------------------------------------
    def start_session(self, assertion: AuthenticatedAssertion, principal: Principal) -> str:
        """A new login session; returns the cookie value."""
        expires = datetime.now(UTC) + timedelta(seconds=self.config.session_lifetime)
        if assertion.session_not_on_or_after is not None:
            expires = min(expires, assertion.session_not_on_or_after)
        token = self.sessions.create(
            LoginSession(
                subject=principal.name,
                principal=principal_to_json(principal),
                idp=assertion.idp.entity_id,
                name_id=assertion.name_id,
                name_id_format=assertion.name_id_format,
                session_index=assertion.session_index,
                expires_at=expires,
            )
        )
        return f"{token}.{self._mac(token)}"

    def _mac(self, token: str) -> str:
        digest = hmac.new(self._cookie_secret, token.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")

    def session_token(self, cookie: str) -> str | None:
        """The token inside a cookie whose MAC verifies, else None."""
        token, dot, mac = cookie.rpartition(".")
        if not dot or not token or not hmac.compare_digest(mac, self._mac(token)):
            return None
        return token

    def csrf_token(self, cookie: str, purpose: str = "portal") -> str:
        """A form token bound to this login session (a page's POST forms carry it), or
        "" without a valid session. Derived, so nothing more is stored."""
        token = self.session_token(cookie)
        return self._mac(f"csrf:{purpose}:{token}") if token else ""

    def check_csrf(self, cookie: str, value: str, purpose: str = "portal") -> bool:
        expected = self.csrf_token(cookie, purpose)
        return bool(expected) and hmac.compare_digest(expected, value or "")

    def session(self, cookie: str) -> tuple[LoginSession, Principal] | None:
        token = self.session_token(cookie)
        login = self.sessions.get(token) if token else None
        if login is None:
            return None
        return login, principal_from_json(login.principal)

    # -- single logout -------------------------------------------------------------------
    def logout_request_url(self, cookie: str) -> str | None:
        """End the local session; the IdP's SLO URL with a signed LogoutRequest, or None
        when the IdP has no HTTP-Redirect SLO endpoint (local logout only)."""
        token = self.session_token(cookie)
        login = self.sessions.end(token) if token else None
        if login is None:
            return None
        idp = self.federations.lookup(login.idp)
        endpoint = idp.endpoint("slo", BINDING_REDIRECT) if idp else None
        if endpoint is None:
            return None
        request = protocol.message("LogoutRequest", self.entity_id, destination=endpoint.location)
        name_id = etree.SubElement(request, q(SAML, "NameID"))
        name_id.text = login.name_id
        if login.name_id_format:
            name_id.set("Format", login.name_id_format)
        if login.session_index:
            etree.SubElement(request, q(SAMLP, "SessionIndex")).text = login.session_index
        return binding.encode(
            endpoint.location, "SAMLRequest", etree.tostring(request), signing_key=self._signing_key
        )

    def single_logout(self, raw_query: str) -> str | None:
        """The SLO endpoint (HTTP-Redirect). A LogoutRequest from an IdP ends the named
        sessions and returns the URL of our signed LogoutResponse; a LogoutResponse to our
        own request returns None (the caller sends the browser to the login page). Each
        refusal is logged with its reason (:class:`SAMLError`)."""
        try:
            return self._single_logout(raw_query)
        except SAMLError as exc:
            log.warning("single logout refused: %s", exc.reason)
            raise

    def _single_logout(self, raw_query: str) -> str | None:
        """Both kinds must carry a valid redirect signature by the IdP's metadata key
        over the very octets that are read, and name this SLO endpoint as Destination
        (profiles §4.4.4.1, bindings §3.4.5.2); a LogoutRequest must also be fresh
        (IssueInstant) and seen once (its ID in the replay cache)."""
        try:
            parts = binding.query_parts(raw_query)
        except binding.BindingError as exc:
            raise SAMLError(f"SLO message refused: {exc}") from exc
        kind = "SAMLRequest" if "SAMLRequest" in parts else "SAMLResponse"
        if kind not in parts:
            raise SAMLError("SLO needs a SAMLRequest or SAMLResponse parameter")
        if "SAMLRequest" in parts and "SAMLResponse" in parts:
            raise SAMLError("SLO takes a SAMLRequest or a SAMLResponse, not both")
        try:
            message = xmlsafe.parse(binding.message_of(parts, kind), max_bytes=binding.MAX_INFLATED)
        except (binding.BindingError, xmlsafe.UnsafeXML) as exc:
            raise SAMLError(f"{kind} refused: {exc}") from exc
        issuer = message.find(q(SAML, "Issuer"))
        entity_id = "".join(issuer.itertext()).strip() if issuer is not None else ""
        idp = self.federations.lookup(entity_id)
        if idp is None:
            raise SAMLError(f"{kind} from unknown issuer {entity_id!r}", 403)
        try:
            signed = binding.verify_query(parts, kind, idp.signing_certs)
        except binding.BindingError as exc:
            raise SAMLError(f"{kind} signature refused: {exc}", 403) from exc
        if not signed:
            raise SAMLError(f"{kind} is not signed by {entity_id!r}", 403)
        destination = message.get("Destination")
        if destination != self.slo_url:
            raise SAMLError(
                f"{kind} Destination {destination!r} is not this SLO endpoint ({self.slo_url})"
            )
        if kind == "SAMLResponse":
            log.info("single logout confirmed by %s", entity_id)
            return None
        if message.tag != q(SAMLP, "LogoutRequest"):
            raise SAMLError(f"expected a LogoutRequest, got {message.tag}")
        self._fresh_once(message, entity_id)
        name_id = message.find(q(SAML, "NameID"))
        indexes = [
            "".join(i.itertext()).strip() for i in message.iterchildren(q(SAMLP, "SessionIndex"))
        ]
        ended = self.sessions.end_by_name_id(
            entity_id, "".join(name_id.itertext()).strip() if name_id is not None else "", indexes
        )
        log.info("IdP-initiated logout from %s ended %d session(s)", entity_id, ended)
        endpoint = idp.endpoint("slo", BINDING_REDIRECT)
        if endpoint is None:
            raise SAMLError(f"IdP {entity_id!r} has no HTTP-Redirect SingleLogoutService", 409)
        answer = protocol.message(
            "LogoutResponse",
            self.entity_id,
            destination=endpoint.response_location or endpoint.location,
            InResponseTo=message.get("ID", ""),
        )
        status = etree.SubElement(answer, q(SAMLP, "Status"))
        etree.SubElement(status, q(SAMLP, "StatusCode"), Value=STATUS_SUCCESS)
        relay_state = urllib.parse.unquote_plus(parts.get("RelayState", ""))
        return binding.encode(
            endpoint.response_location or endpoint.location,
            "SAMLResponse",
            etree.tostring(answer),
            relay_state=relay_state,
            signing_key=self._signing_key,
        )

    def _fresh_once(self, request: etree._Element, issuer: str) -> None:
        """A LogoutRequest issued within the request lifetime (with clock skew), and
        never seen before: a captured signed request cannot be replayed to end a later
        session of that user."""
        request_id = request.get("ID") or ""
        if not request_id:
            raise SAMLError("LogoutRequest has no ID")
        try:
            issued = parse_datetime(request.get("IssueInstant") or "")
        except ValueError as exc:
            raise SAMLError(f"LogoutRequest IssueInstant: {exc}") from exc
        now = datetime.now(UTC)
        skew = timedelta(seconds=self.config.clock_skew)
        lifetime = timedelta(seconds=self.config.request_lifetime)
        if issued > now + skew:
            raise SAMLError(f"LogoutRequest is issued in the future ({issued.isoformat()})")
        if issued + lifetime + skew < now:
            raise SAMLError(
                f"LogoutRequest issued at {issued.isoformat()} is older than "
                f"{self.config.request_lifetime} s (saml.request_lifetime)"
            )
        if not self.replay.first_use(issuer, f"LogoutRequest:{request_id}", now + lifetime + skew):
            raise SAMLError(f"LogoutRequest {request_id!r} was already used (replay)", 403)


def principal_to_json(principal: Principal) -> dict:
    return {
        "name": principal.name,
        "display_name": principal.display_name,
        "memberships": [asdict(m) for m in principal.memberships],
        "attributes": dict(principal.attributes),
    }


def principal_from_json(data: dict) -> Principal:
    return Principal(
        name=data["name"],
        authenticated_by="saml",
        display_name=data.get("display_name", ""),
        memberships=tuple(
            VOMembership(m["vo"], m.get("group", ""), tuple(m.get("roles", ())))
            for m in data.get("memberships", [])
        ),
        attributes=data.get("attributes", {}),
    )
