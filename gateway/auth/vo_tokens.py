"""Signed VO attribute tokens: short-lived JWTs carrying the caller's VO memberships as
AARC-G002 entitlements (``eduperson_entitlement``), signed with the gateway's key ring.

Header ``typ: vo+jwt`` tells them from plain bearer tokens. They are accepted

- by this gateway (and every process sharing its database): the signature, and the
  token's ``xg_epoch`` against the principal's membership epoch now. Removing, suspending
  or expiring a membership, or dropping a role, bumps the epoch, so a token claiming the
  old memberships is refused at once (other processes: within ``vo.refresh_interval``);
- by another xtreemgate that lists this one in ``[[vo.trusted_issuers]]``: it fetches and
  caches our JWKS (an unknown kid re-fetches, at most every ``vo.jwks_refetch_interval``
  seconds), and our revocation list (``GET /api/v1/vo/revocations``: sha256 of each
  principal whose epoch moved within the longest token lifetime → the epoch now) every
  ``vo.revocation_refresh`` seconds. A revocation reaches it within that interval, and in
  any case the token expires after ``vo.tokens.lifetime`` (300 s by default). If the list
  cannot be fetched for three intervals, the issuer's tokens are refused (fail closed).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import secrets
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from fnmatch import fnmatch
from typing import Any

import jwt

from backends.contracts.entitlements import entitlements_of, memberships_from
from backends.contracts.model import VOMembership
from gateway.auth.tokens import TokenError, TokenService
from gateway.config import TrustedIssuer, VOSettings

VO_TOKEN_TYPE = "vo+jwt"  # noqa: S105 - a JOSE typ, not a secret
ALGORITHMS = ("ES256", "RS256", "EdDSA")


def is_vo_token(token: str) -> bool:
    """Whether a bearer token says it is a VO token: a routing hint read from the header
    segment alone (pyjwt's get_unverified_header decodes and checks all three segments,
    which cost more than the rest of the authentication on every request); the chosen
    verifier then checks everything."""
    try:
        segment = token.split(".", 1)[0]
        header = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return False
    return isinstance(header, dict) and header.get("typ") == VO_TOKEN_TYPE


def _unverified_claims(token: str) -> dict[str, Any]:
    """The payload, unverified: only to learn the issuer, hence the key to verify with."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, binascii.Error, UnicodeDecodeError) as exc:
        raise ValueError(f"not a JWS compact serialization: {exc}") from exc
    if not isinstance(claims, dict):
        raise ValueError("the payload is not a JSON object")
    return claims


@dataclass(frozen=True)
class VerifiedVOToken:
    subject: str
    issuer: str
    local: bool
    memberships: tuple[VOMembership, ...]
    claims: dict[str, Any]


def _fetch_json(url: str, timeout: float = 5.0) -> Any:
    request = urllib.request.Request(url, headers={"Accept": "application/json"})  # noqa: S310
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
        return json.loads(response.read(1_000_000))


@dataclass
class _Remote:
    """What we know of one trusted issuer: its keys and its revocation list."""

    config: TrustedIssuer
    keys: dict[str, Any] = field(default_factory=dict)  # kid -> PyJWK
    keys_at: float = float("-inf")
    forced_at: float = float("-inf")
    revoked: dict[str, int] = field(default_factory=dict)
    revoked_at: float = float("-inf")
    revoked_error: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def revocations_url(self) -> str:
        if self.config.revocations_url:
            return self.config.revocations_url
        parts = urllib.parse.urlsplit(self.config.jwks_url)
        return f"{parts.scheme}://{parts.netloc}/api/v1/vo/revocations"


class VOTokenService:
    def __init__(
        self,
        tokens: TokenService,
        settings: VOSettings,
        epoch: Callable[[str], int],
        *,
        authority: str,
        clock: Callable[[], float] = time.time,
        fetch: Callable[[str], Any] = _fetch_json,
        epoch_cached: Callable[[str], int | None] | None = None,
    ) -> None:
        self.tokens = tokens
        self.settings = settings
        self.epoch = epoch
        self.epoch_cached = epoch_cached
        self.authority = authority
        self.clock = clock
        self.fetch = fetch
        self.audiences = {settings.tokens.audience, tokens.settings.audience}
        self._remotes = {t.issuer: _Remote(t) for t in settings.trusted_issuers}
        self._verified: dict[str, dict[str, Any]] = {}

    # -- issuing -------------------------------------------------------------------------
    def issue(
        self,
        subject: str,
        memberships: tuple[VOMembership, ...] | list[VOMembership],
        *,
        audience: str | None = None,
        lifetime: int | None = None,
        not_after: float | None = None,
        name: str = "",
    ) -> tuple[str, int, list[str]]:
        """A signed VO token; returns it, its lifetime and the entitlements it carries."""
        key = self.tokens.keyring.signing_key()
        now = int(self.clock())
        cap = self.settings.tokens.lifetime
        exp = now + min(lifetime or cap, cap)
        if not_after is not None:
            exp = min(exp, int(not_after))
        if exp <= now:
            raise TokenError("the memberships this token would carry have expired")
        entitlements = entitlements_of(
            memberships, self.settings.entitlement_namespace, self.authority
        )
        payload = {
            "iss": self.tokens.issuer,
            "sub": subject,
            "aud": audience or self.settings.tokens.audience,
            "iat": now,
            "nbf": now,
            "exp": exp,
            "jti": secrets.token_urlsafe(16),
            "eduperson_entitlement": entitlements,
            "xg_epoch": self.epoch(subject),
        }
        if name:
            payload["name"] = name
        token = jwt.encode(
            payload,
            key.private,
            algorithm=key.algorithm,
            headers={"kid": key.kid, "typ": VO_TOKEN_TYPE},
        )
        return token, exp - now, entitlements

    # -- verifying -----------------------------------------------------------------------
    def verify(self, token: str) -> VerifiedVOToken:
        """The token's subject and memberships, or :class:`TokenError` saying why not."""
        now = self.clock()
        claims = self._verified.get(token)
        if claims is None:
            claims = self._check_signature(token)
            if len(self._verified) >= 10_000:
                self._verified.pop(next(iter(self._verified)), None)
            self._verified[token] = claims
        if claims["exp"] + self.tokens.settings.leeway <= now:
            self._verified.pop(token, None)
            raise TokenError("VO token expired")
        issuer = claims["iss"]
        local = issuer == self.tokens.issuer
        epoch = claims.get("xg_epoch", 0)
        if local:
            if self.epoch(claims["sub"]) > epoch:
                raise TokenError(
                    f"VO memberships of {claims['sub']} were revoked or reduced after this "
                    "token was issued: get a new one"
                )
        else:
            self._check_remote_revocation(self._remotes[issuer], claims["sub"], epoch)
        memberships, _refused = memberships_from(list(claims.get("eduperson_entitlement", [])))
        if not local:
            allowed = self._remotes[issuer].config.vos
            memberships = [m for m in memberships if any(fnmatch(m.vo, p) for p in allowed)]
        return VerifiedVOToken(claims["sub"], issuer, local, tuple(memberships), claims)

    def _check_signature(self, token: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
            unverified = _unverified_claims(token)
        except (jwt.DecodeError, ValueError) as exc:
            raise TokenError(f"malformed VO token: {exc}") from exc
        kid, issuer = header.get("kid"), unverified.get("iss")
        if not isinstance(kid, str):
            raise TokenError("VO token has no key id (kid) in its header")
        if issuer == self.tokens.issuer:
            local_key = self.tokens.keyring.verification_key(kid)
            if local_key is None:
                raise TokenError(f"VO token signed with unknown or retired key id {kid!r}")
            key, algorithm = local_key.public, local_key.algorithm
        elif issuer in self._remotes:
            jwk = self._remote_key(self._remotes[issuer], kid)
            key, algorithm = jwk.key, jwk.algorithm_name
        else:
            raise TokenError(f"VO token issuer {issuer!r} is not trusted here (vo.trusted_issuers)")
        if algorithm not in ALGORITHMS:
            raise TokenError(f"VO token algorithm {algorithm!r} is not accepted")
        try:
            return jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                audience=sorted(self.audiences),
                issuer=issuer,
                leeway=self.tokens.settings.leeway,
                options={"require": ["exp", "iat", "sub", "aud", "iss"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise TokenError("VO token expired") from exc
        except jwt.InvalidAudienceError as exc:
            accepted = ", ".join(sorted(self.audiences))
            raise TokenError(
                f"VO token audience is not this gateway (accepted: {accepted})"
            ) from exc
        except jwt.InvalidSignatureError as exc:
            raise TokenError("VO token signature does not verify: it was altered") from exc
        except jwt.InvalidTokenError as exc:
            raise TokenError(f"invalid VO token: {exc}") from exc

    def blocking(self, token: str) -> bool:
        """Whether verifying may do I/O or a signature check (run it off the event loop):
        a remote issuer's keys or revocation list, a first sight, an uncached epoch."""
        claims = self._verified.get(token)
        if claims is None or claims["iss"] != self.tokens.issuer:
            return True  # first sight, or a remote issuer whose list may be re-fetched
        return self.epoch_cached is None or self.epoch_cached(claims["sub"]) is None

    # -- remote issuers ------------------------------------------------------------------
    def _remote_key(self, remote: _Remote, kid: str) -> Any:
        now = time.monotonic()
        with remote.lock:
            stale = now - remote.keys_at >= self.settings.jwks_cache_seconds
            unknown = kid not in remote.keys
            if stale or (unknown and now - remote.forced_at >= self.settings.jwks_refetch_interval):
                if unknown and not stale:
                    remote.forced_at = now
                try:
                    document = self.fetch(remote.config.jwks_url)
                    keys = jwt.PyJWKSet.from_dict(document)
                except (OSError, ValueError, jwt.PyJWKSetError) as exc:
                    if not remote.keys:
                        raise TokenError(
                            f"cannot fetch the keys of issuer {remote.config.issuer} from "
                            f"{remote.config.jwks_url}: {exc}"
                        ) from exc
                else:
                    remote.keys = {k.key_id: k for k in keys.keys if k.key_id}
                    remote.keys_at = now
            found = remote.keys.get(kid)
        if found is None:
            raise TokenError(f"issuer {remote.config.issuer} publishes no key {kid!r}")
        return found

    def _check_remote_revocation(self, remote: _Remote, subject: str, epoch: int) -> None:
        now = time.monotonic()
        refresh = self.settings.revocation_refresh
        with remote.lock:
            if now - remote.revoked_at >= refresh:
                try:
                    document = self.fetch(remote.revocations_url)
                    remote.revoked = {str(k): int(v) for k, v in document["subjects"].items()}
                    remote.revoked_at = now
                    remote.revoked_error = ""
                except (OSError, ValueError, KeyError, TypeError) as exc:
                    remote.revoked_error = str(exc)
            if now - remote.revoked_at > max(3 * refresh, 1.0):
                raise TokenError(
                    f"cannot confirm with issuer {remote.config.issuer} that this VO token "
                    f"is not revoked ({remote.revocations_url}: {remote.revoked_error})"
                )
            current = remote.revoked.get(hashlib.sha256(subject.encode()).hexdigest(), 0)
        if current > epoch:
            raise TokenError(
                f"issuer {remote.config.issuer} revoked VO memberships of {subject} after "
                "this token was issued"
            )

    def remote_principal_name(self, subject: str, issuer: str) -> str:
        """Remote users never collide with local ones: ``<sub>@<issuer host>``."""
        host = urllib.parse.urlsplit(issuer).netloc or issuer
        return f"{subject}@{host}"
