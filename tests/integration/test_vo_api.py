"""The VO REST API through the app (ASGI test client, real SQLite store): who may manage
what, memberships reaching the principal, VO tokens and their revocation, policies with
versions, registered resources, account leases, usage and audit."""

from __future__ import annotations

import pytest

from backends.store import migrate
from tests.conftest import PASSWORD, basic, bearer

POOL = {"accounts": ["cmspool01..cmspool02"], "uid_start": 61001, "gid": 61000}


@pytest.fixture(scope="module")
def password_hash():
    from gateway.auth.passwords import hash_password

    return hash_password(PASSWORD)  # once: scrypt is slow on purpose


@pytest.fixture
def vo_app(make_settings, password_hash):
    from backends.store.tables.identity import LocalUser
    from gateway.app import create_app

    s = make_settings(vo={"pools": {"cms": POOL}, "audit_flush_seconds": 0.05})
    migrate.upgrade(s.database_url)
    application = create_app(s, configure_logs=False)
    rt = application.app.extensions["xtreemgate"]
    with rt.db.session() as session:
        for name in ("root", "maria", "anna", "alice", "bob", "carol"):
            session.add(
                LocalUser(username=name, password_hash=password_hash, site_admin=name == "root")
            )
    with application.test_client() as c:
        yield c, rt
    rt.close()


def problem(response, status):
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    return response.json()["detail"]


@pytest.fixture
def two_vos(vo_app):
    c, rt = vo_app
    r = c.post("/api/v1/vos", json={"name": "cms", "managers": ["maria"]}, headers=basic("root"))
    assert r.status_code == 201, r.text
    assert r.json()["managers"] == ["maria"] and r.json()["groups"] == [""]
    r = c.post("/api/v1/vos", json={"name": "atlas", "managers": ["anna"]}, headers=basic("root"))
    assert r.status_code == 201
    return c, rt


def test_only_site_admins_create_vos_and_bad_input_is_a_problem(vo_app):
    c, _ = vo_app
    assert "only a site admin" in problem(
        c.post("/api/v1/vos", json={"name": "cms"}, headers=basic("alice")), 403
    )
    problem(c.post("/api/v1/vos", json={"name": "bad name"}, headers=basic("root")), 400)
    assert c.post("/api/v1/vos", json={"name": "cms"}, headers=basic("root")).status_code == 201
    assert "exists already" in problem(
        c.post("/api/v1/vos", json={"name": "cms"}, headers=basic("root")), 409
    )
    assert "no VO 'nope'" in problem(c.get("/api/v1/vos/nope", headers=basic("alice")), 404)


def test_manager_of_one_vo_cannot_touch_another(two_vos):
    c, _ = two_vos
    maria = basic("maria")
    assert (
        c.post("/api/v1/vos/cms/roles", json={"name": "production"}, headers=maria).status_code
        == 201
    )
    assert (
        c.post("/api/v1/vos/cms/groups", json={"path": "analysis"}, headers=maria).status_code
        == 201
    )
    assert (
        c.post("/api/v1/vos/cms/groups", json={"path": "analysis/higgs"}, headers=maria).status_code
        == 201
    )
    assert "no group 'x'" in problem(
        c.post("/api/v1/vos/cms/groups", json={"path": "x/y"}, headers=maria), 404
    )
    for method, path, body in [
        ("post", "/api/v1/vos/atlas/roles", {"name": "r"}),
        ("post", "/api/v1/vos/atlas/groups", {"path": "g"}),
        ("post", "/api/v1/vos/atlas/members", {"principal": "bob"}),
        ("get", "/api/v1/vos/atlas/members", None),
        ("put", "/api/v1/vos/atlas/managers/maria", None),
        ("put", "/api/v1/policies/vo/atlas", {"document": {"rules": []}}),
        ("get", "/api/v1/vos/atlas/usage", None),
        ("get", "/api/v1/vos/atlas/audit", None),
    ]:
        kwargs = {"headers": maria, **({"json": body} if body is not None else {})}
        detail = problem(getattr(c, method)(path, **kwargs), 403)
        assert "maria" in detail and "atlas" in detail
    # the site admin may do all of it
    assert (
        c.post("/api/v1/vos/atlas/roles", json={"name": "r"}, headers=basic("root")).status_code
        == 201
    )
    assert c.put("/api/v1/vos/atlas/managers/maria", headers=basic("root")).status_code == 204
    assert c.post("/api/v1/vos/atlas/roles", json={"name": "r2"}, headers=maria).status_code == 201


def test_membership_request_approval_and_whoami(two_vos):
    c, _ = two_vos
    maria, alice = basic("maria"), basic("alice")
    c.post("/api/v1/vos/cms/roles", json={"name": "production"}, headers=maria)
    r = c.post("/api/v1/vos/cms/members", json={}, headers=alice)
    assert r.status_code == 201 and r.json()["status"] == "requested"
    problem(
        c.post("/api/v1/vos/cms/members", json={"roles": ["production"]}, headers=basic("bob")), 403
    )
    assert c.get("/api/v1/whoami", headers=alice).json()["memberships"] == []
    pending = c.get("/api/v1/vos/cms/members?status=requested", headers=maria).json()
    assert [m["principal"] for m in pending] == ["alice"]
    r = c.patch(
        "/api/v1/vos/cms/members/alice",
        json={"status": "active", "roles": ["production"]},
        headers=maria,
    )
    assert r.status_code == 200 and r.json()["status"] == "active"
    me = c.get("/api/v1/whoami", headers=alice).json()
    assert me["memberships"] == [{"vo": "cms", "group": "", "roles": ["production"]}]
    assert any(
        e.startswith("urn:geant:xtreemgate:group:cms:role=production#") for e in me["entitlements"]
    )
    assert "no role 'nope'" in problem(
        c.patch("/api/v1/vos/cms/members/alice", json={"roles": ["nope"]}, headers=maria), 400
    ).replace("role nope", "role 'nope'")
    # suspension takes the membership away at once
    c.patch("/api/v1/vos/cms/members/alice", json={"status": "suspended"}, headers=maria)
    assert c.get("/api/v1/whoami", headers=alice).json()["memberships"] == []
    c.patch("/api/v1/vos/cms/members/alice", json={"status": "active"}, headers=maria)
    assert len(c.get("/api/v1/whoami", headers=alice).json()["memberships"]) == 1
    # expiry, then leaving
    c.patch("/api/v1/vos/cms/members/alice", json={"status": "expired"}, headers=maria)
    assert c.get("/api/v1/vos/cms/members/alice", headers=alice).json()[0]["status"] == "expired"
    assert c.get("/api/v1/whoami", headers=alice).json()["memberships"] == []
    assert c.delete("/api/v1/vos/cms/members/alice", headers=alice).status_code == 204
    problem(c.get("/api/v1/vos/cms/members/alice", headers=maria), 404)
    problem(c.get("/api/v1/vos/cms/members/alice", headers=basic("bob")), 403)


def test_vo_token_works_until_the_membership_is_revoked(two_vos):
    c, _ = two_vos
    c.post("/api/v1/vos/cms/members", json={"principal": "alice"}, headers=basic("maria"))
    c.post("/api/v1/vos/atlas/members", json={"principal": "alice"}, headers=basic("anna"))
    assert "no active VO membership" in problem(
        c.post("/api/v1/vo/tokens", json={}, headers=basic("bob")), 403
    )
    problem(c.post("/api/v1/vo/tokens", json={"vos": ["lhcb"]}, headers=basic("alice")), 403)
    r = c.post("/api/v1/vo/tokens", json={"vos": ["cms"]}, headers=basic("alice"))
    assert r.status_code == 201 and r.headers["cache-control"] == "no-store"
    token = r.json()["access_token"]
    assert r.json()["expires_in"] <= 300
    me = c.get("/api/v1/whoami", headers=bearer(token)).json()
    assert me["authenticated_by"] == "vo-token" and me["name"] == "alice"
    assert [m["vo"] for m in me["memberships"]] == ["cms"]  # delegation: only what was asked
    # a revoked member's token stops working at once
    assert c.delete("/api/v1/vos/cms/members/alice", headers=basic("maria")).status_code == 204
    r = c.get("/api/v1/whoami", headers=bearer(token))
    assert r.status_code == 401
    assert "revoked" in r.json()["detail"]
    assert 'error="invalid_token"' in r.headers["www-authenticate"]
    revoked = c.get("/api/v1/vo/revocations").json()
    assert len(revoked["subjects"]) == 1 and list(revoked["subjects"].values()) == [1]
    # a new token is fine again, carrying only what is left
    fresh = c.post("/api/v1/vo/tokens", json={}, headers=basic("alice")).json()["access_token"]
    assert [
        m["vo"] for m in c.get("/api/v1/whoami", headers=bearer(fresh)).json()["memberships"]
    ] == ["atlas"]
    # a VO token cannot join VOs on its holder's behalf
    problem(c.post("/api/v1/vos/cms/members", json={}, headers=bearer(fresh)), 403)


def test_policies_are_versioned_and_decide_with_reasons(two_vos):
    c, _ = two_vos
    carol, alice = basic("carol"), basic("alice")
    c.post("/api/v1/vos/cms/members", json={"principal": "alice"}, headers=basic("maria"))
    r = c.post("/api/v1/vos/cms/resources", json={"kind": "cluster", "id": "c1"}, headers=carol)
    assert r.status_code == 201 and r.json()["owner"] == "carol"
    assert (
        c.post(
            "/api/v1/vos/atlas/resources", json={"kind": "cluster", "id": "c1"}, headers=carol
        ).status_code
        == 201
    )
    assert "registered by its owner carol" in problem(
        c.post(
            "/api/v1/vos/cms/resources", json={"kind": "cluster", "id": "c1"}, headers=basic("bob")
        ),
        409,
    )
    problem(
        c.post(
            "/api/v1/vos/cms/resources",
            json={"kind": "cluster", "id": "c9", "owner": "carol"},
            headers=alice,
        ),
        403,
    )
    ask = {"action": "submit", "resource": {"kind": "cluster", "id": "c1"}}
    d = c.post("/api/v1/vo/decision", json=ask, headers=alice).json()
    assert d["decision"] == "permit" and "registered into VO cms by carol" in d["reason"]
    deny = {
        "document": {"rules": [{"id": "no-submit", "effect": "deny", "actions": ["submit"]}]},
        "comment": "maintenance",
    }
    r = c.put("/api/v1/policies/owner/carol", json=deny, headers=carol)
    assert r.status_code == 201 and r.json()["version"] == 1
    problem(c.put("/api/v1/policies/owner/carol", json=deny, headers=alice), 403)
    d = c.post("/api/v1/vo/decision", json=ask, headers=alice).json()
    assert (
        d == {"decision": "deny", "reason": d["reason"]}
        and "'no-submit' of the owner policy of carol (v1)" in d["reason"]
    )
    assert (
        c.put(
            "/api/v1/policies/owner/carol", json={"document": {"rules": []}}, headers=carol
        ).json()["version"]
        == 2
    )
    assert c.post("/api/v1/vo/decision", json=ask, headers=alice).json()["decision"] == "permit"
    history = c.get("/api/v1/policies/owner/carol/versions", headers=carol).json()
    assert [h["version"] for h in history] == [1, 2] and history[0]["comment"] == "maintenance"
    assert (
        c.get("/api/v1/policies/owner/carol/versions/1", headers=carol).json()["document"]
        == deny["document"]
    )
    problem(c.get("/api/v1/policies/owner/carol/versions/7", headers=carol), 404)
    detail = problem(
        c.put(
            "/api/v1/policies/vo/cms",
            json={"document": {"rules": [{"effect": "maybe", "actions": ["*"]}]}},
            headers=basic("maria"),
        ),
        400,
    )
    assert "rules/0/effect" in detail
    # the VO narrows: only role holders may submit
    c.post("/api/v1/vos/cms/roles", json={"name": "production"}, headers=basic("maria"))
    narrow = {
        "document": {
            "rules": [
                {
                    "id": "prod",
                    "effect": "permit",
                    "actions": ["submit"],
                    "conditions": {"roles": ["production"]},
                }
            ]
        }
    }
    assert (
        c.put("/api/v1/policies/vo/cms", json=narrow, headers=basic("maria")).json()["version"] == 2
    )
    ask_cms = {"action": "submit", "resource": {"kind": "cluster", "id": "c1", "vo": "cms"}}
    assert c.post("/api/v1/vo/decision", json=ask_cms, headers=alice).json()["decision"] == "deny"
    c.patch("/api/v1/vos/cms/members/alice", json={"roles": ["production"]}, headers=basic("maria"))
    assert c.post("/api/v1/vo/decision", json=ask_cms, headers=alice).json()["decision"] == "permit"
    # members read their VO's policy; others may not
    assert c.get("/api/v1/policies/vo/cms", headers=alice).json()["version"] == 2
    problem(c.get("/api/v1/policies/vo/cms", headers=basic("bob")), 403)


def test_accounts_usage_and_audit(two_vos):
    c, rt = two_vos
    for who in ("alice", "bob", "carol"):
        c.post("/api/v1/vos/cms/members", json={"principal": who}, headers=basic("maria"))
    a = c.get("/api/v1/vo/account?vo=cms", headers=basic("alice")).json()
    assert a["username"].startswith("cmspool0") and a["uid"] in (61001, 61002)
    assert c.get("/api/v1/vo/account?vo=cms", headers=basic("alice")).json() == a
    b = c.get("/api/v1/vo/account", headers=basic("bob")).json()
    assert b["username"] != a["username"]
    assert "in use" in problem(c.get("/api/v1/vo/account?vo=cms", headers=basic("carol")), 409)
    problem(c.get("/api/v1/vo/account?vo=atlas", headers=basic("alice")), 400)
    vo = rt.backends["vo"]
    from backends.contracts.model import Resource

    vo.record(
        "execution",
        "alice",
        "run",
        Resource("activity", "j1", vo="cms"),
        quantity=12.5,
        unit="cpu-s",
    )
    vo.record(
        "execution", "bob", "run", Resource("activity", "j2", vo="cms"), quantity=7.5, unit="cpu-s"
    )
    vo.record(
        "data", "bob", "read", Resource("volume", "v1", vo="cms"), quantity=1024, unit="bytes"
    )
    usage = c.get("/api/v1/vos/cms/usage", headers=basic("maria")).json()
    run = next(u for u in usage if u["action"] == "run")
    assert run == {
        "category": "execution",
        "action": "run",
        "unit": "cpu-s",
        "count": 2,
        "quantity": 20.0,
    }
    assert any(u["category"] == "data" and u["quantity"] == 1024 for u in usage)
    problem(c.get("/api/v1/vos/cms/usage?since=yesterday", headers=basic("maria")), 400)
    c.post(
        "/api/v1/vo/decision",
        json={"action": "submit", "resource": {"kind": "cluster", "id": "zz", "vo": "cms"}},
        headers=basic("maria"),  # manages cms, but is no member of it
    )
    trail = c.get("/api/v1/vos/cms/audit?limit=50", headers=basic("maria")).json()
    denied = [t for t in trail if t["category"] == "decision" and t["outcome"] == "deny"]
    assert denied and denied[0]["principal"] == "maria"
    assert "maria is not an active member of VO cms" in denied[0]["reason"]
    assert trail == sorted(trail, key=lambda t: -t["id"])


def test_nested_groups_roles_and_their_removal_revoke(two_vos):
    c, rt = two_vos
    maria = basic("maria")
    for path in ("analysis", "analysis/higgs"):
        c.post("/api/v1/vos/cms/groups", json={"path": path}, headers=maria)
    c.post("/api/v1/vos/cms/roles", json={"name": "production"}, headers=maria)
    assert "must join VO cms before" in problem(
        c.post(
            "/api/v1/vos/cms/members", json={"principal": "bob", "group": "analysis"}, headers=maria
        ),
        409,
    )
    c.post(
        "/api/v1/vos/cms/members", json={"principal": "bob", "roles": ["production"]}, headers=maria
    )
    c.post(
        "/api/v1/vos/cms/members",
        json={"principal": "bob", "group": "analysis/higgs"},
        headers=maria,
    )
    me = c.get("/api/v1/whoami", headers=basic("bob")).json()
    assert {m["group"] for m in me["memberships"]} == {"", "analysis/higgs"}
    assert any(":group:cms:analysis:higgs#" in e for e in me["entitlements"])
    # the SOAP and portal front ends get the same memberships through Runtime.authenticate
    from gateway.auth.chain import AuthRequest

    soap = rt.authenticate(AuthRequest(headers={k.lower(): v for k, v in basic("bob").items()}))
    assert {m.group for m in soap.memberships} == {"", "analysis/higgs"}
    # another membership source (the LDAP group mapping, at merge) adds to the store's
    from backends.contracts.model import VOMembership

    rt.memberships.add_source(lambda p: [VOMembership("lhcb")] if p.name == "bob" else [])
    assert {
        m["vo"] for m in c.get("/api/v1/whoami", headers=basic("bob")).json()["memberships"]
    } == {"cms", "lhcb"}
    rt.memberships.sources.clear()
    # suspending the VO membership hides the subgroup too
    c.patch("/api/v1/vos/cms/members/bob", json={"status": "suspended"}, headers=maria)
    assert c.get("/api/v1/whoami", headers=basic("bob")).json()["memberships"] == []
    c.patch("/api/v1/vos/cms/members/bob", json={"status": "active"}, headers=maria)
    token = c.post("/api/v1/vo/tokens", json={}, headers=basic("bob")).json()["access_token"]
    assert c.get("/api/v1/whoami", headers=bearer(token)).status_code == 200
    assert c.delete("/api/v1/vos/cms/roles/production", headers=maria).status_code == 204
    assert c.get("/api/v1/whoami", headers=bearer(token)).status_code == 401  # a role dropped
    token = c.post("/api/v1/vo/tokens", json={}, headers=basic("bob")).json()["access_token"]
    assert c.delete("/api/v1/vos/cms/groups?path=analysis", headers=maria).status_code == 204
    assert c.get("/api/v1/whoami", headers=bearer(token)).status_code == 401  # a group gone
    assert c.get("/api/v1/vos/cms/groups", headers=basic("bob")).json() == [""]
    assert [m["group"] for m in c.get("/api/v1/vos/cms/members/bob", headers=maria).json()] == [""]


def test_site_admin_gets_404_for_what_does_not_exist_and_deletes_vos(two_vos):
    c, _ = two_vos
    root = basic("root")
    problem(c.post("/api/v1/vos/nope/roles", json={"name": "r"}, headers=root), 404)
    problem(c.patch("/api/v1/vos/cms/members/ghost", json={"status": "active"}, headers=root), 404)
    problem(c.delete("/api/v1/vos/cms/managers/ghost", headers=root), 404)
    problem(c.delete("/api/v1/vos/cms/resources/cluster/none", headers=root), 404)
    problem(
        c.patch("/api/v1/vos/cms/members/alice", json={}, headers=root), 400
    )  # spec: minProperties
    c.post("/api/v1/vos/cms/members", json={"principal": "alice"}, headers=root)
    token = c.post("/api/v1/vo/tokens", json={}, headers=basic("alice")).json()["access_token"]
    problem(c.delete("/api/v1/vos/cms", headers=basic("maria")), 403)
    assert c.delete("/api/v1/vos/cms", headers=root).status_code == 204
    assert c.get("/api/v1/whoami", headers=bearer(token)).status_code == 401
    assert [v["name"] for v in c.get("/api/v1/vos", headers=basic("alice")).json()] == ["atlas"]
    # a VO of the same name again starts afresh; the old policy history stays readable
    assert c.post("/api/v1/vos", json={"name": "cms"}, headers=root).status_code == 201
    versions = c.get("/api/v1/policies/vo/cms/versions", headers=root).json()
    assert [v["version"] for v in versions] == [1, 2]


def test_memberships_the_authenticator_found_are_kept(two_vos):
    """Negotiate puts LDAP-derived memberships on its principal: the store's are added."""
    from backends.contracts.model import Principal, VOMembership

    c, rt = two_vos
    c.post("/api/v1/vos/cms/members", json={"principal": "dora"}, headers=basic("maria"))
    from_ldap = Principal("dora", "negotiate", memberships=(VOMembership("atlas", "prod"),))
    enriched = rt.memberships.enrich(from_ldap)
    assert enriched.memberships == (VOMembership("atlas", "prod"), VOMembership("cms"))
    token = Principal("dora", "vo-token", memberships=(VOMembership("lhcb"),))
    assert rt.memberships.enrich(token) is token  # a VO token says exactly what it carries


def test_only_members_managers_and_site_admins_list_a_vos_resources(two_vos):
    """#16.16: what is offered to a VO, and by whom, is not for anyone logged in."""
    c, _ = two_vos
    c.post("/api/v1/vos/cms/members", json={"principal": "alice"}, headers=basic("maria"))
    r = c.post(
        "/api/v1/vos/cms/resources", json={"kind": "cluster", "id": "c1"}, headers=basic("carol")
    )
    assert r.status_code == 201, r.text
    for who in ("alice", "maria", "root"):
        listed = c.get("/api/v1/vos/cms/resources", headers=basic(who))
        assert listed.status_code == 200, (who, listed.text)
        assert [(x["id"], x["owner"]) for x in listed.json()] == [("c1", "carol")]
    for who in ("bob", "anna"):
        refused = problem(c.get("/api/v1/vos/cms/resources", headers=basic(who)), 403)
        assert f"{who} may not list what is offered to VO cms" in refused and "carol" not in refused
