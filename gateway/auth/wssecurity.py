"""WS-Security UsernameToken (OASIS WSS UsernameToken Profile 1.0) for the SOAP endpoint.

The SOAP front end hands the ``wsse:Security`` header element over in
``AuthRequest.extra["wsse_security"]``; other front ends never do, so this authenticator
only ever decides SOAP requests.

- **PasswordText** carries the local user's password itself: accepted only over TLS, or
  from loopback when ``auth.wss.password_text = "tls-or-loopback"`` (the default), and
  checked against the stored scrypt hash like HTTP Basic.
- **PasswordDigest** is Base64(SHA-1(nonce + created + password)): the server must know
  the password in clear, which the gateway never stores. So the digest password is a
  per-user *WS-Security key*, ``HMAC-SHA256(site key, user name)``, that the gateway can
  recompute and hands to the user (``xtreemgate user wss-key NAME``); the site key lives
  in the shared store, so every gateway process agrees. It is not the login password.
- Replay: ``wsu:Created`` must be within ``auth.wss.max_age`` (plus ``clock_skew``), and a
  nonce is stored in the ``wss_nonces`` table for that window; the primary key makes a
  second use fail in every gateway process sharing the database.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import ipaddress
import secrets
from datetime import UTC, datetime, timedelta

from lxml import etree
from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError

from backends.contracts.model import Principal
from backends.store import Database
from backends.store.flags import ServiceFlags
from backends.store.tables.identity import SeenNonce
from gateway.auth.chain import AuthenticationFailed, AuthRequest
from gateway.auth.users import check_password, get_user
from gateway.config import WSSecuritySettings
from gateway.xmlns import WSSE, WSU

TOKEN_PROFILE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0"  # noqa: S105
PASSWORD_TEXT = f"{TOKEN_PROFILE}#PasswordText"
PASSWORD_DIGEST = f"{TOKEN_PROFILE}#PasswordDigest"
SITE_KEY_FLAG = "wss.digest_site_key"
EXTRA_KEY = "wsse_security"


def _find(parent: etree._Element, namespace: str, name: str) -> etree._Element | None:
    found = parent.find(f"{{{namespace}}}{name}")
    if found is None:  # some toolkits leave UsernameToken children unqualified
        found = parent.find(name)
    return found


def _text(el: etree._Element | None) -> str:
    return (el.text or "").strip() if el is not None else ""


def parse_created(value: str) -> datetime:
    text = value.strip().replace("Z", "+00:00")
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def password_digest(nonce: bytes, created: str, password: str) -> str:
    return base64.b64encode(
        hashlib.sha1(nonce + created.encode() + password.encode()).digest()  # noqa: S324 - the profile's algorithm
    ).decode()


class WSSecurityAuthenticator:
    mechanism = "wss"

    def __init__(self, db: Database, settings: WSSecuritySettings) -> None:
        self.db = db
        self.settings = settings
        self._site_key: bytes | None = None

    # -- the per-user digest key ---------------------------------------------------------
    def site_key(self) -> bytes:
        if self._site_key is None:
            stored = ServiceFlags(self.db.engine).setdefault(SITE_KEY_FLAG, secrets.token_hex(32))
            self._site_key = bytes.fromhex(stored)
        return self._site_key

    def digest_key(self, username: str) -> str:
        """The password a user puts in a PasswordDigest token (see the module docstring)."""
        mac = hmac.new(self.site_key(), b"wss-digest\0" + username.encode(), hashlib.sha256)
        return base64.urlsafe_b64encode(mac.digest()[:18]).decode()

    # -- Authenticator protocol ----------------------------------------------------------
    def present(self, request: AuthRequest) -> bool:
        return request.extra.get(EXTRA_KEY) is not None

    def blocking(self, request: AuthRequest) -> bool:
        return True  # database, and scrypt for PasswordText

    def challenge(self) -> str:
        return ""  # not an HTTP scheme: nothing to offer in WWW-Authenticate

    def _fail(self, reason: str) -> AuthenticationFailed:
        return AuthenticationFailed(reason, self.mechanism)

    def authenticate(self, request: AuthRequest) -> Principal:
        security = request.extra[EXTRA_KEY]
        assert isinstance(security, etree._Element)
        token = _find(security, WSSE, "UsernameToken")
        if token is None:
            raise self._fail(
                "the wsse:Security header holds no wsse:UsernameToken (the only token "
                "type accepted here)"
            )
        username = _text(_find(token, WSSE, "Username"))
        password_el = _find(token, WSSE, "Password")
        if not username or password_el is None:
            raise self._fail("the UsernameToken needs a Username and a Password")
        password = password_el.text or ""
        kind = password_el.get("Type", PASSWORD_TEXT)
        nonce_text = _text(_find(token, WSSE, "Nonce"))
        created_text = _text(_find(token, WSU, "Created"))
        if kind == PASSWORD_DIGEST:
            principal = self._digest(username, password, nonce_text, created_text)
        elif kind == PASSWORD_TEXT:
            principal = self._text_password(request, username, password)
        else:
            raise self._fail(f"password type {kind!r} is not supported")
        if created_text:
            self._fresh(created_text)
        if nonce_text:
            self._remember_nonce(username, nonce_text)
        return principal

    def _text_password(self, request: AuthRequest, username: str, password: str) -> Principal:
        policy = self.settings.password_text
        loopback = False
        with contextlib.suppress(ValueError):
            loopback = ipaddress.ip_address(request.remote_addr).is_loopback
        if policy == "never" or not (
            request.transport_secure or (policy == "tls-or-loopback" and loopback)
        ):
            raise self._fail(
                "a PasswordText UsernameToken is accepted only over TLS"
                + (" or from loopback" if policy == "tls-or-loopback" else "")
                + "; use https or a PasswordDigest token"
                if policy != "never"
                else "PasswordText UsernameTokens are disabled here; use a PasswordDigest token"
            )
        user = check_password(self.db, username, password)
        if user is None:
            raise self._fail("unknown user, wrong password or disabled account")
        return self._principal(user)

    def _digest(self, username: str, digest: str, nonce_text: str, created: str) -> Principal:
        if not nonce_text or not created:
            raise self._fail("a PasswordDigest token needs wsse:Nonce and wsu:Created")
        try:
            nonce = base64.b64decode(nonce_text, validate=True)
        except ValueError as exc:
            raise self._fail("wsse:Nonce is not base64") from exc
        user = get_user(self.db, username)
        expected = password_digest(nonce, created, self.digest_key(username))
        if user is None or user.disabled or not hmac.compare_digest(expected, digest.strip()):
            raise self._fail(
                "unknown user, wrong digest or disabled account (the digest password is "
                "the user's WS-Security key, not the login password)"
            )
        return self._principal(user)

    def _principal(self, user: object) -> Principal:
        return Principal(
            name=user.username,  # type: ignore[attr-defined]
            authenticated_by=self.mechanism,
            display_name=user.display_name,  # type: ignore[attr-defined]
            site_admin=user.site_admin,  # type: ignore[attr-defined]
        )

    def _fresh(self, created_text: str) -> None:
        try:
            created = parse_created(created_text)
        except ValueError as exc:
            raise self._fail(f"wsu:Created {created_text!r} is not an xsd:dateTime") from exc
        now = datetime.now(UTC)
        if created > now + timedelta(seconds=self.settings.clock_skew):
            raise self._fail("wsu:Created lies in the future; check the client's clock")
        if now - created > timedelta(seconds=self.settings.max_age + self.settings.clock_skew):
            raise self._fail(
                f"the UsernameToken was created at {created_text}, more than "
                f"{self.settings.max_age} s ago; send a fresh one"
            )

    def _remember_nonce(self, username: str, nonce_text: str) -> None:
        digest = hashlib.sha256(f"{username}\0{nonce_text}".encode()).hexdigest()
        now = datetime.now(UTC)
        window = timedelta(seconds=self.settings.max_age + 2 * self.settings.clock_skew)
        try:
            with self.db.session() as session:
                session.add(SeenNonce(digest=digest, expires_at=now + window))
        except IntegrityError as exc:
            raise self._fail("this UsernameToken nonce was used before (a replay)") from exc
        if secrets.randbelow(100) == 0:  # now and then, forget nonces past their window
            with self.db.session() as session:
                session.execute(delete(SeenNonce).where(SeenNonce.expires_at < now))
