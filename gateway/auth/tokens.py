"""Bearer tokens issued by the gateway: asymmetric JWTs, a key ring shared through the
database, published as a JWKS, rotated without downtime.

Rotation: a new key is inserted with ``not_before = now + publish_ahead``; from then on it
is published in the JWKS, and it signs once ``not_before`` has passed. Every older key gets
``retire_after = new.not_before + lifetime + leeway``: it stays published and accepted until
the last token it signed has expired. Each gateway process re-reads the ring every
``key_refresh`` seconds, and at once when it meets an unknown ``kid``, so a rotation done
by one process (or by ``xtreemgate keys rotate``) reaches all of them without a restart.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from backends.store import Database
from backends.store.tables.identity import SigningKey
from gateway.config import TokenSettings

_JWK_CODEC = {"ES256": ECAlgorithm, "RS256": RSAAlgorithm, "EdDSA": OKPAlgorithm}
# RFC 7638: the members that make up a key's thumbprint, per key type.
_THUMBPRINT_MEMBERS = {
    "EC": ("crv", "kty", "x", "y"),
    "RSA": ("e", "kty", "n"),
    "OKP": ("crv", "kty", "x"),
}


class TokenError(Exception):
    """A token was refused; ``reason`` tells the caller why, in words."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class KeyRingError(RuntimeError):
    """The key ring cannot be used (e.g. keys encrypted with another passphrase)."""


def _new_private_key(algorithm: str) -> Any:
    if algorithm == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    if algorithm == "RS256":
        return rsa.generate_private_key(public_exponent=65537, key_size=3072)
    if algorithm == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    raise KeyRingError(f"unsupported token algorithm {algorithm!r}")


def jwk_thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638 thumbprint, used as the key id: the same key always gets the same kid."""
    members = {k: jwk[k] for k in _THUMBPRINT_MEMBERS[jwk["kty"]]}
    canonical = json.dumps(members, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(hashlib.sha256(canonical).digest()).decode().rstrip("=")


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def _whole_second(ts: float) -> datetime:
    """Key times are stored floored to the second: fromtimestamp() rounds to the nearest
    microsecond, which could put a new key's start a hair after 'now'."""
    return _utc(math.floor(ts))


@dataclass(frozen=True)
class _LoadedKey:
    kid: str
    algorithm: str
    generation: int
    private: Any
    public: Any
    jwk: dict[str, Any]
    not_before: float
    retire_after: float | None


class KeyRing:
    """The signing keys of this gateway (and of every process sharing its database)."""

    def __init__(self, db: Database, settings: TokenSettings, clock: Any = time.time) -> None:
        self.db = db
        self.settings = settings
        self.clock = clock
        self._keys: list[_LoadedKey] = []
        self._loaded_at = float("-inf")
        self._last_forced = float("-inf")
        self._lock = threading.Lock()

    # -- writing the ring ----------------------------------------------------------------
    def _insert(self, generation: int, not_before: float, retire_older_at: float | None) -> bool:
        algorithm = self.settings.algorithm
        private = _new_private_key(algorithm)
        jwk = _JWK_CODEC[algorithm].to_jwk(private.public_key(), as_dict=True)
        kid = jwk_thumbprint(jwk)
        jwk.update(kid=kid, alg=algorithm, use="sig")
        passphrase = self.settings.key_passphrase.encode()
        encryption = (
            serialization.BestAvailableEncryption(passphrase)
            if passphrase
            else serialization.NoEncryption()
        )
        pem = private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
        )
        try:
            with self.db.session() as session:
                if retire_older_at is not None:
                    session.execute(
                        update(SigningKey)
                        .where(SigningKey.retire_after.is_(None))
                        .values(retire_after=_whole_second(retire_older_at))
                    )
                session.add(
                    SigningKey(
                        generation=generation,
                        kid=kid,
                        algorithm=algorithm,
                        private_pem=pem,
                        public_jwk=jwk,
                        not_before=_whole_second(not_before),
                    )
                )
        except IntegrityError:
            return False  # another process inserted this generation first
        return True

    def _max_generation(self) -> int:
        with self.db.session() as session:
            return session.scalar(select(func.max(SigningKey.generation))) or 0

    def ensure(self) -> None:
        """Create the first key if the ring is empty (safe when many processes start)."""
        if self._max_generation() == 0:
            self._insert(1, self.clock(), None)
        self.refresh(force=True)

    def rotate(self, publish_ahead: int | None = None) -> str:
        """Add a new signing key and schedule the older ones' retirement; returns its kid."""
        ahead = self.settings.publish_ahead if publish_ahead is None else publish_ahead
        now = self.clock()
        not_before = now + ahead
        retire = not_before + self.settings.lifetime + self.settings.leeway
        for _attempt in range(5):
            generation = self._max_generation() + 1
            if self._insert(generation, not_before, retire):
                self.refresh(force=True)
                return next(k.kid for k in self._keys if k.generation == generation)
        raise KeyRingError("could not rotate: other processes kept rotating at the same time")

    # -- reading the ring ----------------------------------------------------------------
    def refresh(self, force: bool = False) -> None:
        now = self.clock()
        if not force and now - self._loaded_at < self.settings.key_refresh:
            return
        with self._lock:
            if not force and now - self._loaded_at < self.settings.key_refresh:
                return
            with self.db.session() as session:
                rows = session.scalars(
                    select(SigningKey).order_by(SigningKey.generation.desc())
                ).all()
            loaded = [self._load(row) for row in rows if self._live(row, now)]
            self._keys = loaded
            self._loaded_at = now

    @staticmethod
    def _live(row: SigningKey, now: float) -> bool:
        return row.retire_after is None or row.retire_after.timestamp() > now

    def _load(self, row: SigningKey) -> _LoadedKey:
        passphrase = self.settings.key_passphrase.encode() or None
        try:
            private = serialization.load_pem_private_key(row.private_pem, password=passphrase)
        except (TypeError, ValueError) as exc:
            raise KeyRingError(
                f"signing key {row.kid} cannot be read with the configured "
                f"auth.tokens.key_passphrase: {exc}"
            ) from exc
        return _LoadedKey(
            kid=row.kid,
            algorithm=row.algorithm,
            generation=row.generation,
            private=private,
            public=private.public_key(),
            jwk=dict(row.public_jwk),
            not_before=row.not_before.timestamp(),
            retire_after=row.retire_after.timestamp() if row.retire_after else None,
        )

    def signing_key(self) -> _LoadedKey:
        self.refresh()
        now = self.clock()
        for key in self._keys:  # newest first
            if key.not_before <= now:
                return key
        self.refresh(force=True)
        for key in self._keys:
            if key.not_before <= now:
                return key
        raise KeyRingError("no signing key is active: run 'xtreemgate keys rotate'")

    def verification_key(self, kid: str) -> _LoadedKey | None:
        self.refresh()
        key = next((k for k in self._keys if k.kid == kid), None)
        now = self.clock()
        if key is None and now - self._last_forced >= 1.0:  # an unknown kid re-reads, rarely
            self._last_forced = now
            self.refresh(force=True)
            key = next((k for k in self._keys if k.kid == kid), None)
        if key is not None and key.retire_after is not None and key.retire_after <= now:
            return None
        return key

    def jwks(self) -> dict[str, Any]:
        self.refresh()
        return {"keys": [k.jwk for k in self._keys]}

    def describe(self) -> list[dict[str, Any]]:
        self.refresh(force=True)
        now = self.clock()
        active = self.signing_key().kid if self._keys else None
        return [
            {
                "kid": k.kid,
                "generation": k.generation,
                "algorithm": k.algorithm,
                "state": "signing"
                if k.kid == active
                else ("published" if k.not_before > now else "retiring"),
                "not_before": _utc(k.not_before).isoformat(),
                "retire_after": _utc(k.retire_after).isoformat() if k.retire_after else None,
            }
            for k in self._keys
        ]


class TokenService:
    """Issues and verifies the gateway's bearer tokens."""

    CACHE_SIZE = 10_000

    def __init__(self, keyring: KeyRing, settings: TokenSettings, issuer: str) -> None:
        self.keyring = keyring
        self.settings = settings
        self.issuer = issuer
        # Verified tokens, so that a client reusing its token costs a lookup, not a
        # signature check. Expiry is still checked on every hit.
        self._verified: dict[str, dict[str, Any]] = {}

    def issue(
        self,
        subject: str,
        *,
        audience: str | None = None,
        lifetime: int | None = None,
        claims: dict[str, Any] | None = None,
        not_after: float | None = None,
    ) -> tuple[str, int]:
        """A signed token for ``subject``; returns it with its lifetime in seconds."""
        key = self.keyring.signing_key()
        now = int(self.keyring.clock())
        seconds = min(lifetime or self.settings.lifetime, self.settings.lifetime)
        exp = now + seconds
        if not_after is not None:
            exp = min(exp, int(not_after))
        payload = {
            **(claims or {}),
            "iss": self.issuer,
            "sub": subject,
            "aud": audience or self.settings.audience,
            "iat": now,
            "nbf": now,
            "exp": exp,
            "jti": secrets.token_urlsafe(16),
        }
        token = jwt.encode(payload, key.private, algorithm=key.algorithm, headers={"kid": key.kid})
        return token, exp - now

    def verify(self, token: str) -> dict[str, Any]:
        """The token's claims, or :class:`TokenError` saying exactly why not."""
        now = self.keyring.clock()
        cached = self._verified.get(token)
        if cached is not None:
            if cached["exp"] + self.settings.leeway > now:
                return cached
            del self._verified[token]
            raise TokenError(f"token expired at {_utc(cached['exp']).isoformat()}")
        claims = self._verify_uncached(token, now)
        if len(self._verified) >= self.CACHE_SIZE:
            self._verified.pop(next(iter(self._verified)), None)
        self._verified[token] = claims
        return claims

    def _verify_uncached(self, token: str, now: float) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.DecodeError as exc:
            raise TokenError(f"malformed token: {exc}") from exc
        kid = header.get("kid")
        if not isinstance(kid, str):
            raise TokenError("token has no key id (kid) in its header")
        key = self.keyring.verification_key(kid)
        if key is None:
            raise TokenError(f"token signed with unknown or retired key id {kid!r}")
        try:
            return jwt.decode(
                token,
                key.public,
                algorithms=[key.algorithm],  # never the header's choice
                audience=self.settings.audience,
                issuer=self.issuer,
                leeway=self.settings.leeway,
                options={"require": ["exp", "iat", "sub", "aud", "iss"]},
            )
        except jwt.ExpiredSignatureError as exc:
            exp = jwt.decode(token, options={"verify_signature": False}).get("exp", 0)
            raise TokenError(f"token expired at {_utc(exp).isoformat()}") from exc
        except jwt.InvalidAudienceError as exc:
            raise TokenError(
                f"token audience is not this gateway (expected {self.settings.audience!r})"
            ) from exc
        except jwt.InvalidIssuerError as exc:
            raise TokenError(f"token issuer is not this gateway ({self.issuer})") from exc
        except jwt.ImmatureSignatureError as exc:
            raise TokenError("token is not valid yet (nbf/iat in the future)") from exc
        except jwt.MissingRequiredClaimError as exc:
            raise TokenError(f"token lacks the required {exc.claim!r} claim") from exc
        except jwt.InvalidSignatureError as exc:
            raise TokenError("token signature does not verify: it was altered") from exc
        except jwt.InvalidTokenError as exc:
            raise TokenError(f"invalid token: {exc}") from exc
