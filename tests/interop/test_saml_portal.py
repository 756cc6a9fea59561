"""After a real IdP login (pysaml2): the memberships the gateway resolves for a SAML
user (trusted entitlements, the VO store), and the portal's activities with Cancel."""

from __future__ import annotations

import logging
import re
import time
from typing import Any

import pytest
import requests

from backends.contracts.model import JobSpec, JobState
from tests.interop.test_saml_sso import idp_response

pytestmark = pytest.mark.service
ALICE = "alice@example.org"


def login(world: Any) -> requests.Session:
    browser, form = idp_response(world)
    answer = browser.post(f"{world.gateway}/saml/acs", data=form, allow_redirects=False, timeout=10)
    assert answer.status_code == 303, answer.text
    return browser


def local_vo(world: Any, name: str) -> Any:
    vo = world.runtime.backends["vo"]
    if name not in {v["name"] for v in vo.list_vos()}:
        vo.create_vo(name, creator="root")
    return vo


def activity_store(runtime: Any) -> Any:
    """The runtime's one activity store (shared by BES, the API and the portal)."""
    return runtime.activity_store


def start_activity(world: Any, owner: str = ALICE, seconds: str = "300") -> Any:
    rt = world.runtime
    record = rt.activities.submit(
        JobSpec(executable="/bin/sleep", arguments=(seconds,)),
        owner=owner,
        vo="",
        jsdl="<jsdl:JobDefinition xmlns:jsdl='http://schemas.ggf.org/jsdl/2005/11/jsdl'/>",
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:  # running, so Cancel goes to the backend for real
        current = rt.activities.refresh([record])[record.id]
        if current.state is not JobState.PENDING:
            break
        time.sleep(0.1)
    assert current.state is JobState.RUNNING, current
    return current


def test_trusted_entitlement_of_a_local_vo_and_vo_store_membership_reach_whoami(
    saml_world: Any, caplog: pytest.LogCaptureFixture
) -> None:
    vo = local_vo(saml_world, "fusion")  # local, named in saml.entitlement_authorities
    local_vo(saml_world, "lab")
    if not any(m["principal"] == ALICE for m in vo.list_members("lab")):
        vo.add_member("lab", ALICE, status="active", by="root")
    with caplog.at_level(logging.WARNING, logger="xtreemgate.saml"):
        browser = login(saml_world)
    me = browser.get(f"{saml_world.gateway}/api/v1/whoami", timeout=10)
    assert me.status_code == 200, me.text
    assert me.json()["authenticated_by"] == "saml"
    vos = {(m["vo"], m["group"], tuple(m["roles"])) for m in me.json()["memberships"]}
    assert ("fusion", "", ("admin",)) in vos  # from the IdP's trusted entitlement
    assert ("lab", "", ()) in vos  # from the VO store, through the MembershipResolver
    assert not any(vo_name == "hpc" for vo_name, _g, _r in vos)  # untrusted authority
    assert "authority 'aai.evil.net' is not trusted" in caplog.text
    # the session view resolves the same memberships
    session = browser.get(f"{saml_world.gateway}/saml/session", timeout=10).json()
    assert {"vo": "lab", "group": "", "roles": []} in session["memberships"]
    page = browser.get(f"{saml_world.gateway}/portal/", timeout=10)
    assert "<td>lab</td><td>/</td><td>—</td>" in page.text


def test_portal_lists_activities_and_cancels_one_with_a_session_bound_form(
    saml_world: Any,
) -> None:
    mine = start_activity(saml_world)
    theirs = start_activity(saml_world, owner="bob@example.org")
    browser = login(saml_world)
    page = browser.get(f"{saml_world.gateway}/portal/", timeout=10)
    assert page.status_code == 200
    assert f"id='activity-{mine.id}'" in page.text
    assert theirs.id not in page.text  # only the caller's own
    row = re.search(rf"<tr class='activity' id='activity-{mine.id}'>.*?</tr>", page.text).group(0)
    assert "<td class='state'>Running</td>" in row
    action = re.search(r"action='([^']+)'", row).group(1)
    token = re.search(r"name='csrf_token' value='([^']+)'", row).group(1)
    assert action == f"/portal/activities/{mine.id}/cancel"

    # a token from another login session is refused, and nothing changes
    other = login(saml_world)
    forged = other.post(
        f"{saml_world.gateway}{action}",
        data={"csrf_token": token},
        allow_redirects=False,
        timeout=10,
    )
    assert forged.status_code == 403, forged.text
    assert "does not belong to your login session" in forged.text
    no_token = browser.post(f"{saml_world.gateway}{action}", data={}, timeout=10)
    assert no_token.status_code == 400  # the spec requires the field
    # someone else's activity the caller may not read: answered as an unknown one (#16.16:
    # a refusal must not tell that it exists)
    other_page = other.get(f"{saml_world.gateway}/portal/", timeout=10).text
    other_token = re.search(r"name='csrf_token' value='([^']+)'", other_page).group(1)
    refused = other.post(
        f"{saml_world.gateway}/portal/activities/{theirs.id}/cancel",
        data={"csrf_token": other_token},
        allow_redirects=False,
        timeout=10,
    )
    assert refused.status_code == 404, refused.text
    unknown = other.post(
        f"{saml_world.gateway}/portal/activities/nope/cancel",
        data={"csrf_token": other_token},
        allow_redirects=False,
        timeout=10,
    )
    assert unknown.status_code == 404

    done = browser.post(
        f"{saml_world.gateway}{action}",
        data={"csrf_token": token},
        allow_redirects=False,
        timeout=10,
    )
    assert done.status_code == 303, done.text
    assert done.headers["Location"] == "/portal/"
    record = activity_store(saml_world.runtime).get(mine.id)
    assert record.state is JobState.CANCELLED
    assert record.reason == f"terminated by {ALICE}"
    page = browser.get(f"{saml_world.gateway}/portal/", timeout=10).text
    row = re.search(rf"<tr class='activity' id='activity-{mine.id}'>.*?</tr>", page).group(0)
    assert "Cancelled" in row and "class='cancel'" not in row
    again = browser.post(
        f"{saml_world.gateway}{action}", data={"csrf_token": token}, allow_redirects=False
    )
    assert again.status_code == 409 and "already Cancelled" in again.text
    # the other owner's job still runs
    assert activity_store(saml_world.runtime).get(theirs.id).state is not JobState.CANCELLED
    saml_world.runtime.backends["execution"].terminate(theirs.backend_id)


def test_portal_forms_need_a_saml_session(saml_world: Any) -> None:
    """A password (HTTP Basic) caller gets no Cancel form and cannot post one."""
    from gateway.auth.users import add_user

    add_user(saml_world.runtime.db, "carol", "pw-carol-123")
    mine = start_activity(saml_world, owner="carol")
    page = requests.get(f"{saml_world.gateway}/portal/", auth=("carol", "pw-carol-123"), timeout=10)
    assert f"id='activity-{mine.id}'" in page.text and "class='cancel'" not in page.text
    refused = requests.post(
        f"{saml_world.gateway}/portal/activities/{mine.id}/cancel",
        data={"csrf_token": "x"},
        auth=("carol", "pw-carol-123"),
        allow_redirects=False,
        timeout=10,
    )
    assert refused.status_code == 403 and "SAML login session" in refused.text
    saml_world.runtime.backends["execution"].terminate(mine.backend_id)


def test_cancel_of_an_activity_not_yet_handed_to_the_backend(saml_world: Any) -> None:
    """Pending in the store only (the launcher has not run it): cancelled there, and
    the launcher will skip it — the same path BES takes."""
    from backends.store.activities import new_activity_id

    store = activity_store(saml_world.runtime)
    (waiting,) = store.record([new_activity_id()], backend="local", owner=ALICE, vo="", jsdl="<x/>")
    browser = login(saml_world)
    page = browser.get(f"{saml_world.gateway}/portal/", timeout=10).text
    row = re.search(rf"<tr class='activity' id='activity-{waiting.id}'>.*?</tr>", page).group(0)
    assert "<td class='state'>Pending</td>" in row
    token = re.search(r"name='csrf_token' value='([^']+)'", row).group(1)
    done = browser.post(
        f"{saml_world.gateway}/portal/activities/{waiting.id}/cancel",
        data={"csrf_token": token},
        allow_redirects=False,
        timeout=10,
    )
    assert done.status_code == 303, done.text
    record = store.get(waiting.id)
    assert record.state is JobState.CANCELLED and not record.backend_id


def test_portal_lists_the_callers_vms_and_stops_one(saml_world: Any) -> None:
    """A VM created over OCCI with the login session shows on the portal; its Stop form
    stops it for real (libvirt's state), through OCCI's own action path."""
    from tests.integration.occi_support import COMPUTE_KIND, OS_TPL, SMALL

    browser = login(saml_world)
    occi = {"Content-Type": "text/occi", "Accept": "text/plain"}
    created = browser.post(
        f"{saml_world.gateway}/compute/",
        headers={
            **occi,
            "Category": f'{COMPUTE_KIND}, debian12_qcow2; scheme="{OS_TPL.split("#")[0]}#"; '
            f'class="mixin", small; scheme="{SMALL.split("#")[0]}#"; class="mixin"',
            "X-OCCI-Attribute": 'occi.core.title="portal-vm"',
        },
        timeout=30,
    )
    assert created.status_code == 201, created.text
    vm_id = created.headers["Location"].rstrip("/").rsplit("/", 1)[1]
    page = browser.get(f"{saml_world.gateway}/portal/", timeout=10).text
    row = re.search(rf"<tr class='vm' id='vm-{vm_id}'>.*?</tr>", page).group(0)
    assert "portal-vm" in row and "<td class='state'>active</td>" in row
    action = re.search(r"action='([^']+)'", row).group(1)
    token = re.search(r"name='csrf_token' value='([^']+)'", row).group(1)
    assert action == f"/portal/vms/{vm_id}/stop"

    other = login(saml_world)  # a token from another session stops nothing
    forged = other.post(f"{saml_world.gateway}{action}", data={"csrf_token": token}, timeout=10)
    assert forged.status_code == 403
    assert saml_world.runtime.backends["vm"].describe([vm_id])[vm_id].state == "active"

    done = browser.post(
        f"{saml_world.gateway}{action}",
        data={"csrf_token": token},
        allow_redirects=False,
        timeout=30,
    )
    assert done.status_code == 303, done.text
    assert saml_world.runtime.backends["vm"].describe([vm_id])[vm_id].state == "inactive"
    page = browser.get(f"{saml_world.gateway}/portal/", timeout=10).text
    row = re.search(rf"<tr class='vm' id='vm-{vm_id}'>.*?</tr>", page).group(0)
    assert "<td class='state'>inactive</td>" in row and "class='stop'" not in row
    again = browser.post(f"{saml_world.gateway}{action}", data={"csrf_token": token}, timeout=30)
    assert again.status_code == 409, again.text  # already stopped
    unknown = browser.post(
        f"{saml_world.gateway}/portal/vms/0b7e1c52-0000-4000-8000-000000000000/stop",
        data={"csrf_token": token},
        timeout=10,
    )
    assert unknown.status_code == 404


def test_a_form_the_framework_cannot_parse_is_a_4xx_on_every_route(saml_world: Any) -> None:
    """#16.2: the form parser's own errors (Starlette's) are answered by the app's
    handler wherever a form is read: here the portal, with a logged-in browser."""
    browser = login(saml_world)
    mine = start_activity(saml_world)
    try:
        for form in ({"csrf_token": "A" * (1024 * 1024 + 16)}, {f"f{n}": "" for n in range(1001)}):
            answer = browser.post(
                f"{saml_world.gateway}/portal/activities/{mine.id}/cancel",
                data=form,
                allow_redirects=False,
                timeout=30,
            )
            assert answer.status_code == 413, answer.text
            assert answer.headers["Content-Type"] == "application/problem+json"
            assert "form body cannot be read" in answer.json()["detail"]
        assert activity_store(saml_world.runtime).get(mine.id).state is JobState.RUNNING
    finally:
        saml_world.runtime.backends["execution"].terminate(mine.backend_id)
