"""The token service on a real SQLite store: issue, verify, and every way to refuse."""

import time

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from backends.store import Database, migrate
from gateway.auth.tokens import KeyRing, KeyRingError, TokenError, TokenService, jwk_thumbprint
from gateway.config import TokenSettings

ISSUER = "https://gw.example.org"


class Clock:
    def __init__(self):
        self.now = time.time()

    def __call__(self):
        return self.now


@pytest.fixture
def db(tmp_path):
    url = f"sqlite:///{tmp_path / 'state.db'}"
    migrate.upgrade(url)
    database = Database(url)
    yield database
    database.dispose()


def service(db, clock=time.time, **settings):
    conf = TokenSettings(**settings)
    ring = KeyRing(db, conf, clock=clock)
    ring.ensure()
    return TokenService(ring, conf, ISSUER)


@pytest.mark.parametrize("algorithm", ["ES256", "RS256", "EdDSA"])
def test_issue_and_verify_each_algorithm(db, algorithm):
    tokens = service(db, algorithm=algorithm)
    token, expires_in = tokens.issue("alice", claims={"name": "Alice"})
    assert expires_in == 3600
    claims = tokens.verify(token)
    assert claims["sub"] == "alice" and claims["name"] == "Alice"
    assert claims["iss"] == ISSUER and claims["aud"] == "xtreemgate"
    header = jwt.get_unverified_header(token)
    assert header["alg"] == algorithm
    (jwk,) = tokens.keyring.jwks()["keys"]
    assert header["kid"] == jwk["kid"] == jwk_thumbprint(jwk)
    assert "d" not in jwk  # never the private part


def forge(tokens, **overrides):
    key = tokens.keyring.signing_key()
    now = int(time.time())
    claims = {"iss": ISSUER, "sub": "alice", "aud": "xtreemgate", "iat": now, "exp": now + 60}
    claims.update(overrides)
    claims = {k: v for k, v in claims.items() if v is not None}
    return jwt.encode(claims, key.private, algorithm=key.algorithm, headers={"kid": key.kid})


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"exp": -120}, "token expired at "),
        ({"aud": "another-service"}, "token audience is not this gateway"),
        ({"iss": "https://evil.example"}, "token issuer is not this gateway"),
        ({"nbf": +600}, "token is not valid yet"),
        ({"sub": None}, "token lacks the required 'sub' claim"),
    ],
)
def test_refusals_say_why(db, overrides, reason):
    """Times are seconds from now, taken when the test runs: a whole suite can take
    longer than the 600 s margin between collecting this test and running it."""
    now = int(time.time())
    overrides = {k: now + v if k in ("exp", "nbf") else v for k, v in overrides.items()}
    tokens = service(db)
    with pytest.raises(TokenError) as caught:
        tokens.verify(forge(tokens, **overrides))
    assert caught.value.reason.startswith(reason)


def test_tampered_payload_is_refused(db):
    tokens = service(db)
    token, _ = tokens.issue("alice")
    header, _payload, signature = token.split(".")
    other, _ = tokens.issue("mallory")
    forged = ".".join([header, other.split(".")[1], signature])
    with pytest.raises(TokenError, match="signature does not verify"):
        tokens.verify(forged)


def test_foreign_key_and_alg_none_are_refused(db):
    tokens = service(db)
    kid = tokens.keyring.signing_key().kid
    now = int(time.time())
    claims = {"iss": ISSUER, "sub": "alice", "aud": "xtreemgate", "iat": now, "exp": now + 60}
    stranger = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(TokenError, match="signature does not verify"):
        tokens.verify(jwt.encode(claims, stranger, algorithm="ES256", headers={"kid": kid}))
    unsigned = jwt.encode(claims, None, algorithm="none", headers={"kid": kid})
    with pytest.raises(TokenError, match="invalid token"):
        tokens.verify(unsigned)
    with pytest.raises(TokenError, match="unknown or retired key id 'nope'"):
        tokens.verify(jwt.encode(claims, stranger, algorithm="ES256", headers={"kid": "nope"}))
    with pytest.raises(TokenError, match="no key id"):
        tokens.verify(jwt.encode(claims, stranger, algorithm="ES256"))
    with pytest.raises(TokenError, match="malformed token"):
        tokens.verify("not-a-jwt")


def test_cached_token_still_expires(db):
    clock = Clock()
    tokens = service(db, clock=clock, lifetime=60, leeway=0)
    token, _ = tokens.issue("alice")
    assert tokens.verify(token)["sub"] == "alice"  # now cached
    clock.now += 61
    with pytest.raises(TokenError, match="token expired"):
        tokens.verify(token)


def test_rotation_keeps_old_tokens_until_they_expire(db):
    clock = Clock()
    tokens = service(db, clock=clock, lifetime=600, leeway=0, publish_ahead=60)
    old_token, _ = tokens.issue("alice")
    old_kid = jwt.get_unverified_header(old_token)["kid"]
    new_kid = tokens.keyring.rotate()
    assert new_kid != old_kid
    # published at once, but not signing before publish_ahead has passed
    assert {k["kid"] for k in tokens.keyring.jwks()["keys"]} == {old_kid, new_kid}
    assert jwt.get_unverified_header(tokens.issue("alice")[0])["kid"] == old_kid
    clock.now += 61
    assert jwt.get_unverified_header(tokens.issue("alice")[0])["kid"] == new_kid
    states = {k["kid"]: k["state"] for k in tokens.keyring.describe()}
    assert states == {new_kid: "signing", old_kid: "retiring"}
    # the old key retires once its last token is past expiry, and leaves the JWKS
    clock.now += 600 + 1
    tokens.keyring.refresh(force=True)
    assert [k["kid"] for k in tokens.keyring.jwks()["keys"]] == [new_kid]
    assert tokens.keyring.verification_key(old_kid) is None


def test_issue_never_exceeds_the_configured_lifetime(db):
    tokens = service(db, lifetime=300)
    _, expires_in = tokens.issue("alice", lifetime=10_000)
    assert expires_in == 300
    _, capped = tokens.issue("alice", not_after=time.time() + 100)
    assert 98 <= capped <= 100


def test_encrypted_keys_need_the_passphrase(db):
    service(db, key_passphrase="first passphrase")
    wrong = KeyRing(db, TokenSettings(key_passphrase="second"))
    with pytest.raises(KeyRingError, match="key_passphrase"):
        wrong.ensure()
    right = service(db, key_passphrase="first passphrase")
    token, _ = right.issue("alice")
    assert right.verify(token)["sub"] == "alice"
