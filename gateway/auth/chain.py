"""The authenticator chain: each authenticator looks for its own credential; the first
that finds one decides, and either yields the principal or refuses with a reason.

Front ends hand the chain an :class:`AuthRequest` (headers and transport facts), so the
same chain serves the OpenAPI routes, the SOAP endpoint and the portal. Later mechanisms
(Negotiate, SAML sessions, WS-Security, client certificates) are more authenticators.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from backends.contracts.model import Principal, VOMembership
from backends.store import Database
from gateway.auth.memberships import VO_TOKEN_MECHANISM
from gateway.auth.tokens import TokenError, TokenService
from gateway.auth.users import check_password
from gateway.auth.vo_tokens import VOTokenService, is_vo_token


class AuthenticationFailed(Exception):
    """Credentials were presented and refused: answer ``status`` (401 unless told) with
    ``reason``. 403: the credentials are good but the site refuses this caller at the
    door; 503: a service needed to decide (the directory) did not answer."""

    def __init__(self, reason: str, mechanism: str, status: int = 401) -> None:
        super().__init__(reason)
        self.reason = reason
        self.mechanism = mechanism
        self.status = status


@dataclass(frozen=True)
class AuthRequest:
    """What an authenticator may look at. Header names are lower case."""

    headers: Mapping[str, str]
    remote_addr: str = ""
    transport_secure: bool = False
    extra: Mapping[str, object] = field(default_factory=dict)
    # Headers an authenticator asks the front end to send with a successful answer,
    # names lower case (e.g. the Negotiate mutual-authentication token, RFC 4559 §5).
    response_headers: dict[str, str] = field(default_factory=dict)

    def authorization(self, scheme: str) -> str | None:
        """The credentials after ``Authorization: <scheme> `` (scheme case-insensitive)."""
        value = self.headers.get("authorization", "")
        name, _, credentials = value.partition(" ")
        if name.lower() != scheme.lower():
            return None
        return credentials.strip()


class Authenticator(Protocol):
    mechanism: str

    def present(self, request: AuthRequest) -> bool:
        """Whether the request carries this authenticator's kind of credential."""

    def blocking(self, request: AuthRequest) -> bool:
        """Whether authenticating may block (I/O, a slow KDF): run it off the event loop."""

    def authenticate(self, request: AuthRequest) -> Principal:
        """The principal, or :class:`AuthenticationFailed`."""

    def challenge(self) -> str:
        """The ``WWW-Authenticate`` value that invites this credential."""


class BearerAuthenticator:
    """``Authorization: Bearer <JWT>`` issued by this gateway, or a VO attribute token
    (header ``typ: vo+jwt``) of this gateway or of a trusted one (gateway/auth/vo_tokens)."""

    mechanism = "bearer"

    def __init__(
        self, tokens: TokenService, realm: str, vo_tokens: VOTokenService | None = None
    ) -> None:
        self.tokens = tokens
        self.realm = realm
        self.vo_tokens = vo_tokens

    def present(self, request: AuthRequest) -> bool:
        return request.authorization("Bearer") is not None

    def blocking(self, request: AuthRequest) -> bool:
        token = request.authorization("Bearer") or ""
        if self.vo_tokens is not None and is_vo_token(token):
            return self.vo_tokens.blocking(token)  # a remote issuer's keys may be fetched
        return False  # a cache lookup or one signature check, in memory

    def _vo_principal(self, token: str) -> Principal:
        assert self.vo_tokens is not None
        try:
            verified = self.vo_tokens.verify(token)
        except TokenError as exc:
            raise AuthenticationFailed(exc.reason, self.mechanism) from exc
        claims = verified.claims
        return Principal(
            name=verified.subject
            if verified.local
            else self.vo_tokens.remote_principal_name(verified.subject, verified.issuer),
            authenticated_by=VO_TOKEN_MECHANISM,
            display_name=claims.get("name", ""),
            memberships=verified.memberships,
            attributes=claims,
        )

    def authenticate(self, request: AuthRequest) -> Principal:
        token = request.authorization("Bearer") or ""
        if self.vo_tokens is not None and is_vo_token(token):
            return self._vo_principal(token)
        try:
            claims = self.tokens.verify(token)
        except TokenError as exc:
            raise AuthenticationFailed(exc.reason, self.mechanism) from exc
        return Principal(
            name=claims["sub"],
            authenticated_by=self.mechanism,
            display_name=claims.get("name", ""),
            memberships=_login_memberships(claims),
            attributes=claims,
            site_admin=claims.get("site_admin") is True,
        )

    def challenge(self) -> str:
        return f'Bearer realm="{self.realm}"'


class BasicAuthenticator:
    """``Authorization: Basic`` against local users, with a short cache of verified pairs.

    The cache key is an HMAC of the pair under a per-process secret, so the cache never
    holds a password, and a changed password misses it.
    """

    mechanism = "basic"

    def __init__(self, db: Database, realm: str, cache_seconds: int) -> None:
        self.db = db
        self.realm = realm
        self.cache_seconds = cache_seconds
        self._secret = secrets.token_bytes(32)
        self._cache: dict[bytes, tuple[float, Principal]] = {}
        self._lock = threading.Lock()

    def present(self, request: AuthRequest) -> bool:
        return request.authorization("Basic") is not None

    def _pair(self, request: AuthRequest) -> tuple[str, str]:
        encoded = request.authorization("Basic") or ""
        try:
            decoded = base64.b64decode(encoded, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise AuthenticationFailed(
                "Basic credentials are not base64 of 'user:password' in UTF-8", self.mechanism
            ) from exc
        username, sep, password = decoded.partition(":")
        if not sep or not username:
            raise AuthenticationFailed(
                "Basic credentials lack the ':' between user and password", self.mechanism
            )
        return username, password

    def _key(self, username: str, password: str) -> bytes:
        return hmac.new(self._secret, f"{username}\0{password}".encode(), hashlib.sha256).digest()

    def _cached(self, request: AuthRequest) -> Principal | None:
        if not self.cache_seconds:
            return None
        try:
            key = self._key(*self._pair(request))
        except AuthenticationFailed:
            return None
        hit = self._cache.get(key)
        return hit[1] if hit and hit[0] > time.monotonic() else None

    def blocking(self, request: AuthRequest) -> bool:
        return self._cached(request) is None

    def authenticate(self, request: AuthRequest) -> Principal:
        cached = self._cached(request)
        if cached is not None:
            return cached
        username, password = self._pair(request)
        user = check_password(self.db, username, password)
        if user is None:
            raise AuthenticationFailed(
                "unknown user, wrong password or disabled account", self.mechanism
            )
        principal = Principal(
            name=user.username,
            authenticated_by=self.mechanism,
            display_name=user.display_name,
            site_admin=user.site_admin,
        )
        if self.cache_seconds:
            with self._lock:
                if len(self._cache) > 10_000:
                    self._cache.clear()
                self._cache[self._key(username, password)] = (
                    time.monotonic() + self.cache_seconds,
                    principal,
                )
        return principal

    def challenge(self) -> str:
        return f'Basic realm="{self.realm}", charset="UTF-8"'


class AuthChain:
    """Authenticators in configured order; the first whose credential is present decides."""

    def __init__(self, authenticators: Sequence[Authenticator]) -> None:
        self.authenticators = list(authenticators)

    def select(self, request: AuthRequest) -> Authenticator | None:
        return next((a for a in self.authenticators if a.present(request)), None)

    def authenticate(self, request: AuthRequest) -> Principal | None:
        """The principal; None when no credential is presented at all."""
        authenticator = self.select(request)
        return authenticator.authenticate(request) if authenticator else None

    def challenges(self) -> list[str]:
        """HTTP challenges; mechanisms that are not HTTP schemes (WS-Security) offer none."""
        return [c for c in (a.challenge() for a in self.authenticators) if c]


def _login_memberships(claims: dict[str, Any]) -> tuple[VOMembership, ...]:
    """The memberships a SAML login established (trusted IdP entitlements), which
    /saml/token writes into the gateway's own signed token as ``vos``: the same login
    then gives the same VOs to OCCI and BES clients. Only this gateway's own tokens reach
    here, and no client chooses their claims; anything malformed is ignored."""
    if claims.get("auth") != "saml" or not isinstance(claims.get("vos"), list):
        return ()
    found: list[VOMembership] = []
    for item in claims["vos"]:
        if not isinstance(item, dict) or not isinstance(item.get("vo"), str) or not item["vo"]:
            continue
        group, roles = item.get("group", ""), item.get("roles", [])
        if not isinstance(group, str) or not isinstance(roles, list):
            continue
        found.append(VOMembership(item["vo"], group, tuple(r for r in roles if isinstance(r, str))))
    return tuple(found)
