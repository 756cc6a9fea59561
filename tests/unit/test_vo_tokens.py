"""VO attribute tokens between two issuers with real key rings (each on its own SQLite
store): local revocation by epoch, remote keys fetched, cached and re-fetched at a bounded
rate, VOs limited per trusted issuer, and failing closed when revocation is unknowable."""

from __future__ import annotations

import time

import jwt
import pytest

from backends.contracts.model import VOMembership
from backends.store import Database, migrate
from backends.vo.memberships import subject_hash
from gateway.auth.tokens import KeyRing, TokenError, TokenService
from gateway.auth.vo_tokens import VO_TOKEN_TYPE, VOTokenService, is_vo_token
from gateway.config import TokenSettings, VOSettings
from tests.services import free_port

A, B = "https://gw-a.example.org", "https://gw-b.example.org"
JWKS_A = f"{A}/.well-known/jwks.json"
CMS = (VOMembership("cms", "", ("production",)), VOMembership("atlas"))


@pytest.fixture
def rings(tmp_path):
    made = []

    def ring(name: str, issuer: str = "") -> TokenService:
        url = f"sqlite:///{tmp_path / name}.db"
        migrate.upgrade(url)
        db = Database(url)
        made.append(db)
        conf = TokenSettings()
        keyring = KeyRing(db, conf)
        keyring.ensure()
        return TokenService(keyring, conf, issuer or (A if name == "a" else B))

    yield ring
    for db in made:
        db.dispose()


class Issuer:
    """Gateway A as gateway B's fetcher sees it: its JWKS and its revocation list."""

    def __init__(self, tokens: TokenService) -> None:
        self.tokens = tokens
        self.epochs: dict[str, int] = {}
        self.calls: list[str] = []

    def fetch(self, url: str):
        self.calls.append(url)
        if url == JWKS_A:
            return self.tokens.keyring.jwks()
        return {"issuer": A, "subjects": {subject_hash(k): v for k, v in self.epochs.items()}}


def pair(rings, **vo_settings):
    a_tokens, b_tokens = rings("a"), rings("b")
    issuer = Issuer(a_tokens)
    a = VOTokenService(a_tokens, VOSettings(), lambda s: issuer.epochs.get(s, 0), authority=A)
    trusted = [{"issuer": A, "jwks_url": JWKS_A, "vos": ["cms"]}]
    settings = VOSettings(trusted_issuers=trusted, **vo_settings)
    b = VOTokenService(b_tokens, settings, lambda s: 0, authority=B, fetch=issuer.fetch)
    return a, b, issuer


def test_local_token_carries_entitlements_and_dies_with_the_epoch(rings):
    a, _, issuer = pair(rings)
    token, expires_in, entitlements = a.issue("alice", CMS)
    assert is_vo_token(token) and jwt.get_unverified_header(token)["typ"] == VO_TOKEN_TYPE
    assert expires_in == 300 and len(entitlements) == 3
    verified = a.verify(token)
    assert verified.local and set(verified.memberships) == set(CMS)
    issuer.epochs["alice"] = 1  # a membership was taken away
    with pytest.raises(TokenError, match="revoked or reduced"):
        a.verify(token)


def test_remote_token_accepted_for_trusted_vos_only_and_revocable(rings):
    a, b, issuer = pair(rings, revocation_refresh=0.0)
    token, _, _ = a.issue("alice", CMS)
    verified = b.verify(token)
    assert not verified.local and verified.issuer == A
    assert [m.vo for m in verified.memberships] == ["cms"]  # atlas: not A's to assert here
    assert b.remote_principal_name("alice", A) == "alice@gw-a.example.org"
    issuer.epochs["alice"] = 1
    with pytest.raises(TokenError, match="revoked VO memberships of alice"):
        b.verify(token)


def test_unknown_kid_refetches_at_a_bounded_rate(rings):
    a, b, issuer = pair(rings, jwks_refetch_interval=60.0)
    b.verify(a.issue("alice", CMS)[0])
    fetched = issuer.calls.count(JWKS_A)
    a.tokens.keyring.rotate(publish_ahead=0)
    time.sleep(1.1)  # key times are whole seconds
    rotated = a.issue("alice", CMS)[0]
    b.verify(rotated)  # unknown kid: one re-fetch finds it
    assert issuer.calls.count(JWKS_A) == fetched + 1
    forged = jwt.encode(
        {
            "iss": A,
            "sub": "x",
            "aud": "xtreemgate-vo",
            "iat": int(time.time()),
            "exp": int(time.time()) + 60,
        },
        "not-a-key-we-publish-at-all-32-bytes!",
        algorithm="HS256",
        headers={"kid": "no-such-kid", "typ": VO_TOKEN_TYPE},
    )
    for _ in range(3):
        with pytest.raises(TokenError, match="no key 'no-such-kid'"):
            b.verify(forged)
    assert issuer.calls.count(JWKS_A) == fetched + 1  # rate-limited: no fetch storm


def test_untrusted_issuer_and_unreachable_revocation_list_are_refused(rings):
    a, b, _ = pair(rings)
    own = VOTokenService(
        rings("c", "https://elsewhere.example.org"), VOSettings(), lambda s: 0, authority="c"
    )
    with pytest.raises(TokenError, match="not trusted here"):
        b.verify(own.issue("mallory", CMS)[0])
    closed = f"http://127.0.0.1:{free_port()}"
    settings = VOSettings(
        trusted_issuers=[{"issuer": A, "jwks_url": JWKS_A, "revocations_url": f"{closed}/rev"}],
        revocation_refresh=0.0,
    )
    issuer = Issuer(a.tokens)

    def fetch(url: str):
        if url == JWKS_A:
            return issuer.fetch(url)
        from gateway.auth.vo_tokens import _fetch_json

        return _fetch_json(url, timeout=1)  # a real connection to a closed port

    strict = VOTokenService(rings("d"), settings, lambda s: 0, authority="d", fetch=fetch)
    with pytest.raises(TokenError, match="cannot confirm"):
        strict.verify(a.issue("alice", CMS)[0])


def test_only_a_reused_local_token_with_a_cached_epoch_verifies_on_the_event_loop(rings):
    cached: dict[str, int] = {}
    a = VOTokenService(rings("a"), VOSettings(), lambda s: 0, authority=A, epoch_cached=cached.get)
    token = a.issue("alice", CMS)[0]
    assert a.blocking(token)  # first sight: a signature check
    a.verify(token)
    assert a.blocking(token)  # the epoch would be read from the store
    cached["alice"] = 0
    assert not a.blocking(token)  # all in memory now


@pytest.mark.parametrize(
    "token", ["", "garbage", "!!!.x.y", "e30.e30.", "bnVsbA.x.y", "W10.x.y", "\u00e9.x.y"]
)
def test_the_vo_token_hint_never_raises_on_garbage(token):
    assert is_vo_token(token) is False


def test_the_vo_token_hint_reads_the_header_type():
    import base64
    import json

    def header(value):
        raw = json.dumps(value).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=") + ".e30.sig"

    assert is_vo_token(header({"typ": VO_TOKEN_TYPE, "alg": "ES256"}))
    assert not is_vo_token(header({"typ": "JWT", "alg": "ES256"}))
