"""The ETSI TS 103 142 OCCI interoperability sequence against a real gateway process:
discovery, create/read/update/delete, actions, links and mixin tagging — with ``curl`` in
text/occi and text/plain, and with plain HTTP requests in JSON.

The gateway runs as ``xtreemgate serve`` on loopback, its hypervisor libvirt's test driver
loaded from a node file with one image template (an os_tpl), its user made with the CLI.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import requests

from tests import services

INFRA = "http://schemas.ogf.org/occi/infrastructure#"
ACTIONS = "http://schemas.ogf.org/occi/infrastructure/compute/action#"
OS_TPL = "http://schemas.xtreemgate.org/occi/os_tpl#debian12_qcow2"
PASSWORD = "interop secret 42"
NODE = """<node>
  <cpu><nodes>1</nodes><sockets>1</sockets><cores>2</cores><threads>1</threads>
    <active>2</active><mhz>2000</mhz><model>x86_64</model></cpu>
  <memory>8388608</memory>
  <pool type='dir'>
    <name>default-pool</name>
    <uuid>dfe224cb-28fb-8dd0-c4b2-64eb3f0f4566</uuid>
    <capacity unit='GiB'>100</capacity><allocation unit='GiB'>0</allocation>
    <available unit='GiB'>100</available>
    <target><path>/default-pool</path></target>
    <volume type='file'><name>debian12.qcow2</name><capacity unit='MiB'>64</capacity>
      <target><path>/default-pool/debian12.qcow2</path></target></volume>
  </pool>
</node>
"""


@pytest.fixture
def gateway(gateway_server: Callable[..., str], tmp_path: Path) -> tuple[str, tuple[str, str]]:
    node = tmp_path / "node.xml"
    node.write_text(NODE)
    env = {
        **os.environ,
        "XTREEMGATE_STATE_DIR": str(tmp_path / "state"),
        "XTREEMGATE_VM__URIS": json.dumps([f"test://{node}"]),
        "XTREEMGATE_LOGGING__ACCESS_LOG": "false",
    }
    url = gateway_server(env)
    xtreemgate = str(Path(sys.executable).with_name("xtreemgate"))
    subprocess.run(
        [xtreemgate, "user", "add", "alice", "--password-stdin"],
        input=PASSWORD + "\n",
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return url, ("alice", PASSWORD)


class Curl:
    """``curl`` as an OCCI client: the status, the headers (lower-case names), the body."""

    def __init__(self, url: str, auth: tuple[str, str]) -> None:
        self.curl = services.require("curl", hint="apt-get install curl")["curl"]
        self.url = url
        self.auth = f"{auth[0]}:{auth[1]}"

    def __call__(
        self, method: str, path: str, *headers: str, body: str = ""
    ) -> tuple[int, dict[str, str], str]:
        args = [self.curl, "-sS", "-i", "-X", method, "-u", self.auth, self.url + path]
        for header in headers:
            args += ["-H", header]
        if body:
            args += ["--data-binary", body]
        out = subprocess.run(args, capture_output=True, text=True, check=True, timeout=30).stdout
        head, _, payload = out.replace("\r\n", "\n").partition("\n\n")
        lines = head.splitlines()
        status = int(lines[0].split()[1])
        parsed: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            key = name.strip().lower()
            parsed[key] = f"{parsed[key]}, {value.strip()}" if key in parsed else value.strip()
        return status, parsed, payload


def _attrs(fields: str) -> dict[str, str]:
    """X-OCCI-Attribute values from text/plain lines or a text/occi header value."""
    from gateway.occi.text import ParseError, parse_fields

    try:
        if "\n" in fields or fields.startswith("X-OCCI-Attribute"):
            pairs = [tuple(line.split(": ", 1)) for line in fields.splitlines() if ": " in line]
        else:
            pairs = [("X-OCCI-Attribute", fields)]
        return {k: str(v) for k, v in parse_fields(pairs).attributes.items()}
    except ParseError as exc:  # pragma: no cover - the assertion below says what came
        raise AssertionError(f"the server sent unreadable OCCI: {exc}\n{fields}") from exc


def test_etsi_sequence_with_curl_text_occi_and_text_plain(
    gateway: tuple[str, tuple[str, str]],
) -> None:
    url, auth = gateway
    curl = Curl(url, auth)

    # 1 discovery: the query interface in both text renderings, at both addresses
    status, headers, body = curl("GET", "/-/", "Accept: text/occi")
    assert status == 200 and body.strip() == "OK"
    assert headers["server"].startswith("xtreemgate/") and headers["server"].endswith("OCCI/1.2")
    assert f'compute; scheme="{INFRA}"; class="kind"' in headers["category"]
    status, _, body = curl("GET", "/.well-known/org/ogf/occi/-/", "Accept: text/plain")
    assert (
        status == 200
        and 'Category: debian12_qcow2; scheme="http://schemas.xtreemgate.org/occi/os_tpl#"' in body
    )

    # 2 create a compute in text/occi (headers), from the os_tpl and a resource_tpl
    status, headers, body = curl(
        "POST",
        "/compute/",
        "Content-Type: text/occi",
        "Accept: text/occi",
        f'Category: compute; scheme="{INFRA}"; class="kind", '
        'debian12_qcow2; scheme="http://schemas.xtreemgate.org/occi/os_tpl#"; class="mixin", '
        'small; scheme="http://schemas.xtreemgate.org/occi/resource_tpl#"; class="mixin"',
        'X-OCCI-Attribute: occi.core.title="etsi-vm", occi.compute.hostname="etsi.example.org"',
    )
    assert status == 201, body
    vm = headers["location"]
    assert vm.startswith("/compute/")

    # 3 read it in text/plain; list the collection
    status, _, body = curl("GET", vm, "Accept: text/plain")
    assert status == 200
    shown = _attrs(body)
    assert shown["occi.compute.state"] == "active" and shown["occi.core.title"] == "etsi-vm"
    status, _, body = curl("GET", "/compute/", "Accept: text/uri-list")
    assert status == 200 and body.split() == [vm]

    # 4 update: partial (POST) in text/plain
    status, _, body = curl(
        "POST",
        vm,
        "Content-Type: text/plain",
        "Accept: text/plain",
        body='X-OCCI-Attribute: occi.core.summary="interop run"\n',
    )
    assert status == 200 and _attrs(body)["occi.core.summary"] == "interop run"

    # 5 actions: stop (with its method), a conflicting stop, start, restart
    status, headers, _ = curl(
        "POST",
        f"{vm}?action=stop",
        "Content-Type: text/occi",
        "Accept: text/occi",
        f'Category: stop; scheme="{ACTIONS}"; class="action"',
        'X-OCCI-Attribute: method="graceful"',
    )
    assert status == 200 and _attrs(headers["x-occi-attribute"])["occi.compute.state"] == "inactive"
    status, _, body = curl("POST", f"{vm}?action=stop")
    assert status == 409 and "inactive" in body
    status, _, body = curl("POST", f"{vm}?action=start", "Accept: text/plain")
    assert status == 200 and _attrs(body)["occi.compute.state"] == "active"
    assert curl("POST", f"{vm}?action=restart")[0] == 200

    # 6 links: a network, a networkinterface to it; the compute shows the link
    status, headers, _ = curl(
        "POST",
        "/network/",
        "Content-Type: text/occi",
        f'Category: network; scheme="{INFRA}"; class="kind"',
        "X-OCCI-Attribute: occi.network.vlan=42",
    )
    assert status == 201
    net = headers["location"]
    status, headers, body = curl(
        "POST",
        "/networkinterface/",
        "Content-Type: text/plain",
        "Accept: text/plain",
        body=(
            f'Category: networkinterface; scheme="{INFRA}"; class="kind"\n'
            f'X-OCCI-Attribute: occi.core.source="{vm}"\n'
            f'X-OCCI-Attribute: occi.core.target="{net}"\n'
        ),
    )
    assert status == 201, body
    link = headers["location"]
    assert f"Link: <{net}>" in curl("GET", vm, "Accept: text/plain")[2]

    # 7 mixin tagging: define a user mixin, tag, list, untag, remove it
    tag = 'Category: interop; scheme="http://example.org/etsi#"; class="mixin"; location="/mixins/interop/"'
    assert curl("POST", "/-/", "Content-Type: text/occi", tag)[0] == 200
    assert (
        curl("POST", "/mixins/interop/", "Content-Type: text/occi", f"X-OCCI-Location: {vm}")[0]
        == 200
    )
    status, headers, _ = curl("GET", "/mixins/interop/", "Accept: text/occi")
    assert status == 200 and headers["x-occi-location"] == vm
    assert (
        curl("DELETE", "/mixins/interop/", "Content-Type: text/occi", f"X-OCCI-Location: {vm}")[0]
        == 200
    )
    assert curl("GET", "/mixins/interop/", "Accept: text/uri-list")[2].strip() == ""
    assert curl("DELETE", "/-/", "Content-Type: text/occi", tag.rsplit(";", 1)[0])[0] == 200

    # 8 delete: the link, the compute, the network
    assert curl("DELETE", link)[0] == 200
    assert curl("DELETE", vm)[0] == 200
    assert curl("GET", vm)[0] == 404
    assert curl("DELETE", net)[0] == 200

    # 9 refusals the standard's way
    assert curl("GET", "/-/", "X-OCCI-Version: 1.3")[0] == 501
    assert curl("GET", "/-/", "Accept: image/png")[0] == 406
    status, _, body = curl("POST", "/compute/", "Content-Type: text/occi", "Category: compute")
    assert status == 400 and "scheme" in body


def test_etsi_sequence_in_json_with_plain_http(gateway: tuple[str, tuple[str, str]]) -> None:
    from gateway.occi.jsonrender import schema

    url, auth = gateway
    validator = jsonschema.Draft7Validator(schema())
    http = requests.Session()
    http.auth = auth
    json_headers = {"Accept": "application/occi+json", "Content-Type": "application/occi+json"}

    def call(method: str, path: str, doc: Any = None, ok: int = 200) -> Any:
        response = http.request(
            method,
            url + path,
            headers=json_headers,
            data=json.dumps(doc) if doc is not None else None,
            timeout=30,
        )
        assert response.status_code == ok, response.text
        assert response.headers["Server"].endswith("OCCI/1.2")
        if response.headers["Content-Type"].startswith("application/occi+json"):
            body = response.json()
            validator.validate(body)  # every JSON the server sends is valid OCCI 1.2
            return body
        return response

    discovery = call("GET", "/-/")
    assert {k["term"] for k in discovery["kinds"]} >= {
        "entity",
        "resource",
        "link",
        "compute",
        "cluster",
    }
    created = call(
        "POST",
        "/compute/",
        {
            "kind": f"{INFRA}compute",
            "mixins": [OS_TPL],
            "attributes": {"occi.compute.cores": 2},
            "title": "json-vm",
        },
        ok=201,
    )
    vm = f"/compute/{created['id']}"
    assert created["attributes"]["occi.compute.cores"] == 2
    listing = call("GET", "/compute/")
    assert [r["id"] for r in listing["resources"]] == [created["id"]]
    updated = call("POST", vm, {"kind": f"{INFRA}compute", "summary": "updated in JSON"})
    assert updated["summary"] == "updated in JSON"
    stopped = call(
        "POST",
        f"{vm}?action=stop",
        {"action": f"{ACTIONS}stop", "attributes": {"method": "poweroff"}},
    )
    assert stopped["attributes"]["occi.compute.state"] == "inactive"
    call("POST", f"{vm}?action=stop", {"action": f"{ACTIONS}stop"}, ok=409)
    started = call("POST", f"{vm}?action=start", {"action": f"{ACTIONS}start"})
    assert started["attributes"]["occi.compute.state"] == "active"
    disk = call(
        "POST",
        "/storage/",
        {"kind": f"{INFRA}storage", "attributes": {"occi.storage.size": 1}},
        ok=201,
    )
    link = call(
        "POST",
        "/storagelink/",
        {
            "kind": f"{INFRA}storagelink",
            "source": {"location": vm},
            "target": {"location": f"/storage/{disk['id']}", "kind": f"{INFRA}storage"},
        },
        ok=201,
    )
    assert link["target"]["location"] == f"/storage/{disk['id']}"
    shown = call("GET", vm)
    assert [lk["id"] for lk in shown["links"]] == [link["id"]]
    tag = {"term": "jsontag", "scheme": "http://example.org/etsi#", "location": "/mixins/jsontag/"}
    call("POST", "/-/", {"mixins": [tag]})
    call("POST", "/mixins/jsontag/", {"locations": [vm]})
    assert [r["id"] for r in call("GET", "/mixins/jsontag/")["resources"]] == [created["id"]]
    call("PUT", "/mixins/jsontag/", {"locations": []})
    assert call("GET", "/mixins/jsontag/")["resources"] == []
    call("DELETE", f"/storagelink/{link['id']}")
    call("DELETE", vm)
    call("DELETE", f"/storage/{disk['id']}")
    assert call("GET", "/compute/")["resources"] == []
    bad = http.post(url + "/compute/", headers=json_headers, data='{"kind": 1}', timeout=30)
    assert bad.status_code == 400 and "kind" in bad.text
