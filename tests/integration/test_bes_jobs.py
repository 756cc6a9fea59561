"""Job control beyond BES (openapi/activities.yaml) on real processes."""

from __future__ import annotations

import time

import pytest

from tests import bes_messages as m
from tests.conftest import PASSWORD, basic

API = "/api/v1/activities"


@pytest.fixture
def bob(runtime, alice):
    from gateway.auth.users import add_user

    add_user(runtime.db, "bob", PASSWORD)
    return "bob"


def create(client, user: str, *command: str) -> str:
    response = client.post(
        "/bes",
        content=m.envelope(m.create(m.job(*command))),
        headers={"Content-Type": "text/xml", **basic(user)},
    )
    assert response.status_code == 200, response.text
    return m.body_of(response.content).findtext(
        "bes:ActivityIdentifier/wsa:ReferenceParameters/xg:ActivityIdentifier", namespaces=m.NS
    )


def wait(client, user, activity_id, *states, substate=None, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = client.get(f"{API}/{activity_id}", headers=basic(user)).json()
        if body["state"] in states and (substate is None or body["substate"] == substate):
            return body
        time.sleep(0.05)
    raise AssertionError(f"{activity_id} never reached {states}/{substate}: {body}")


def test_list_shows_only_the_callers_activities(client, alice, bob):
    mine = create(client, alice, "/bin/true")
    create(client, bob, "/bin/true")
    body = client.get(f"{API}/", headers=basic(alice)).json()
    assert [a["id"] for a in body["activities"]] == [mine]
    no_slash = client.get(API, headers=basic(alice)).json()  # with or without the slash
    assert [a["id"] for a in no_slash["activities"]] == [mine]
    assert body["total"] == 1
    assert body["activities"][0]["epr_address"].endswith(f"/bes/activities/{mine}")


def test_suspend_resume_and_signal_a_running_job(client, alice):
    # A shell that counts, and says which signal it caught.
    script = "trap 'echo got-usr1 >> sig.txt' USR1; while :; do sleep 0.05; done"
    activity_id = create(client, alice, "/bin/sh", "-c", script)
    wait(client, alice, activity_id, "Running")
    response = client.post(f"{API}/{activity_id}/suspend", headers=basic(alice))
    assert response.status_code == 200, response.text
    assert response.json()["substate"] == "Suspended"
    again = client.post(f"{API}/{activity_id}/resume", headers=basic(alice))
    assert again.status_code == 200
    assert again.json()["substate"] == ""
    not_suspended = client.post(f"{API}/{activity_id}/resume", headers=basic(alice))
    assert not_suspended.status_code == 409
    sent = client.post(
        f"{API}/{activity_id}/signal", json={"signal": "SIGUSR1"}, headers=basic(alice)
    )
    assert sent.status_code == 200
    killed = client.post(
        f"{API}/{activity_id}/signal", json={"signal": "SIGKILL"}, headers=basic(alice)
    )
    assert killed.status_code == 200
    final = wait(client, alice, activity_id, "Failed", "Finished", "Cancelled")
    assert final["state"] == "Failed"


def test_signal_reaches_the_job(client, alice, runtime):
    script = "trap 'echo caught > caught.txt; exit 0' USR1; while :; do sleep 0.05; done"
    activity_id = create(client, alice, "/bin/sh", "-c", script)
    wait(client, alice, activity_id, "Running")
    time.sleep(0.2)  # let the shell install its trap
    sent = client.post(
        f"{API}/{activity_id}/signal", json={"signal": "SIGUSR1"}, headers=basic(alice)
    )
    assert sent.status_code == 200
    final = wait(client, alice, activity_id, "Finished", "Failed")
    assert final["state"] == "Finished" and final["exit_code"] == 0
    folder = runtime.backends["execution"].work_dir / activity_id / "work"
    assert (folder / "caught.txt").read_text() == "caught\n"


def test_errors_are_problem_documents(client, alice, bob):
    missing = client.get(f"{API}/no-such-activity", headers=basic(alice))
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    bobs = create(client, bob, "/bin/sleep", "5")
    # another's activity answers as an unknown id (#16.16): no reason, owner or VO
    for method, path in (("POST", f"{API}/{bobs}/suspend"), ("GET", f"{API}/{bobs}")):
        hidden = client.request(method, path, headers=basic(alice))
        assert hidden.status_code == 404, hidden.text
        assert hidden.json()["detail"] == f"no activity {bobs!r}"
    done = create(client, alice, "/bin/true")
    wait(client, alice, done, "Finished")
    conflict = client.post(f"{API}/{done}/suspend", headers=basic(alice))
    assert conflict.status_code == 409
    assert "Finished" in conflict.json()["detail"]
    bad = client.post(f"{API}/{done}/signal", json={"signal": "SIGNOPE"}, headers=basic(alice))
    assert bad.status_code == 400
    assert client.get(f"{API}/", headers={}).status_code == 401
    client.post(f"{API}/{bobs}/signal", json={"signal": "SIGKILL"}, headers=basic(bob))


def test_a_refusal_says_nothing_of_an_activity_the_caller_may_not_read(runtime, client):
    """#16.16: job control names no other VO; an activity of another VO is unknown."""
    from gateway.auth.users import add_user

    vos = runtime.vo
    for who in ("carol", "dave"):
        add_user(runtime.db, who, PASSWORD)
    vos.create_vo("cms", creator="root", managers=["maria"])
    vos.create_vo("atlas", creator="root", managers=["maria"])
    vos.add_member("cms", "carol", status="active")
    vos.add_member("atlas", "dave", status="active")
    (record,) = runtime.activity_store.record(
        ["0d4a8a39-0000-4000-8000-00000000c0de"],
        backend="local",
        owner="carol",
        vo="cms",
        jsdl="<jsdl/>",
    )
    for method, path in (
        ("GET", f"{API}/{record.id}"),
        ("POST", f"{API}/{record.id}/suspend"),
        ("POST", f"{API}/{record.id}/requeue"),
    ):
        answer = client.request(method, path, headers=basic("dave"))
        assert answer.status_code == 404, answer.text
        assert answer.json()["detail"] == f"no activity {record.id!r}"
        assert "cms" not in answer.text and "carol" not in answer.text


def test_on_the_defaults_a_vo_members_job_runs_as_the_default_account(runtime, client):
    """#16.16: with no account pool configured, a VO member's BES job runs as
    execution.default_account, as a local user's does (it was 'no account pool')."""
    from gateway.auth.users import add_user

    add_user(runtime.db, "carol", PASSWORD)
    runtime.vo.create_vo("cms", creator="root", managers=["maria"])
    runtime.vo.add_member("cms", "carol", status="active")
    activity_id = create(client, "carol", "/bin/true")
    done = wait(client, "carol", activity_id, "Finished", "Failed")
    assert done["state"] == "Finished" and done["vo"] == "cms", done
    mapped = client.get("/api/v1/vo/account?vo=cms", headers=basic("carol"))
    assert mapped.status_code == 404, mapped.text
    assert "execution.default_account" in mapped.json()["detail"]
