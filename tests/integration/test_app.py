"""The gateway app over HTTP (ASGI test client): health, metrics, request ids, and every
way authentication answers."""

import base64
import time

import jwt
import pytest

from tests.conftest import PASSWORD, basic, bearer


def test_healthz_checks_database_and_every_backend(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "healthy"
    assert set(body["checks"]) == {"database", "vo", "execution", "vm", "storage"}
    assert all(check["ok"] for check in body["checks"].values())
    assert body["checks"]["vm"]["figures"]["test:///default"]["cpus"] > 0


def test_healthz_says_which_backend_fails(make_settings, tmp_path):
    from backends.store import migrate
    from gateway.app import create_app

    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the volume root should be")
    s = make_settings(storage={"root": str(blocker / "volumes")})
    migrate.upgrade(s.database_url)
    app = create_app(s, configure_logs=False)
    with app.test_client() as c:
        response = c.get("/healthz")
    app.app.extensions["xtreemgate"].close()
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unhealthy"
    assert not body["checks"]["storage"]["ok"]
    assert "not writable" in body["checks"]["storage"]["detail"]
    assert body["checks"]["database"]["ok"]


def test_request_id_is_returned_and_kept_when_valid(client):
    fresh = client.get("/healthz").headers["x-request-id"]
    assert len(fresh) == 32
    assert (
        client.get("/healthz", headers={"X-Request-ID": "abc-123"}).headers["x-request-id"]
        == "abc-123"
    )
    hostile = client.get("/healthz", headers={"X-Request-ID": "a\tb<script>"})
    assert hostile.headers["x-request-id"] != "a\tb<script>"


def test_metrics_count_requests_per_route_and_status(client, alice):
    client.get("/api/v1/whoami", headers=basic(alice))
    client.get("/api/v1/whoami")
    client.get("/no/such/path")
    text = client.get("/metrics").text
    assert (
        'xtreemgate_http_requests_total{method="GET",route="gateway.auth.handlers.whoami",status="200"} 1.0'
        in text
    )
    assert 'route="gateway.auth.handlers.whoami",status="401"} 1.0' in text
    assert 'route="unmatched",status="404"} 1.0' in text
    assert (
        'xtreemgate_http_request_duration_seconds_count{method="GET",route="gateway.auth.handlers.whoami"} 2.0'
        in text
    )


def test_json_access_log_carries_request_id(make_settings, capsys):
    import json
    import logging

    from backends.store import migrate
    from gateway.app import create_app

    s = make_settings(logging={"format": "json", "access_log": True})
    migrate.upgrade(s.database_url)
    app = create_app(s)
    try:
        with app.test_client() as c:
            c.get("/healthz", headers={"X-Request-ID": "trace-me"})
    finally:
        app.app.extensions["xtreemgate"].close()
        logging.getLogger().handlers[:] = []
    lines = [json.loads(x) for x in capsys.readouterr().err.splitlines() if x.startswith("{")]
    access = [x for x in lines if x["logger"] == "xtreemgate.access"]
    assert access and access[-1]["request_id"] == "trace-me"
    assert access[-1]["http"]["status"] == 200
    assert access[-1]["http"]["route"] == "gateway.monitoring.handlers.healthz"


def test_no_credentials_gets_401_with_every_challenge(client):
    response = client.get("/api/v1/whoami")
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith('Bearer realm="xtreemgate"')
    assert 'Basic realm="xtreemgate"' in challenge
    assert response.json()["detail"] == "no credentials: send Bearer or Basic"


def test_basic_right_and_wrong(client, alice):
    me = client.get("/api/v1/whoami", headers=basic(alice)).json()
    assert me == {
        "name": "alice",
        "display_name": "Alice Liddell",
        "authenticated_by": "basic",
        "site_admin": False,
        "memberships": [],
        "entitlements": [],
    }
    for headers in (
        basic(alice, "wrong password"),
        basic("nobody"),
        {"Authorization": "Basic !!!notbase64"},
        {"Authorization": "Basic " + base64.b64encode(b"no-colon").decode()},
    ):
        response = client.get("/api/v1/whoami", headers=headers)
        assert response.status_code == 401
        assert response.json()["detail"].startswith("basic: ")


def test_password_change_is_not_hidden_by_the_cache(client, runtime, alice):
    from sqlalchemy import update

    from backends.store.tables.identity import LocalUser
    from gateway.auth.passwords import hash_password

    assert client.get("/api/v1/whoami", headers=basic(alice)).status_code == 200
    with runtime.db.session() as session:
        session.execute(update(LocalUser).values(password_hash=hash_password("a new password")))
    assert client.get("/api/v1/whoami", headers=basic(alice, "a new password")).status_code == 200


def issue(client, user):
    response = client.post("/api/v1/tokens", headers=basic(user), json={})
    assert response.status_code == 201
    assert response.headers["cache-control"] == "no-store"
    return response.json()


def test_token_from_basic_login_authenticates(client, alice):
    body = issue(client, alice)
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3600
    me = client.get("/api/v1/whoami", headers=bearer(body["access_token"])).json()
    assert me["name"] == "alice" and me["authenticated_by"] == "bearer"
    assert me["display_name"] == "Alice Liddell"


def test_token_without_a_request_body_as_the_readme_posts_it(client, alice):
    # curl -u alice -X POST .../api/v1/tokens: no body, no Content-Type
    response = client.post("/api/v1/tokens", headers=basic(alice))
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3600
    me = client.get("/api/v1/whoami", headers=bearer(body["access_token"])).json()
    assert me["name"] == "alice"


def test_token_exchange_cannot_outlive_the_presented_token(client, runtime, alice):
    short, _ = runtime.tokens.issue("alice", lifetime=120)
    response = client.post("/api/v1/tokens", headers=bearer(short), json={"lifetime": 3000})
    assert response.status_code == 201
    assert response.json()["expires_in"] <= 120


def test_token_request_is_validated_against_the_spec(client, alice):
    response = client.post("/api/v1/tokens", headers=basic(alice), json={"lifetime": 5})
    assert response.status_code == 400
    assert "lifetime" in response.json()["detail"]
    response = client.post("/api/v1/tokens", headers=basic(alice), json={"scope": "all"})
    assert response.status_code == 400


def signed(runtime, **overrides):
    key = runtime.keyring.signing_key()
    now = int(time.time())
    claims = {
        "iss": runtime.tokens.issuer,
        "sub": "alice",
        "aud": "xtreemgate",
        "iat": now,
        "exp": now + 300,
    }
    claims.update(overrides)
    return jwt.encode(claims, key.private, algorithm=key.algorithm, headers={"kid": key.kid})


@pytest.mark.parametrize(
    ("make_token", "reason"),
    [
        (lambda rt: signed(rt, exp=int(time.time()) - 3600), "token expired at"),
        (lambda rt: signed(rt, aud="some-other-service"), "token audience is not this gateway"),
        (lambda rt: signed(rt)[:-6] + "AAAAAA", "token signature does not verify"),
        (lambda rt: "garbage", "malformed token"),
    ],
    ids=["expired", "wrong-audience", "tampered", "malformed"],
)
def test_refused_tokens_get_401_with_reason(client, runtime, make_token, reason):
    response = client.get("/api/v1/whoami", headers=bearer(make_token(runtime)))
    assert response.status_code == 401
    assert response.json()["detail"].startswith("bearer: " + reason)
    challenge = response.headers["www-authenticate"]
    assert 'error="invalid_token"' in challenge
    assert 'error_description="' + reason in challenge


def test_jwks_publishes_the_signing_key(client, runtime):
    keys = client.get("/.well-known/jwks.json").json()["keys"]
    assert [k["kid"] for k in keys] == [runtime.keyring.signing_key().kid]
    assert {"kty", "crv", "x", "y", "alg", "use"} <= set(keys[0]) and "d" not in keys[0]


def test_token_verifies_with_the_published_jwks_alone(client, alice):
    """What a remote service trusting this gateway's JWKS does."""
    token = issue(client, alice)["access_token"]
    jwks = jwt.PyJWKSet.from_dict(client.get("/.well-known/jwks.json").json())
    key = jwks[jwt.get_unverified_header(token)["kid"]]
    claims = jwt.decode(token, key.key, algorithms=["ES256"], audience="xtreemgate")
    assert claims["sub"] == "alice"


def test_spec_and_swagger_ui_are_served(client):
    spec = client.get("/openapi.json").json()
    assert "/api/v1/whoami" in spec["paths"]
    assert {"/-/", "/compute/", "/compute/{entity_id}", "/mixins/{location}"} <= set(spec["paths"])
    assert client.get("/ui/").status_code == 200


def test_unknown_user_costs_the_same_kdf(runtime):
    """Timing must not reveal whether a user exists: both paths run scrypt."""
    from gateway.auth.users import check_password

    start = time.perf_counter()
    assert check_password(runtime.db, "nobody-here", PASSWORD) is None
    missing = time.perf_counter() - start
    assert missing > 0.01  # scrypt ran (tens of milliseconds), not a bare lookup
