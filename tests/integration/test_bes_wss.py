"""WS-Security UsernameToken on /bes: digest with replay checks, text only over TLS."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests import bes_messages as m
from tests.bes_schemas import assert_valid
from tests.conftest import PASSWORD

QUERY = "<bes:GetFactoryAttributesDocument/>"


@pytest.fixture
def wss(runtime, alice):
    return runtime.chain.authenticators[
        [a.mechanism for a in runtime.chain.authenticators].index("wss")
    ]


def post(client, header: str):
    response = client.post(
        "/bes", content=m.envelope(QUERY, header), headers={"Content-Type": "text/xml"}
    )
    assert_valid(response.content)
    return response


def test_password_digest_with_the_users_wss_key(client, wss):
    header = m.wss_header("alice", wss.digest_key("alice"), digest=True)
    response = post(client, header)
    assert response.status_code == 200, response.text


def test_the_login_password_does_not_make_a_digest(client, wss):
    response = post(client, m.wss_header("alice", PASSWORD, digest=True))
    assert response.status_code == 401
    assert "WS-Security key" in m.body_of(response.content).findtext("faultstring")


def test_a_replayed_nonce_is_refused(client, wss):
    nonce = os.urandom(16)
    created = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    header = m.wss_header(
        "alice", wss.digest_key("alice"), digest=True, nonce=nonce, created=created
    )
    assert post(client, header).status_code == 200
    again = post(client, header)
    assert again.status_code == 401
    assert "replay" in m.body_of(again.content).findtext("faultstring")


def test_a_replay_is_refused_by_another_gateway_process_too(client, wss, settings):
    """The nonce cache is the database, shared by every process."""
    from gateway.app import create_app

    header = m.wss_header("alice", wss.digest_key("alice"), digest=True)
    assert post(client, header).status_code == 200
    other = create_app(settings, configure_logs=False)
    try:
        with other.test_client() as c:
            assert post(c, header).status_code == 401
    finally:
        other.app.extensions["xtreemgate"].close()


@pytest.mark.parametrize(
    ("created", "reason"),
    [
        (datetime.now(UTC) - timedelta(hours=1), "more than 300 s ago"),
        (datetime.now(UTC) + timedelta(hours=1), "in the future"),
    ],
    ids=["stale", "future"],
)
def test_created_must_be_fresh(client, wss, created, reason):
    stamp = created.strftime("%Y-%m-%dT%H:%M:%SZ")
    header = m.wss_header("alice", wss.digest_key("alice"), digest=True, created=stamp)
    response = post(client, header)
    assert response.status_code == 401
    assert reason in m.body_of(response.content).findtext("faultstring")


def test_password_text_is_refused_over_plain_http_from_elsewhere(client, alice):
    response = post(client, m.wss_header("alice", PASSWORD, digest=False))
    assert response.status_code == 401
    assert "only over TLS" in m.body_of(response.content).findtext("faultstring")


def test_password_text_is_accepted_over_tls(app, alice):
    with app.test_client(base_url="https://testserver") as tls:
        response = post(tls, m.wss_header("alice", PASSWORD, digest=False))
        assert response.status_code == 200, response.text
        wrong = post(tls, m.wss_header("alice", "not the password", digest=False))
        assert wrong.status_code == 401


def test_password_text_never(make_settings):
    from backends.store import migrate
    from gateway.app import create_app
    from gateway.auth.users import add_user

    s = make_settings(auth={"wss": {"password_text": "never"}})
    migrate.upgrade(s.database_url)
    app = create_app(s, configure_logs=False)
    try:
        add_user(app.app.extensions["xtreemgate"].db, "alice", PASSWORD)
        with app.test_client(base_url="https://testserver") as tls:
            response = post(tls, m.wss_header("alice", PASSWORD, digest=False))
        assert response.status_code == 401
        assert "disabled" in m.body_of(response.content).findtext("faultstring")
    finally:
        app.app.extensions["xtreemgate"].close()


def test_disabled_user_cannot_use_a_digest(client, runtime, wss):
    from gateway.auth.users import update_user

    key = wss.digest_key("alice")
    update_user(runtime.db, "alice", disabled=True)
    assert post(client, m.wss_header("alice", key, digest=True)).status_code == 401


def test_cli_prints_the_same_wss_key(settings, wss):
    env = {k: v for k, v in os.environ.items() if not k.startswith("XTREEMGATE_")}
    env["XTREEMGATE_STATE_DIR"] = settings.state_dir
    xtreemgate = str(Path(sys.executable).with_name("xtreemgate"))
    out = subprocess.run(
        [xtreemgate, "user", "wss-key", "alice"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == wss.digest_key("alice")
