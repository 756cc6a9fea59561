"""Federation with two real gateway processes: a VO token issued by gateway A is accepted
by gateway B, which trusts A's JWKS; after A revokes the membership, B refuses it."""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.conftest import PASSWORD, basic, bearer


def call(method: str, url: str, headers: dict[str, str], body: object = None) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            raw = response.read()
            return response.status, json.loads(raw) if raw else {}
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def add_users(env: dict[str, str], *names: str, admin: str) -> None:
    """Straight into the gateway's database (one scrypt hash for all: fast setup)."""
    from backends.store import Database
    from backends.store.tables.identity import LocalUser
    from gateway.auth.passwords import hash_password

    db = Database(f"sqlite:///{Path(env['XTREEMGATE_STATE_DIR']) / 'xtreemgate.db'}")
    hashed = hash_password(PASSWORD)
    try:
        with db.session() as session:
            for name in (admin, *names):
                session.add(
                    LocalUser(username=name, password_hash=hashed, site_admin=name == admin)
                )
    finally:
        db.dispose()


def test_vo_token_of_gateway_a_works_at_gateway_b_until_revoked(gateway_server, tmp_path):
    base = {k: v for k, v in os.environ.items() if not k.startswith("XTREEMGATE_")}
    env_a = {
        **base,
        "XTREEMGATE_STATE_DIR": str(tmp_path / "a"),
        "XTREEMGATE_AUTH__TOKENS__ISSUER": "https://gw-a.example.org",
        "XTREEMGATE_LOGGING__ACCESS_LOG": "false",
    }
    a = gateway_server(env_a)
    add_users(env_a, "alice", "maria", admin="root-a")
    status, _ = call(
        "POST", f"{a}/api/v1/vos", basic("root-a"), {"name": "cms", "managers": ["maria"]}
    )
    assert status == 201
    status, _ = call("POST", f"{a}/api/v1/vos/cms/members", basic("maria"), {"principal": "alice"})
    assert status == 201
    status, issued = call("POST", f"{a}/api/v1/vo/tokens", basic("alice"), {})
    assert status == 201, issued
    token = issued["access_token"]

    env_b = {
        **base,
        "XTREEMGATE_STATE_DIR": str(tmp_path / "b"),
        "XTREEMGATE_AUTH__TOKENS__ISSUER": "https://gw-b.example.org",
        "XTREEMGATE_LOGGING__ACCESS_LOG": "false",
        "XTREEMGATE_VO__TRUSTED_ISSUERS": json.dumps(
            [
                {
                    "issuer": "https://gw-a.example.org",
                    "jwks_url": f"{a}/.well-known/jwks.json",
                    "revocations_url": f"{a}/api/v1/vo/revocations",
                    "vos": ["cms"],
                }
            ]
        ),
        "XTREEMGATE_VO__REVOCATION_REFRESH": "0.5",
    }
    b = gateway_server(env_b)
    add_users(env_b, "carol", admin="root-b")
    # B's side of the federation: a local home for VO cms's policy, and carol's cluster
    assert call("POST", f"{b}/api/v1/vos", basic("root-b"), {"name": "cms"})[0] == 201
    assert (
        call(
            "POST", f"{b}/api/v1/vos/cms/resources", basic("carol"), {"kind": "cluster", "id": "b1"}
        )[0]
        == 201
    )

    status, me = call("GET", f"{b}/api/v1/whoami", bearer(token))
    assert status == 200, me
    assert me["name"] == "alice@gw-a.example.org" and me["authenticated_by"] == "vo-token"
    assert me["memberships"] == [{"vo": "cms", "group": "", "roles": []}]
    ask = {"action": "submit", "resource": {"kind": "cluster", "id": "b1"}}
    status, decision = call("POST", f"{b}/api/v1/vo/decision", bearer(token), ask)
    assert decision["decision"] == "permit", decision
    # B's tokens are not A's: B does not trust itself as A, and A does not trust B
    status, b_token = call("POST", f"{b}/api/v1/vo/tokens", bearer(token), {})
    assert status == 403 and "another gateway" in b_token["detail"]
    status, b_token = call("POST", f"{b}/api/v1/tokens", bearer(token), {})
    assert status == 403 and "another gateway" in b_token["detail"]

    assert call("DELETE", f"{a}/api/v1/vos/cms/members/alice", basic("maria"))[0] == 204
    assert call("GET", f"{a}/api/v1/whoami", bearer(token))[0] == 401  # A: at once
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        status, body = call("GET", f"{b}/api/v1/whoami", bearer(token))
        if status == 401:
            break
        time.sleep(0.2)
    assert status == 401, body
    assert "revoked" in body["detail"]
