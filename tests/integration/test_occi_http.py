"""The OCCI front end through the app, on the real libvirt library (each test its own
test-driver host, see occi_support.isolated_vm)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from tests.conftest import PASSWORD, basic
from tests.integration.occi_support import (
    COMPUTE_KIND,
    INFRA,
    OS_TPL,
    SMALL,
    check_json,
    isolated_vm,
)

PLAIN = {"Content-Type": "text/plain", "Accept": "text/plain"}
OS_TPL_CAT = f'debian12_qcow2; scheme="{OS_TPL.split("#")[0]}#"; class="mixin"'
SMALL_CAT = f'small; scheme="{SMALL.split("#")[0]}#"; class="mixin"'


@pytest.fixture
def settings(make_settings: Callable[..., Any], tmp_path: Any) -> Any:
    """The conftest settings, with this test's own hypervisor."""
    from backends.store import migrate

    s = make_settings(vm=isolated_vm(tmp_path))
    migrate.upgrade(s.database_url)
    return s


@pytest.fixture
def client(client: Any) -> Any:
    """The app's test client, checking every JSON answer against schemas/occi-1.2.json."""
    request = client.request

    def checked(method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        response = request(method, url, *args, **kwargs)
        media = response.headers.get("content-type", "")
        if media.startswith(("application/occi+json", "application/json")) and not url.startswith(
            ("/api/", "/healthz", "/openapi")
        ):
            check_json(response)
            checked.validated += 1  # type: ignore[attr-defined]
        return response

    checked.validated = 0  # type: ignore[attr-defined]
    client.request = checked
    return client


@pytest.fixture
def h(client: Any, alice: str) -> dict[str, str]:
    return basic(alice)


@pytest.fixture
def bob(runtime: Any) -> dict[str, str]:
    from gateway.auth.users import add_user

    add_user(runtime.db, "bob", PASSWORD)
    return basic("bob")


@pytest.fixture
def create(client: Any, h: dict[str, str]) -> Callable[..., str]:
    def make(*lines: str, kind: str = "compute", headers: dict[str, str] | None = None) -> str:
        category = {
            "compute": COMPUTE_KIND,
            "storage": f'storage; scheme="{INFRA}"; class="kind"',
            "network": f'network; scheme="{INFRA}"; class="kind"',
        }[kind]
        body = "".join(f"{line}\n" for line in (f"Category: {category}", *lines))
        r = client.post(f"/{kind}/", headers={**(headers or h), **PLAIN}, content=body)
        assert r.status_code == 201, r.text
        assert r.headers["Location"].startswith(f"/{kind}/")
        return r.headers["Location"]

    return make


def attrs(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        if line.startswith("X-OCCI-Attribute: "):
            name, _, value = line[len("X-OCCI-Attribute: ") :].partition("=")
            out[name] = value.strip('"')
    return out


# -- query interface -------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["/-/", "/.well-known/org/ogf/occi/-/"])
def test_query_interface_lists_core_infrastructure_templates(
    client: Any, h: dict, path: str
) -> None:
    r = client.get(path, headers=h)
    assert r.status_code == 200
    assert r.headers["Server"].endswith("OCCI/1.2") and r.headers["Server"].startswith(
        "xtreemgate/"
    )
    assert r.headers["Content-Type"].startswith("text/plain")
    body = r.text
    for term, scheme in [
        ("entity", "http://schemas.ogf.org/occi/core#"),
        ("resource", "http://schemas.ogf.org/occi/core#"),
        ("link", "http://schemas.ogf.org/occi/core#"),
        ("compute", INFRA),
        ("storagelink", INFRA),
        ("networkinterface", INFRA),
        ("ipnetwork", "http://schemas.ogf.org/occi/infrastructure/network#"),
        ("ssh_key", "http://schemas.ogf.org/occi/infrastructure/credentials#"),
        ("user_data", "http://schemas.ogf.org/occi/infrastructure/compute#"),
        ("restart", "http://schemas.ogf.org/occi/infrastructure/compute/action#"),
        ("online", "http://schemas.ogf.org/occi/infrastructure/storage/action#"),
        ("down", "http://schemas.ogf.org/occi/infrastructure/network/action#"),
        ("cluster", "http://schemas.xtreemgate.org/occi/infrastructure#"),
        ("debian12_qcow2", "http://schemas.xtreemgate.org/occi/os_tpl#"),
        ("small", "http://schemas.xtreemgate.org/occi/resource_tpl#"),
    ]:
        assert f'Category: {term}; scheme="{scheme}"' in body, term
    assert 'location="/compute/"' in body
    assert "occi.compute.state{immutable}" in body


def test_query_interface_json_and_text_occi(client: Any, h: dict) -> None:
    doc = check_json(client.get("/-/", headers={**h, "Accept": "application/occi+json"}))
    kinds = {k["term"]: k for k in doc["kinds"]}
    assert kinds["compute"]["parent"] == "http://schemas.ogf.org/occi/core#resource"
    assert kinds["compute"]["attributes"]["occi.compute.state"]["mutable"] is False
    assert any(m["term"] == "os_tpl" for m in doc["mixins"])
    r = client.get("/-/", headers={**h, "Accept": "text/occi"})
    assert r.text == "OK\n"
    assert 'compute; scheme="http://schemas.ogf.org/occi/infrastructure#"' in r.headers["Category"]
    filtered = client.get(
        "/-/", headers={**h, "Category": f'compute; scheme="{INFRA}"; class="kind"'}
    )
    assert filtered.text.count("Category:") == 1


def test_needs_credentials(client: Any) -> None:
    assert client.get("/-/").status_code == 401


# -- create / read / update / delete --------------------------------------------------------------
def test_compute_lifecycle_in_text_plain(client: Any, h: dict, create: Callable) -> None:
    loc = create(
        f"Category: {OS_TPL_CAT}",
        f"Category: {SMALL_CAT}",
        'X-OCCI-Attribute: occi.core.title="web 1"',
    )
    r = client.get(loc, headers=h)
    assert r.status_code == 200
    got = attrs(r.text)
    assert got["occi.compute.state"] == "active"
    assert got["occi.compute.cores"] == "1" and got["occi.compute.memory"] == "1.0"
    assert got["occi.core.title"] == "web 1"
    assert f"Category: {OS_TPL_CAT.split(';')[0]}" in r.text
    assert f"<{loc}?action=stop>" in r.text
    listing = client.get("/compute/", headers=h)
    assert f"X-OCCI-Location: {loc}" in listing.text
    upd = client.post(
        loc, headers={**h, **PLAIN}, content='X-OCCI-Attribute: occi.core.summary="a web server"\n'
    )
    assert upd.status_code == 200 and 'occi.core.summary="a web server"' in upd.text
    assert client.delete(loc, headers=h).status_code == 200
    assert client.get(loc, headers=h).status_code == 404
    assert f"{loc}" not in client.get("/compute/", headers=h).text


def test_create_in_text_occi_headers(client: Any, h: dict) -> None:
    r = client.post(
        "/compute/",
        headers={
            **h,
            "content-type": "text/occi",
            "accept": "text/occi",
            "CATEGORY": f"{COMPUTE_KIND}, {SMALL_CAT}",
            "x-occi-attribute": 'occi.core.title = "two", occi.compute.hostname="two.example.org"',
        },
    )
    assert r.status_code == 201, r.text
    assert r.text == "OK\n"
    assert 'occi.compute.hostname="two.example.org"' in r.headers["X-OCCI-Attribute"]


def test_create_and_read_in_json(client: Any, h: dict) -> None:
    doc = {
        "kind": f"{INFRA}compute",
        "mixins": [OS_TPL],
        "attributes": {"occi.compute.cores": 2, "occi.compute.memory": 2.0},
        "title": "json vm",
    }
    r = client.post("/compute/", headers={**h, "Accept": "application/occi+json"}, json=doc)
    assert r.status_code == 201, r.text
    got = check_json(r)
    assert got["attributes"]["occi.compute.cores"] == 2 and got["title"] == "json vm"
    listing = check_json(client.get("/compute/", headers={**h, "Accept": "application/json"}))
    assert [res["id"] for res in listing["resources"]] == [got["id"]]


def test_put_creates_with_client_id_then_replaces(client: Any, h: dict) -> None:
    loc = "/compute/6f1c9e56-8d3a-4d55-9b9f-0f1d2c3b4a59"
    body = f'Category: {COMPUTE_KIND}\nX-OCCI-Attribute: occi.core.title="first"\n'
    first = client.put(loc.replace("6f1c9e56", "6F1C9E56"), headers={**h, **PLAIN}, content=body)
    assert first.status_code == 201 and first.headers["Location"] == loc, first.text
    assert attrs(first.text)["occi.compute.state"] == "active"
    again = f'Category: {COMPUTE_KIND}\nX-OCCI-Attribute: occi.core.title="second"\n'
    r = client.put(loc, headers={**h, **PLAIN}, content=again)
    assert r.status_code == 200 and attrs(r.text)["occi.core.title"] == "second"
    upper = client.put(loc.upper().replace("/COMPUTE/", "/compute/"), headers={**h, **PLAIN})
    assert upper.status_code == 200 and attrs(upper.text)["occi.core.id"] == loc.rpartition("/")[2]
    assert attrs(upper.text)["occi.compute.state"] == "active"  # the VM is found: same id
    bad = client.put("/compute/not-a-uuid", headers={**h, **PLAIN}, content=body)
    assert bad.status_code == 400 and "UUID" in bad.text


def test_client_values_win_over_resource_tpl(client: Any, h: dict, create: Callable) -> None:
    """Explicit cores/memory are kept (the backend's update replaces the whole definition:
    what the client did not change is carried over from the VM's current facts)."""
    loc = create(f"Category: {SMALL_CAT}", "X-OCCI-Attribute: occi.compute.cores=2")
    got = attrs(client.get(loc, headers=h).text)
    assert (got["occi.compute.cores"], got["occi.compute.memory"]) == ("2", "1.0")
    r = client.post(loc, headers={**h, **PLAIN}, content="X-OCCI-Attribute: occi.compute.cores=3\n")
    assert r.status_code == 200 and attrs(r.text)["occi.compute.cores"] == "3"
    r = client.post(
        loc, headers={**h, **PLAIN}, content='X-OCCI-Attribute: occi.compute.hostname="w1.test"\n'
    )
    got = attrs(r.text)
    assert (got["occi.compute.cores"], got["occi.compute.hostname"]) == ("3", "w1.test")
    assert f"Category: {SMALL_CAT}" in r.text  # the resource_tpl stays: how the VM was made


def test_vm_gone_behind_the_gateway_shows_error_and_can_be_deleted(
    client: Any, h: dict, create: Callable, runtime: Any
) -> None:
    """describe() leaves out ids the hypervisor does not know: state error, with why."""
    loc = create()
    vm_id = loc.rpartition("/")[2]
    vm = runtime.backends["vm"]
    dom = vm.connection(vm.uris[0]).lookupByUUIDString(vm_id)
    dom.destroy()
    dom.undefine()
    got = attrs(client.get(loc, headers=h).text)
    assert got["occi.compute.state"] == "error"
    assert "no longer knows" in got["occi.compute.state.message"]
    assert client.post(f"{loc}?action=start", headers=h).status_code == 404
    assert client.delete(loc, headers=h).status_code == 200
    assert client.get(loc, headers=h).status_code == 404


# -- actions ------------------------------------------------------------------------------
def test_actions_and_their_errors(client: Any, h: dict, create: Callable) -> None:
    loc = create()
    stop = f'Category: stop; scheme="{INFRA[:-1]}/compute/action#"; class="action"\nX-OCCI-Attribute: method="poweroff"\n'
    r = client.post(f"{loc}?action=stop", headers={**h, **PLAIN}, content=stop)
    assert r.status_code == 200 and attrs(r.text)["occi.compute.state"] == "inactive"
    again = client.post(f"{loc}?action=stop", headers=h)
    assert again.status_code == 409 and "inactive" in again.text
    assert client.post(f"{loc}?action=up", headers=h).status_code == 405
    assert client.post(f"{loc}?action=fly", headers=h).status_code == 400
    wrong = client.post(
        f"{loc}?action=stop",
        headers={**h, **PLAIN},
        content='X-OCCI-Attribute: method="sideways"\n',
    )
    assert wrong.status_code == 400 and "method" in wrong.text
    assert (
        attrs(client.post(f"{loc}?action=start", headers=h).text)["occi.compute.state"] == "active"
    )
    r = client.post(f"{loc}?action=suspend", headers=h)
    assert attrs(r.text)["occi.compute.state"] == "suspended"
    assert (
        attrs(client.post(f"{loc}?action=start", headers=h).text)["occi.compute.state"] == "active"
    )
    assert client.post(f"{loc}?action=restart", headers=h).status_code == 200


def test_save_makes_a_new_os_tpl(client: Any, h: dict, create: Callable) -> None:
    """save clones the compute's disk into a new image template, offered as an os_tpl."""
    save = f'Category: save; scheme="{INFRA[:-1]}/compute/action#"; class="action"\n'
    loc = create(f"Category: {OS_TPL_CAT}")
    r = client.post(
        f"{loc}?action=save",
        headers={**h, **PLAIN},
        content=save + 'X-OCCI-Attribute: name="golden-1"\n',
    )
    assert r.status_code == 200, r.text
    golden = "http://schemas.xtreemgate.org/occi/os_tpl#golden-1"
    assert r.text.startswith(
        'Category: golden-1; scheme="http://schemas.xtreemgate.org/occi/os_tpl#"'
    )
    assert attrs(client.get(loc, headers=h).text)["occi.compute.state"] == "active"
    assert 'Category: golden-1; scheme="http://schemas.xtreemgate.org/occi/os_tpl#"' in (
        client.get("/-/", headers=h).text
    )
    create(f'Category: golden-1; scheme="{golden[:-8]}"; class="mixin"')  # usable at once
    again = client.post(
        f"{loc}?action=save", headers={**h, **PLAIN}, content='X-OCCI-Attribute: name="golden-1"\n'
    )
    assert again.status_code == 409 and "already exists" in again.text
    bad = client.post(
        f"{loc}?action=save", headers={**h, **PLAIN}, content='X-OCCI-Attribute: name="a b/c"\n'
    )
    assert bad.status_code == 400 and "letters, digits" in bad.text
    # deferred: the template appears when the compute stops
    r = client.post(
        f"{loc}?action=save",
        headers={**h, **PLAIN},
        content='X-OCCI-Attribute: method="deferred"\nX-OCCI-Attribute: name="later"\n',
    )
    assert r.status_code == 200 and "when the compute stops" in r.text
    assert "Category: later;" not in client.get("/-/", headers=h).text
    assert client.post(f"{loc}?action=stop", headers=h).status_code == 200
    assert "Category: later;" in client.get("/-/", headers=h).text
    # without a name the server picks one and says which
    r = client.post(f"{loc}?action=save", headers=h)
    assert r.status_code == 200 and loc.rpartition("/")[2] in r.text
    diskless = create()
    r = client.post(f"{diskless}?action=save", headers=h)
    assert r.status_code == 409 and "no disk" in r.text
    one_name = 'X-OCCI-Attribute: name="same"\n'
    r = client.post("/compute/?action=save", headers={**h, **PLAIN}, content=one_name)
    assert r.status_code == 400 and "one os_tpl per compute" in r.text


def test_actions_and_delete_on_collections(client: Any, h: dict, create: Callable) -> None:
    first, second = create(), create()
    r = client.post("/compute/?action=stop", headers=h)
    assert r.status_code == 200 and first in r.text and second in r.text
    for loc in (first, second):
        assert attrs(client.get(loc, headers=h).text)["occi.compute.state"] == "inactive"
    assert client.delete("/compute/", headers=h).status_code == 200
    assert "X-OCCI-Location" not in client.get("/compute/", headers=h).text


# -- ownership --------------------------------------------------------------------------------
def test_listings_and_access_are_per_owner(
    client: Any, h: dict, bob: dict, create: Callable
) -> None:
    mine = create()
    theirs = create(headers=bob)
    assert theirs not in client.get("/compute/", headers=h).text
    assert mine not in client.get("/compute/", headers=bob).text
    assert client.get(mine, headers=bob).status_code == 404
    assert client.delete(mine, headers=bob).status_code == 404
    assert client.post(f"{mine}?action=stop", headers=bob).status_code == 404
    client.delete("/compute/", headers=bob)
    assert client.get(mine, headers=h).status_code == 200


# -- filtering, paging, negotiation, versions ---------------------------------------------
def test_filtering_and_paging(client: Any, h: dict, create: Callable) -> None:
    tagged = create(f"Category: {SMALL_CAT}", 'X-OCCI-Attribute: occi.core.title="alpha"')
    plain = create('X-OCCI-Attribute: occi.core.title="beta"')
    by_cat = client.get("/compute/", headers=h, params={"category": SMALL})
    assert tagged in by_cat.text and plain not in by_cat.text
    by_attr = client.get("/compute/", headers={**h, "X-OCCI-Attribute": 'occi.core.title="beta"'})
    assert plain in by_attr.text and tagged not in by_attr.text
    by_query = client.get("/compute/", headers=h, params={"attribute": 'occi.core.title="alpha"'})
    assert tagged in by_query.text and plain not in by_query.text
    first = client.get("/compute/", headers=h, params={"page": 1, "number": 1}).text
    second = client.get("/compute/", headers=h, params={"page": 2, "number": 1}).text
    assert first.count("X-OCCI-Location") == second.count("X-OCCI-Location") == 1
    assert first != second
    uris = client.get("/compute/", headers={**h, "Accept": "text/uri-list"})
    assert uris.headers["Content-Type"].startswith("text/uri-list")
    assert sorted(uris.text.split()) == sorted([tagged, plain])


def test_negotiation_and_versions(client: Any, h: dict, create: Callable) -> None:
    loc = create()
    assert client.get(loc, headers={**h, "Accept": "image/png"}).status_code == 406
    assert client.get(loc, headers={**h, "Accept": "text/uri-list"}).status_code == 400
    assert (
        client.get(loc, headers={**h, "Accept": "*/*"})
        .headers["Content-Type"]
        .startswith("text/plain")
    )
    assert (
        client.get(loc, headers={**h, "Accept": "text/html;q=0.9, application/json"})
        .headers["Content-Type"]
        .startswith("application/json")
    )
    newer = client.get("/-/", headers={**h, "X-OCCI-Version": "1.3"})
    assert newer.status_code == 501 and "1.2" in newer.text
    assert (
        client.get("/-/", headers={**h, "User-Agent": "rOCCI-cli/5.0 OCCI/2.0"}).status_code == 501
    )
    assert (
        client.get("/-/", headers={**h, "User-Agent": "rOCCI-cli/4.3.13 OCCI/1.1"}).status_code
        == 200
    )


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("Category: compute\n", "scheme"),
        (f'Category: {COMPUTE_KIND}\nX-OCCI-Attribute: occi.compute.cores="many"\n', "number"),
        (f"Category: {COMPUTE_KIND}\nX-OCCI-Attribute: occi.compute.wings=2\n", "not defined"),
        (
            f'Category: {COMPUTE_KIND}\nCategory: nope; scheme="http://x#"; class="mixin"\n',
            "unknown mixin",
        ),
        (f'Category: {COMPUTE_KIND}\nX-OCCI-Attribute: occi.core.title="open\n', "quote"),
        ("this is not OCCI\n", "Name: value"),
        (f"Category: {COMPUTE_KIND}\nX-OCCI-Attribute: occi.compute.cores=0\n", "at least"),
        (f'Category: storage; scheme="{INFRA}"; class="kind"\n', "this collection holds"),
    ],
)
def test_garbage_is_400_with_reason(client: Any, h: dict, body: str, reason: str) -> None:
    r = client.post("/compute/", headers={**h, **PLAIN}, content=body)
    assert r.status_code == 400, r.text
    assert reason in r.text
    assert "X-OCCI-Location" not in client.get("/compute/", headers=h).text


def test_every_json_answer_is_valid_occi(client: Any, h: dict, create: Callable) -> None:
    loc = create(f"Category: {OS_TPL_CAT}")
    json_h = {**h, "Accept": "application/occi+json"}
    for path in (
        "/-/",
        "/compute/",
        loc,
        "/mixins/os_tpl/debian12_qcow2/",
        "/cluster/",
        "/storage/",
    ):
        assert client.get(path, headers=json_h).status_code == 200
    assert client.post(f"{loc}?action=stop", headers=json_h).status_code == 200
    assert client.post("/compute/?action=start", headers=json_h).status_code == 200
    assert client.delete(loc, headers=json_h).status_code == 200
    assert client.request.validated == 9


@hypothesis_settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    media=st.sampled_from(["text/plain", "text/occi", "text/uri-list", "application/occi+json"]),
    body=st.text(max_size=200)
    | st.sampled_from(
        [
            f"Category: {COMPUTE_KIND}\nX-OCCI-Attribute: occi.compute.memory=-1\n",
            '{"kind": []}',
            "{}",
        ]
    ),
    header=st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=80),
)
def test_garbage_never_gives_500(client: Any, h: dict, media: str, body: str, header: str) -> None:
    headers = {**h, "Content-Type": media, "X-OCCI-Attribute": header, "Category": header}
    for path in ("/compute/", "/-/", "/mixins/os_tpl/"):
        r = client.post(path, headers=headers, content=body.encode())
        assert r.status_code < 500, r.text


def test_bad_json_is_400(client: Any, h: dict) -> None:
    r = client.post(
        "/compute/", headers={**h, "Content-Type": "application/occi+json"}, content=b'{"kind": 5}'
    )
    assert r.status_code == 400 and "kind" in r.text


# -- mixins --------------------------------------------------------------------------------
def test_user_mixin_tagging(client: Any, h: dict, create: Callable) -> None:
    a, b = create(), create()
    tag = 'Category: prod; scheme="http://example.org/tags#"; class="mixin"; location="/mixins/prod/"\n'
    assert client.post("/-/", headers={**h, **PLAIN}, content=tag).status_code == 200
    assert client.post("/-/", headers={**h, **PLAIN}, content=tag).status_code == 409
    assert 'Category: prod; scheme="http://example.org/tags#"' in client.get("/-/", headers=h).text
    r = client.post(
        "/mixins/prod/", headers={**h, "Content-Type": "text/uri-list"}, content=f"{a}\n"
    )
    assert r.status_code == 200, r.text
    assert client.get("/mixins/prod/", headers=h).text == f"X-OCCI-Location: {a}\n"
    assert "prod" in client.get(a, headers=h).text
    client.put("/mixins/prod/", headers={**h, **PLAIN}, content=f"X-OCCI-Location: {b}\n")
    assert client.get("/mixins/prod/", headers=h).text == f"X-OCCI-Location: {b}\n"
    client.request(
        "DELETE", "/mixins/prod/", headers={**h, **PLAIN}, content=f"X-OCCI-Location: {b}\n"
    )
    assert "X-OCCI-Location" not in client.get("/mixins/prod/", headers=h).text
    untag = 'Category: prod; scheme="http://example.org/tags#"; class="mixin"\n'
    assert client.request("DELETE", "/-/", headers={**h, **PLAIN}, content=untag).status_code == 200
    assert client.get("/mixins/prod/", headers=h).status_code == 404
    assert client.get("/mixins/os_tpl/debian12_qcow2/", headers=h).status_code == 200
    bad = 'Category: x; scheme="http://example.org/tags#"; class="mixin"; location="/elsewhere/"\n'
    assert client.post("/-/", headers={**h, **PLAIN}, content=bad).status_code == 400


# -- storage, network, links -------------------------------------------------------------------
def test_storage_network_and_links(client: Any, h: dict, create: Callable) -> None:
    net = create(
        'Category: ipnetwork; scheme="http://schemas.ogf.org/occi/infrastructure/network#"; class="mixin"',
        "X-OCCI-Attribute: occi.network.vlan=12",
        'X-OCCI-Attribute: occi.network.address="192.0.2.0/24"',
        kind="network",
    )
    disk = create("X-OCCI-Attribute: occi.storage.size=2", kind="storage")
    vm = create(f'Link: <{net}>; rel="{INFRA}network"; category="{INFRA}networkinterface"')
    shown = client.get(vm, headers=h).text
    assert f"Link: <{net}>" in shown and "occi.networkinterface.mac=" in shown
    link_body = (
        f'Category: storagelink; scheme="{INFRA}"; class="kind"\n'
        f'X-OCCI-Attribute: occi.core.source="{vm}"\nX-OCCI-Attribute: occi.core.target="{disk}"\n'
    )
    r = client.post("/storagelink/", headers={**h, **PLAIN}, content=link_body)
    assert r.status_code == 201, r.text
    link = r.headers["Location"]
    assert attrs(r.text)["occi.storagelink.deviceid"].startswith("vd")
    assert f"Link: <{disk}>" in client.get(vm, headers=h).text
    assert client.delete(disk, headers=h).status_code == 409  # still linked
    check_json(client.get(vm, headers={**h, "Accept": "application/occi+json"}))
    assert client.delete(link, headers=h).status_code == 200
    assert f"<{disk}>" not in client.get(vm, headers=h).text
    network = attrs(client.get(net, headers=h).text)
    assert network["occi.network.state"] == "active" and network["occi.network.vlan"] == "12"
    assert (
        attrs(client.post(f"{net}?action=down", headers=h).text)["occi.network.state"] == "inactive"
    )
    assert (
        attrs(client.post(f"{disk}?action=offline", headers=h).text)["occi.storage.state"]
        == "offline"
    )
    assert client.post(f"{disk}?action=offline", headers=h).status_code == 409
    assert client.delete(vm, headers=h).status_code == 200
    assert client.delete(disk, headers=h).status_code == 200
    assert client.delete(net, headers=h).status_code == 200


# -- virtual clusters -----------------------------------------------------------------------
def test_virtual_cluster(client: Any, h: dict) -> None:
    body = (
        'Category: cluster; scheme="http://schemas.xtreemgate.org/occi/infrastructure#"; class="kind"\n'
        f"Category: {OS_TPL_CAT}\nCategory: {SMALL_CAT}\n"
        'X-OCCI-Attribute: occi.core.title="hpc"\nX-OCCI-Attribute: xtreemgate.cluster.size=2\n'
    )
    r = client.post("/cluster/", headers={**h, **PLAIN}, content=body)
    assert r.status_code == 201, r.text
    cluster = r.headers["Location"]
    got = attrs(r.text)
    assert got["xtreemgate.cluster.size"] == "2" and got["xtreemgate.cluster.state"] == "active"
    assert got["xtreemgate.cluster.template"] == OS_TPL
    members = client.get("/compute/", headers=h).text.split()
    members = [m for m in members if m.startswith("/compute/")]
    assert len(members) == 2
    assert f"Link: <{cluster}>" in client.get(members[0], headers=h).text
    assert len(client.get("/clustermember/", headers=h).text.splitlines()) == 2
    grown = client.post(f"{cluster}?action=add_node", headers=h)
    assert attrs(grown.text)["xtreemgate.cluster.size"] == "3"
    stopped = client.post(f"{cluster}?action=stop", headers=h)
    assert attrs(stopped.text)["xtreemgate.cluster.state"] == "inactive"
    evict = f'X-OCCI-Attribute: xtreemgate.cluster.node="{members[0]}"\n'
    shrunk = client.post(f"{cluster}?action=evict_node", headers={**h, **PLAIN}, content=evict)
    assert attrs(shrunk.text)["xtreemgate.cluster.size"] == "2"
    assert client.get(members[0], headers=h).status_code == 404
    assert client.post(f"{cluster}?action=suspend", headers=h).status_code == 405
    assert (
        attrs(client.post(f"{cluster}?action=start", headers=h).text)["xtreemgate.cluster.state"]
        == "active"
    )
    check_json(client.get(cluster, headers={**h, "Accept": "application/occi+json"}))
    assert client.delete(cluster, headers=h).status_code == 200
    assert "X-OCCI-Location" not in client.get("/compute/", headers=h).text
    no_tpl = body.replace(f"Category: {OS_TPL_CAT}\n", "")
    assert client.post("/cluster/", headers={**h, **PLAIN}, content=no_tpl).status_code == 400
    # more members than the host has memory for: 503 with the reason, nothing left behind
    huge = body.replace("xtreemgate.cluster.size=2", "xtreemgate.cluster.size=12")
    r = client.post("/cluster/", headers={**h, **PLAIN}, content=huge)
    assert r.status_code == 503 and "MiB free" in r.text, r.text
    for path in ("/compute/", "/cluster/", "/clustermember/"):
        assert "X-OCCI-Location" not in client.get(path, headers=h).text, path


def test_contextualisation_mixins(client: Any, h: dict, create: Callable) -> None:
    ssh = 'ssh_key; scheme="http://schemas.ogf.org/occi/infrastructure/credentials#"; class="mixin"'
    data = 'user_data; scheme="http://schemas.ogf.org/occi/infrastructure/compute#"; class="mixin"'
    loc = create(
        f"Category: {ssh}",
        f"Category: {data}",
        'X-OCCI-Attribute: occi.credentials.ssh.publickey="ssh-ed25519 AAAAC3Nz alice@host"',
        'X-OCCI-Attribute: occi.compute.userdata="I2Nsb3VkLWNvbmZpZwo="',
    )
    shown = client.get(loc, headers=h).text
    assert "Category: ssh_key;" in shown and "Category: user_data;" in shown
    assert attrs(shown)["occi.credentials.ssh.publickey"].startswith("ssh-ed25519")
    missing = client.post(
        "/compute/", headers={**h, **PLAIN}, content=f"Category: {COMPUTE_KIND}\nCategory: {ssh}\n"
    )
    assert missing.status_code == 400 and "occi.credentials.ssh.publickey" in missing.text
    wrong_kind = client.post(
        "/storage/",
        headers={**h, **PLAIN},
        content=f'Category: storage; scheme="{INFRA}"; class="kind"\nCategory: {ssh}\n'
        "X-OCCI-Attribute: occi.storage.size=1\n",
    )
    assert wrong_kind.status_code == 400 and "does not apply" in wrong_kind.text


def test_put_replaces_user_mixins_but_keeps_templates(
    client: Any, h: dict, create: Callable
) -> None:
    tag = 'Category: blue; scheme="http://example.org/tags#"; class="mixin"; location="/mixins/blue/"\n'
    assert client.post("/-/", headers={**h, **PLAIN}, content=tag).status_code == 200
    loc = create(
        f"Category: {OS_TPL_CAT}",
        'Category: blue; scheme="http://example.org/tags#"; class="mixin"',
    )
    assert "Category: blue;" in client.get(loc, headers=h).text
    r = client.put(
        loc,
        headers={**h, **PLAIN},
        content=f'Category: {COMPUTE_KIND}\nX-OCCI-Attribute: occi.core.title="plain"\n',
    )
    assert r.status_code == 200
    assert "Category: blue;" not in r.text and "Category: debian12_qcow2;" in r.text
    other = f"Category: {COMPUTE_KIND}\nCategory: {SMALL_CAT}\n"
    assert client.post(loc, headers={**h, **PLAIN}, content=other).status_code == 409
    grow = client.post(
        loc, headers={**h, **PLAIN}, content="X-OCCI-Attribute: occi.compute.cores=3\n"
    )
    assert grow.status_code == 200  # a running VM shows its live size until restarted cold
    client.post(f"{loc}?action=stop", headers=h)
    restarted = client.post(f"{loc}?action=start", headers=h)
    assert attrs(restarted.text)["occi.compute.cores"] == "3"
    immutable = client.post(
        loc, headers={**h, **PLAIN}, content='X-OCCI-Attribute: occi.core.id="x"\n'
    )
    assert immutable.status_code == 200  # the id is the server's; a client echoing it is ignored


# -- issue 16: conformance ---------------------------------------------------------------------
@pytest.mark.parametrize("media", ["text/plain", "application/occi+json"])
def test_put_of_the_servers_own_rendering_is_accepted(
    client: Any, h: dict, create: Callable, media: str
) -> None:
    """#16.7: a full PUT restates immutable attributes (a resource_tpl's cores and memory, a
    link's source) with their unchanged values; only a change is refused (GFD.221 §5.2)."""
    disk = create("X-OCCI-Attribute: occi.storage.size=1", kind="storage")
    vm = create(f"Category: {SMALL_CAT}")
    link = client.post(
        "/storagelink/",
        headers={**h, **PLAIN},
        content=f'Category: storagelink; scheme="{INFRA}"; class="kind"\n'
        f'X-OCCI-Attribute: occi.core.source="{vm}"\nX-OCCI-Attribute: occi.core.target="{disk}"\n',
    ).headers["Location"]
    for loc in (vm, link):
        shown = client.get(loc, headers={**h, "Accept": media})
        r = client.put(
            loc,
            headers={**h, "Content-Type": media, "Accept": media},
            content=shown.content,
        )
        assert r.status_code == 200, (loc, r.text)
    changed = client.put(
        vm,
        headers={**h, **PLAIN},
        content=f"Category: {COMPUTE_KIND}\nCategory: {SMALL_CAT}\n"
        "X-OCCI-Attribute: occi.compute.cores=4\n",
    )
    assert changed.status_code == 400 and "occi.compute.cores cannot be changed" in changed.text


def test_empty_collections_in_text_plain_have_an_empty_body(
    client: Any, h: dict, create: Callable
) -> None:
    """#16.8: GFD.229 §5.3: an empty collection in text/plain is an empty body (the "OK"
    body is text/occi's); a page past the end is an empty collection (GFD.223 §6)."""
    tag = 'Category: empty; scheme="http://example.org/tags#"; class="mixin"; location="/mixins/empty/"\n'
    assert client.post("/-/", headers={**h, **PLAIN}, content=tag).status_code == 200
    for params in ({}, {"category": SMALL}):
        r = client.get("/compute/", headers={**h, "Accept": "text/plain"}, params=params)
        assert (r.status_code, r.text) == (200, ""), params
    assert client.get("/mixins/empty/", headers={**h, "Accept": "text/plain"}).text == ""
    create()
    past = client.get("/compute/", headers=h, params={"page": 5, "number": 1})
    assert (past.status_code, past.text) == (200, "")
    occi = client.get("/mixins/empty/", headers={**h, "Accept": "text/occi"})
    assert occi.text == "OK\n" and "X-OCCI-Location" not in occi.headers


def test_another_users_id_answers_404_like_an_unknown_one(
    client: Any, h: dict, bob: dict, create: Callable
) -> None:
    """#16.16: an id taken by someone else is not confirmed (no 409 existence oracle)."""
    theirs = create(headers=bob)
    theirs_id = theirs.rpartition("/")[2]
    body = f'Category: {COMPUTE_KIND}\nX-OCCI-Attribute: occi.core.id="{theirs_id}"\n'
    asked = [
        client.post("/compute/", headers={**h, **PLAIN}, content=body),
        client.put(theirs, headers={**h, **PLAIN}, content=f"Category: {COMPUTE_KIND}\n"),
        client.put(
            f"/storage/{theirs_id}",
            headers={**h, **PLAIN},
            content=f'Category: storage; scheme="{INFRA}"; class="kind"\n'
            "X-OCCI-Attribute: occi.storage.size=1\n",
        ),
    ]
    assert [r.status_code for r in asked] == [404, 404, 404], [r.text for r in asked]
    assert all("does not exist here" in r.text for r in asked)
    mine = create()
    again = (
        f'Category: {COMPUTE_KIND}\nX-OCCI-Attribute: occi.core.id="{mine.rpartition("/")[2]}"\n'
    )
    assert client.post("/compute/", headers={**h, **PLAIN}, content=again).status_code == 409
    assert client.get(theirs, headers=bob).status_code == 200


@pytest.mark.parametrize("where", ["/mixins/../compute/", "/mixins/./x/", "/mixins/a/../../-/"])
def test_user_mixin_location_outside_mixins_is_refused(client: Any, h: dict, where: str) -> None:
    """#16.16: a user mixin's location stays under /mixins/ once normalised."""
    tag = (
        f'Category: sneaky; scheme="http://example.org/tags#"; class="mixin"; location="{where}"\n'
    )
    r = client.post("/-/", headers={**h, **PLAIN}, content=tag)
    assert r.status_code == 400 and "location must look like" in r.text
    assert "sneaky" not in client.get("/-/", headers=h).text


def test_answers_the_standards_name(client: Any, h: dict, create: Callable) -> None:
    """#16.9: POST/PUT on a mixin collection answer the collection (GFD.223 §11.2,
    §11.3.2); save answers the new os_tpl (GFD.224 §3.1); text/uri-list on an entity or
    the query interface is 400 (GFD.229 §8); core#resource and core#link have a location
    in JSON (GFD.226 §3.2.1), and it lists their children."""
    tag = (
        'Category: web; scheme="http://example.org/tags#"; class="mixin"; location="/mixins/web/"\n'
    )
    assert client.post("/-/", headers={**h, **PLAIN}, content=tag).status_code == 200
    a, b = create(f"Category: {OS_TPL_CAT}"), create()
    r = client.post("/mixins/web/", headers={**h, **PLAIN}, content=f"X-OCCI-Location: {a}\n")
    assert (r.status_code, r.text) == (200, f"X-OCCI-Location: {a}\n")
    r = client.put(
        "/mixins/web/",
        headers={**h, "Content-Type": "text/uri-list", "Accept": "text/uri-list"},
        content=f"{b}\n",
    )
    assert (r.status_code, r.text) == (200, f"{b}\n")
    r = client.post(
        "/mixins/web/",
        headers={**h, "Accept": "application/occi+json"},
        json={"locations": [a]},
    )
    assert sorted(x["id"] for x in r.json()["resources"]) == sorted(
        loc.rpartition("/")[2] for loc in (a, b)
    )
    saved = client.post(
        f"{a}?action=save",
        headers={**h, **PLAIN, "Accept": "application/occi+json"},
        content='X-OCCI-Attribute: name="web-image"\n',
    )
    assert saved.status_code == 200, saved.text
    assert [m["term"] for m in saved.json()["mixins"]] == ["web-image"]
    for path in (a, "/-/"):
        r = client.get(path, headers={**h, "Accept": "text/uri-list"})
        assert r.status_code == 400 and "collections only" in r.text, path
    kinds = check_json(client.get("/-/", headers={**h, "Accept": "application/occi+json"}))
    where = {k["term"]: k.get("location") for k in kinds["kinds"]}
    assert (where["resource"], where["link"]) == ("/resource/", "/link/")
    listed = client.get("/resource/", headers={**h, "Accept": "text/uri-list"}).text.split()
    assert sorted(listed) == sorted([a, b])
    assert client.get("/link/", headers=h).status_code == 200
    assert client.post("/resource/", headers={**h, **PLAIN}, content="").status_code == 405


def test_framework_answers_on_occi_paths_are_occi(client: Any, h: dict, create: Callable) -> None:
    """#16.10: 401, 404 (no route), 405 and 415 on OCCI paths carry the OCCI Server
    header, an OCCI rendering (the reason in text/plain, or text/occi when only that is
    taken) and an Allow naming every method the path takes."""
    vm = create()
    answers = {
        401: client.get("/compute/"),
        404: client.get(f"{vm}/nothing/here", headers=h),
        405: client.patch("/compute/", headers=h),
        415: client.post("/compute/", headers={**h, "Content-Type": "image/png"}, content=b"x"),
    }
    for status, r in answers.items():
        assert r.status_code == status, (status, r.text)
        assert r.headers["Server"].endswith("OCCI/1.2"), status
        assert r.headers["Content-Type"].startswith("text/plain"), status
        assert r.text.strip() and not r.text.startswith("{"), status
    assert "WWW-Authenticate" in answers[401].headers
    assert set(answers[405].headers["Allow"].split(", ")) == {"GET", "HEAD", "POST", "DELETE"}
    one = client.patch(vm, headers={**h, "Accept": "text/occi"})
    assert one.status_code == 405 and one.headers["Content-Type"].startswith("text/occi")
    assert set(one.headers["Allow"].split(", ")) == {"GET", "HEAD", "PUT", "POST", "DELETE"}
    assert "Server" not in client.get("/api/v1/nothing", headers=h).headers or not (
        client.get("/api/v1/nothing", headers=h).headers["Server"].endswith("OCCI/1.2")
    )


def test_user_mixins_are_their_owners(client: Any, h: dict, bob: dict, create: Callable) -> None:
    """#16.16: a user mixin is its owner's: another user neither sees it on the query
    interface nor uses it, and may define one of the same name and location."""
    tag = 'Category: prod; scheme="http://example.org/tags#"; class="mixin"; location="/mixins/prod/"\n'
    assert client.post("/-/", headers={**h, **PLAIN}, content=tag).status_code == 200
    mine = create('Category: prod; scheme="http://example.org/tags#"; class="mixin"')
    assert "Category: prod;" not in client.get("/-/", headers=bob).text
    assert client.get("/mixins/prod/", headers=bob).status_code == 404
    uses = f'Category: {COMPUTE_KIND}\nCategory: prod; scheme="http://example.org/tags#"; class="mixin"\n'
    refused = client.post("/compute/", headers={**bob, **PLAIN}, content=uses)
    assert refused.status_code == 400 and "unknown mixin" in refused.text
    assert client.post("/-/", headers={**bob, **PLAIN}, content=tag).status_code == 200
    theirs = create(headers=bob)
    client.post("/mixins/prod/", headers={**bob, **PLAIN}, content=f"X-OCCI-Location: {theirs}\n")
    assert client.get("/mixins/prod/", headers=bob).text == f"X-OCCI-Location: {theirs}\n"
    assert client.get("/mixins/prod/", headers=h).text == f"X-OCCI-Location: {mine}\n"
    gone = client.request("DELETE", "/-/", headers={**bob, **PLAIN}, content=tag)
    assert gone.status_code == 200
    assert "Category: prod;" in client.get(mine, headers=h).text
    assert client.get("/mixins/prod/", headers=h).text == f"X-OCCI-Location: {mine}\n"
