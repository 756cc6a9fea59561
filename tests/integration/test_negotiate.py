"""HTTP Negotiate against a real gateway process, two real KDCs with cross-realm trust and
a real slapd: ``kinit`` + ``curl --negotiate`` and requests-gssapi as the clients."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests import services
from tests.identity_services import PARTNER, REALM, slapd_settings

pytestmark = pytest.mark.service

PARTNER_RULE = {"match": r"^(?P<user>[^/@]+)@PARTNER\.TEST$", "replace": r"partner-\g<user>"}


@pytest.fixture
def curl() -> str:
    path = shutil.which("curl")
    if (
        path is None
        or "SPNEGO" not in subprocess.run([path, "-V"], capture_output=True, text=True).stdout
    ):
        services.missing("curl with SPNEGO", "install the Debian package curl")
    return path


def gateway_env(kerberos_realms, slapd, state: Path, realms: dict, require_vo: bool) -> dict:
    """The environment of a gateway with negotiate in its chain, the realms' keytab and
    the directory."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XTREEMGATE_", "KRB5"))}
    ldap = slapd_settings(slapd.url)
    env.update(
        {
            "XTREEMGATE_STATE_DIR": str(state),
            "XTREEMGATE_LOGGING__FORMAT": "text",
            "XTREEMGATE_LOGGING__ACCESS_LOG": "false",
            "XTREEMGATE_AUTH__CHAIN": json.dumps(["bearer", "basic", "negotiate"]),
            "XTREEMGATE_AUTH__NEGOTIATE__KEYTAB": str(kerberos_realms.keytab),
            "XTREEMGATE_AUTH__NEGOTIATE__SERVICE": "HTTP@localhost",
            "XTREEMGATE_AUTH__NEGOTIATE__REALMS": json.dumps(realms),
            "XTREEMGATE_AUTH__NEGOTIATE__REQUIRE_VO_MEMBERSHIP": str(require_vo),
            **{
                f"XTREEMGATE_LDAP__{key.upper()}": (
                    json.dumps(value) if isinstance(value, dict) else str(value)
                )
                for key, value in ldap.items()
            },
            # the gateway's krb5.conf allows 1 s of clock skew, not 300 s, so that a
            # ticket that has just expired is refused within the test's patience
            "KRB5_CONFIG": str(kerberos_realms.server_krb5_conf),
            "KRB5RCACHEDIR": str(state),
        }
    )
    state.mkdir(parents=True, exist_ok=True)
    return env


@pytest.fixture(scope="module")
def gateway(module_gateway_server, kerberos_realms, slapd, tmp_path_factory) -> str:
    """Both realms accepted, VO membership required (403 without one)."""
    env = gateway_env(
        kerberos_realms,
        slapd,
        tmp_path_factory.mktemp("negotiate-gateway"),
        {REALM: "strip", PARTNER: PARTNER_RULE},
        require_vo=True,
    )
    return module_gateway_server(env).replace("127.0.0.1", "localhost")


def curl_negotiate(curl: str, env: dict, url: str, *extra: str) -> tuple[int, dict, dict]:
    """``curl --negotiate -u :``; the final status, its headers and JSON body."""
    result = subprocess.run(
        [curl, "-4", "-s", "-i", "--negotiate", "-u", ":", *extra, url],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    # curl prints the 401 that invited Negotiate, then the final answer
    final = result.stdout.rsplit("HTTP/1.1 ", 1)[1]
    head, _, body = final.partition("\n\n")  # text mode: CRLF arrive as LF
    status_line, *header_lines = head.split("\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers.setdefault(name.strip().lower(), []).append(value.strip())
    return int(status_line.split()[0]), headers, json.loads(body) if body else {}


def client_token(env: dict, monkeypatch) -> str:
    """A Negotiate token for HTTP@localhost from the ticket cache in ``env`` (the MIT
    client library through the ``kerberos`` package, as a program would make it)."""
    import kerberos

    monkeypatch.setenv("KRB5_CONFIG", env["KRB5_CONFIG"])
    monkeypatch.setenv("KRB5CCNAME", env["KRB5CCNAME"])
    _, context = kerberos.authGSSClientInit(
        "HTTP@localhost", gssflags=kerberos.GSS_C_MUTUAL_FLAG | kerberos.GSS_C_SEQUENCE_FLAG
    )
    kerberos.authGSSClientStep(context, "")
    token = kerberos.authGSSClientResponse(context)
    kerberos.authGSSClientClean(context)
    return token


def whoami(url: str) -> str:
    return f"{url}/api/v1/whoami"


def test_users_of_both_realms_get_in_with_curl(gateway, kerberos_realms, curl, tmp_path):
    alice = kerberos_realms.kinit(f"alice@{REALM}", tmp_path / "alice.cc")
    status, headers, body = curl_negotiate(curl, alice, whoami(gateway))
    assert status == 200, body
    # the LDAP groups, also as AARC-G002 entitlements (the VO backend writes them)
    entitlements = body.pop("entitlements")
    assert any(e.startswith("urn:geant:xtreemgate:group:atlas:prod#") for e in entitlements)
    assert body == {
        "name": "alice",
        "display_name": "Alice Liddell",
        "authenticated_by": "negotiate",
        "site_admin": False,
        "memberships": [
            {"vo": "atlas", "group": "", "roles": ["manager"]},
            {"vo": "atlas", "group": "prod", "roles": []},
        ],
    }
    (challenge,) = headers["www-authenticate"]  # the mutual-authentication token
    assert challenge.startswith("Negotiate ") and len(challenge) > 40

    bob = kerberos_realms.kinit(f"bob@{PARTNER}", tmp_path / "bob.cc")
    status, _, body = curl_negotiate(curl, bob, whoami(gateway))
    assert status == 200, body
    assert (body["name"], body["display_name"]) == ("partner-bob", "Bob Partner")
    assert [m["vo"] for m in body["memberships"]] == ["atlas", "cms"]
    # bob's own KDC issued the cross-realm ticket; XG.TEST's issued the service ticket
    tickets = subprocess.run(["klist"], env=bob, capture_output=True, text=True).stdout
    assert f"krbtgt/{REALM}@{PARTNER}" in tickets and f"HTTP/localhost@{REALM}" in tickets


def test_users_of_both_realms_get_in_with_requests_gssapi(
    gateway, kerberos_realms, tmp_path, monkeypatch
):
    import requests
    import requests_gssapi  # the test extras install it: missing is a failure, not a skip

    for principal, name in ((f"alice@{REALM}", "alice"), (f"bob@{PARTNER}", "partner-bob")):
        env = kerberos_realms.kinit(principal, tmp_path / f"{name}.cc")
        monkeypatch.setenv("KRB5_CONFIG", env["KRB5_CONFIG"])
        monkeypatch.setenv("KRB5CCNAME", env["KRB5CCNAME"])
        # REQUIRED: the client checks the server's mutual-authentication token itself
        auth = requests_gssapi.HTTPSPNEGOAuth(mutual_authentication=requests_gssapi.REQUIRED)
        response = requests.get(whoami(gateway), auth=auth, timeout=30)
        assert response.status_code == 200, response.text
        assert response.json()["name"] == name
        assert response.json()["authenticated_by"] == "negotiate"
        assert response.headers["WWW-Authenticate"].startswith("Negotiate ")


def test_a_user_with_no_vo_is_refused_when_membership_is_required(
    gateway, kerberos_realms, curl, tmp_path
):
    dave = kerberos_realms.kinit(f"dave@{REALM}", tmp_path / "dave.cc")
    status, headers, body = curl_negotiate(curl, dave, whoami(gateway))
    assert status == 403
    assert body["detail"] == (
        f"negotiate: dave@{REALM} (user dave) is a member of no VO in the directory; "
        "ask a VO manager to add you"
    )
    assert "www-authenticate" not in headers  # no mutual token for a refused caller
    # erin has a Kerberos principal but no directory entry at all: no VO either
    erin = kerberos_realms.kinit(f"erin@{REALM}", tmp_path / "erin.cc")
    status, _, body = curl_negotiate(curl, erin, whoami(gateway))
    assert status == 403 and "erin" in body["detail"]


def test_without_the_requirement_no_vo_gets_in_and_an_unlisted_realm_is_refused(
    gateway_server, kerberos_realms, slapd, curl, tmp_path
):
    env = gateway_env(kerberos_realms, slapd, tmp_path / "state", {REALM: "strip"}, False)
    url = gateway_server(env).replace("127.0.0.1", "localhost")
    dave = kerberos_realms.kinit(f"dave@{REALM}", tmp_path / "dave.cc")
    status, _, body = curl_negotiate(curl, dave, whoami(url))
    assert status == 200, body
    assert (body["name"], body["memberships"]) == ("dave", [])
    bob = kerberos_realms.kinit(f"bob@{PARTNER}", tmp_path / "bob.cc")
    status, headers, body = curl_negotiate(curl, bob, whoami(url))
    assert status == 401
    assert body["detail"] == (
        f"negotiate: bob@{PARTNER}: realm {PARTNER} is not accepted here "
        f"(realms with a mapping rule: {REALM})"
    )
    assert "Negotiate" in headers["www-authenticate"][0]


def test_an_expired_ticket_is_refused(gateway, kerberos_realms, curl, tmp_path, monkeypatch):
    env = kerberos_realms.kinit(f"alice@{REALM}", tmp_path / "short.cc", lifetime="2s")
    # a real client's token, made while the ticket was valid, presented after it expired
    token = client_token(env, monkeypatch)
    time.sleep(4.5)  # 2 s of ticket, 1 s of allowed skew, and a margin
    result = subprocess.run(
        [curl, "-4", "-s", "-H", f"Authorization: Negotiate {token}", whoami(gateway)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    body = json.loads(result.stdout)
    assert body["status"] == 401
    assert body["detail"] == "negotiate: Ticket expired"
    # and a client holding only the expired ticket cannot even make a token: it gets the
    # challenge, no way in
    status, headers, body = curl_negotiate(curl, env, whoami(gateway))
    assert status == 401
    assert body["detail"].startswith("no credentials: send ")
    assert "Negotiate" in headers["www-authenticate"][0]


def test_a_replayed_token_is_refused(gateway, kerberos_realms, curl, tmp_path, monkeypatch):
    env = kerberos_realms.kinit(f"alice@{REALM}", tmp_path / "alice.cc")
    token = client_token(env, monkeypatch)
    answers = [
        subprocess.run(
            [curl, "-4", "-s", "-H", f"Authorization: Negotiate {token}", whoami(gateway)],
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout
        for _ in range(2)
    ]
    assert json.loads(answers[0])["name"] == "alice"
    assert json.loads(answers[1])["detail"] == "negotiate: Request is a replay"


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        ("YWJjZA==", "Invalid token was supplied"),
        ("not*base64", "the Negotiate token is not base64"),
        ("", "the Negotiate token is empty"),
    ],
)
def test_a_garbage_token_is_refused_with_a_reason(gateway, curl, token, reason):
    result = subprocess.run(
        [curl, "-4", "-s", "-i", "-H", f"Authorization: Negotiate {token}", whoami(gateway)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    head, _, body = result.stdout.partition("\n\n")
    assert head.startswith("HTTP/1.1 401")
    assert "www-authenticate: Bearer" in head.lower().replace("bearer", "Bearer")
    assert "Negotiate" in head
    assert json.loads(body)["detail"] == f"negotiate: {reason}"


def test_config_check_reports_the_directory_and_the_keytab(kerberos_realms, slapd, tmp_path):
    xtreemgate = str(Path(os.sys.executable).with_name("xtreemgate"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("XTREEMGATE_")}
    env.update(
        {
            "XTREEMGATE_STATE_DIR": str(tmp_path / "state"),
            "XTREEMGATE_AUTH__CHAIN": '["negotiate"]',
            "XTREEMGATE_AUTH__NEGOTIATE__REALMS": json.dumps({REALM: "strip"}),
            "XTREEMGATE_AUTH__NEGOTIATE__KEYTAB": str(kerberos_realms.keytab),
            "XTREEMGATE_AUTH__NEGOTIATE__SERVICE": "HTTP@localhost",
            "XTREEMGATE_LDAP__URL": slapd.url,
            "XTREEMGATE_LDAP__USER_BASE": slapd_settings(slapd.url)["user_base"],
            "XTREEMGATE_LDAP__BIND_DN": slapd_settings(slapd.url)["bind_dn"],
            "XTREEMGATE_LDAP__BIND_PASSWORD": slapd_settings(slapd.url)["bind_password"],
            "KRB5_CONFIG": str(kerberos_realms.krb5_conf),
        }
    )
    subprocess.run([xtreemgate, "db", "upgrade"], env=env, check=True, capture_output=True)
    ok = subprocess.run([xtreemgate, "config", "check"], env=env, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert f"  ldap       reachable      {slapd.url} answers, bound as cn=gateway" in ok.stdout
    assert "  negotiate  reachable      keys for HTTP@localhost in" in ok.stdout

    env["XTREEMGATE_LDAP__URL"] = f"ldap://127.0.0.1:{services.free_port()}"
    env["XTREEMGATE_AUTH__NEGOTIATE__SERVICE"] = "HTTP@elsewhere.example"
    bad = subprocess.run([xtreemgate, "config", "check"], env=env, capture_output=True, text=True)
    assert bad.returncode == 1
    assert "  ldap       NOT REACHABLE  LDAP server ldap://127.0.0.1:" in bad.stdout
    assert "unreachable: Can't contact LDAP server" in bad.stdout
    assert "  negotiate  NOT REACHABLE  no key for HTTP@elsewhere.example" in bad.stdout


def test_a_directory_outage_is_a_503_not_a_refusal(
    gateway_server, kerberos_realms, fresh_slapd, curl, tmp_path
):
    env = gateway_env(kerberos_realms, fresh_slapd, tmp_path / "state", {REALM: "strip"}, True)
    url = gateway_server(env).replace("127.0.0.1", "localhost")
    alice = kerberos_realms.kinit(f"alice@{REALM}", tmp_path / "alice.cc")
    assert curl_negotiate(curl, alice, whoami(url))[0] == 200
    fresh_slapd.stop()
    status, _, body = curl_negotiate(curl, alice, whoami(url))
    assert status == 503
    assert body["detail"].startswith(
        f"negotiate: cannot look alice up in the directory now: LDAP server {fresh_slapd.url} "
        "unreachable"
    )
    fresh_slapd.start()
    assert curl_negotiate(curl, alice, whoami(url))[0] == 200  # back without a restart
