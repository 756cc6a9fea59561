"""The storage REST API (openapi/storage.yaml) against a real ``xtreemgate serve``
process on loopback with POSIX volumes: who may do what by VO role, volume lifecycle
with VO registration, files streamed both ways, Range, quota overruns, broken uploads and
paths that try to leave the volume. Requests go over real sockets (``requests``, and
``http.client`` where a request must reach the server unnormalised or half sent).

Cast: root (site admin); VO cms with maria (manager, not a member), sam (member with the
role storage-admin), carol (plain member); VO atlas with dave (member)."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import socket
import subprocess
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests

from gateway.storage.access import STORAGE_ADMIN_ROLE
from tests import services
from tests.conftest import PASSWORD
from tests.integration.storage_api_support import detail, registered
from tests.integration.test_cli import run

MiB = 1024 * 1024
USERS = ("root", "maria", "sam", "carol", "dave")


class Gateway:
    """The served gateway and how each of the cast reaches it."""

    def __init__(self, url: str, env: dict[str, str]) -> None:
        self.url, self.env = url, env
        self.state = Path(env["XTREEMGATE_STATE_DIR"])
        self.port = urllib.parse.urlsplit(url).port

    def call(self, who: str, method: str, path: str, **kwargs: Any) -> requests.Response:
        return requests.request(method, self.url + path, auth=(who, PASSWORD), timeout=60, **kwargs)

    def raw(self, who: str, method: str, path: str, headers: dict[str, str] | None = None):
        """One request sent exactly as written (no dot-segment removal, no quoting)."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        connection.putrequest(method, path, skip_accept_encoding=True)
        token = requests.auth._basic_auth_str(who, PASSWORD)
        for name, value in {"Authorization": token, **(headers or {})}.items():
            connection.putheader(name, value)
        connection.endheaders()
        response = connection.getresponse()
        body = response.read()
        connection.close()
        return response.status, body, response.getheader("Location", "")

    def volume_dir(self, vo: str, name: str) -> Path:
        return self.state / "volumes" / vo / name

    def pid(self) -> int:
        """The serving process (server.workers = 1: uvicorn serves in it)."""
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"serve" in argv and str(self.port).encode() in argv:
                return int(entry.name)
        raise AssertionError(f"no process serves port {self.port}")


@pytest.fixture(scope="module")
def gw(module_gateway_server, tmp_path_factory) -> Gateway:
    from gateway.auth.users import add_user
    from gateway.config import load_settings
    from gateway.runtime import open_database

    state = tmp_path_factory.mktemp("storage-api") / "state"
    env = {k: v for k, v in os.environ.items() if not k.startswith("XTREEMGATE_")}
    env.update(
        XTREEMGATE_STATE_DIR=str(state),
        XTREEMGATE_LOGGING__FORMAT="text",
        XTREEMGATE_LOGGING__ACCESS_LOG="false",
    )
    url = module_gateway_server(env)
    db = open_database(load_settings(None, state_dir=str(state)))
    try:
        for user in USERS:
            add_user(db, user, PASSWORD, site_admin=user == "root")
    finally:
        db.dispose()
    gateway = Gateway(url, env)
    for vo, manager in (("cms", "maria"), ("atlas", "root")):
        made = gateway.call("root", "POST", "/api/v1/vos", json={"name": vo, "managers": [manager]})
        assert made.status_code == 201, made.text
    role = gateway.call("maria", "POST", "/api/v1/vos/cms/roles", json={"name": STORAGE_ADMIN_ROLE})
    assert role.status_code == 201, role.text
    for vo, who, roles in (
        ("cms", "sam", [STORAGE_ADMIN_ROLE]),
        ("cms", "carol", []),
        ("atlas", "dave", []),
    ):
        manager = "maria" if vo == "cms" else "root"
        body = {"principal": who, "roles": roles}
        added = gateway.call(manager, "POST", f"/api/v1/vos/{vo}/members", json=body)
        assert added.status_code == 201, added.text
    return gateway


@pytest.fixture
def volume(gw: Gateway) -> Iterator[str]:
    """A fresh cms volume of 4 MiB made by its manager; force-deleted afterwards."""
    name = f"v{uuid.uuid4().hex[:10]}"
    made = gw.call(
        "maria", "POST", "/api/v1/volumes", json={"name": name, "vo": "cms", "quota_bytes": 4 * MiB}
    )
    assert made.status_code == 201, made.text
    yield name
    gw.call("root", "DELETE", f"/api/v1/volumes/{name}", params={"force": "true"})


def leftovers(folder: Path) -> list[str]:
    """Every entry under ``folder`` (temp files of transfers included)."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


# -- volumes -----------------------------------------------------------------------------
def test_a_vo_manager_creates_resizes_and_deletes_a_volume_registered_into_the_vo(
    gw: Gateway,
) -> None:
    name = f"life{uuid.uuid4().hex[:8]}"
    made = gw.call(
        "maria", "POST", "/api/v1/volumes", json={"name": name, "vo": "cms", "quota_bytes": 1000}
    )
    assert made.status_code == 201, made.text
    assert made.headers["Location"] == f"/api/v1/volumes/{name}"
    body = made.json()
    assert body == {
        "name": name,
        "vo": "cms",
        "system": "posix",
        "url": f"file://{gw.volume_dir('cms', name)}",
        "quota_bytes": 1000,
        "used_bytes": 0,
        "owner": "maria",
    }
    assert ("volume", name, "maria") in registered(str(gw.state), "cms")
    listed = gw.call("root", "GET", "/api/v1/vos/cms/resources").json()
    assert {"vo": "cms", "kind": "volume", "id": name, "owner": "maria"}.items() <= next(
        r for r in listed if r["id"] == name
    ).items()

    assert (
        gw.call("carol", "PUT", f"/api/v1/volumes/{name}/files/a.txt", data=b"x" * 600).status_code
        == 201
    )
    seen = gw.call("carol", "GET", f"/api/v1/volumes/{name}").json()
    assert seen["used_bytes"] == 600 and seen["quota_bytes"] == 1000

    assert "600 bytes" in detail(
        gw.call("maria", "PATCH", f"/api/v1/volumes/{name}", json={"quota_bytes": 500}), 409
    )
    grown = gw.call("maria", "PATCH", f"/api/v1/volumes/{name}", json={"quota_bytes": 2000})
    assert grown.status_code == 200 and grown.json()["quota_bytes"] == 2000
    lifted = gw.call("maria", "PATCH", f"/api/v1/volumes/{name}", json={"quota_bytes": None})
    assert lifted.json()["quota_bytes"] is None

    refused = detail(gw.call("maria", "DELETE", f"/api/v1/volumes/{name}"), 409)
    assert "holds 1 entries" in refused and "force=true" in refused
    assert gw.volume_dir("cms", name).joinpath("a.txt").exists()  # nothing was lost
    assert (
        gw.call("maria", "DELETE", f"/api/v1/volumes/{name}", params={"force": "true"}).status_code
        == 204
    )
    assert not gw.volume_dir("cms", name).exists()
    assert ("volume", name, "maria") not in registered(str(gw.state), "cms")
    assert f"no volume '{name}'" in detail(gw.call("maria", "GET", f"/api/v1/volumes/{name}"), 404)


def test_an_empty_volume_is_deleted_without_force(gw: Gateway, volume: str) -> None:
    assert gw.call("sam", "DELETE", f"/api/v1/volumes/{volume}").status_code == 204
    assert not gw.volume_dir("cms", volume).exists()


def test_who_may_manage_volumes_follows_the_vo_role(gw: Gateway, volume: str) -> None:
    def create(who: str, vo: str, **extra: Any) -> requests.Response:
        name = f"r{uuid.uuid4().hex[:10]}"
        return gw.call(who, "POST", "/api/v1/volumes", json={"name": name, "vo": vo, **extra})

    refusal = detail(create("carol", "cms"), 403)
    assert "carol may not create volumes of VO cms" in refusal and STORAGE_ADMIN_ROLE in refusal
    assert "dave may not create" in detail(create("dave", "cms"), 403)
    assert "maria may not create volumes of VO atlas" in detail(create("maria", "atlas"), 403)
    by_role = create("sam", "cms")
    assert by_role.status_code == 201 and by_role.json()["owner"] == "sam"
    by_admin = create("root", "atlas")
    assert by_admin.status_code == 201 and by_admin.json()["vo"] == "atlas"
    for made in (by_role, by_admin):
        gw.call("root", "DELETE", f"/api/v1/volumes/{made.json()['name']}")

    # plain members and strangers may neither resize nor delete; the role holder may
    for who, status in (("carol", 403), ("dave", 403)):
        detail(
            gw.call(who, "PATCH", f"/api/v1/volumes/{volume}", json={"quota_bytes": 10 * MiB}),
            status,
        )
        detail(gw.call(who, "DELETE", f"/api/v1/volumes/{volume}"), status)
    assert (
        gw.call(
            "sam", "PATCH", f"/api/v1/volumes/{volume}", json={"quota_bytes": 5 * MiB}
        ).status_code
        == 200
    )

    # bad input: the standard's status with a message, nothing made
    assert "no VO 'nope'" in detail(create("root", "nope"), 400)
    assert "storage system is 'posix'" in detail(create("root", "cms", system="glusterfs"), 400)
    detail(gw.call("root", "POST", "/api/v1/volumes", json={"name": "../x", "vo": "cms"}), 400)
    detail(
        gw.call(
            "root", "POST", "/api/v1/volumes", json={"name": "x", "vo": "cms", "quota_bytes": 0}
        ),
        400,
    )
    assert "exists already" in detail(
        gw.call("root", "POST", "/api/v1/volumes", json={"name": volume, "vo": "cms"}), 409
    )
    assert gw.call("root", "GET", f"/api/v1/volumes/{volume}").json()["owner"] == "maria"


def test_ownership_of_a_volume_comes_from_the_storage_backend(gw: Gateway, volume: str) -> None:
    """#16.14: a volume withdrawn from its VO cannot be taken over by another VO's member
    registering its name, and a name that names no volume cannot be squatted."""
    base = f"/api/v1/volumes/{volume}/files/secret.txt"
    assert gw.call("carol", "PUT", base, data=b"cms only").status_code == 201
    withdrawn = gw.call("maria", "DELETE", f"/api/v1/vos/cms/resources/volume/{volume}")
    assert withdrawn.status_code == 204, withdrawn.text

    def register(who: str, vo: str, name: str) -> requests.Response:
        body = {"kind": "volume", "id": name}
        return gw.call(who, "POST", f"/api/v1/vos/{vo}/resources", json=body)

    refused = detail(register("dave", "atlas", volume), 403)
    assert "belongs to VO cms, not atlas" in refused
    assert "dave may not create volumes of VO cms" in detail(register("dave", "cms", volume), 403)
    assert "carol may not create" in detail(register("carol", "cms", volume), 403)
    assert ("volume", volume, "dave") not in registered(str(gw.state), "atlas")
    assert ("volume", volume, "dave") not in registered(str(gw.state), "cms")
    detail(gw.call("dave", "GET", base), 403)
    detail(gw.call("dave", "PUT", base, data=b"taken"), 403)
    assert gw.volume_dir("cms", volume).joinpath("secret.txt").read_bytes() == b"cms only"
    # the VO's manager offers it again; its members read it as before
    assert register("maria", "cms", volume).status_code == 201
    assert gw.call("carol", "GET", base).content == b"cms only"

    # no squatting: a name that names no volume is not registered, and stays free
    squat = f"sq{uuid.uuid4().hex[:8]}"
    assert f"no volume '{squat}'" in detail(register("dave", "atlas", squat), 404)
    assert squat not in {r[1] for r in registered(str(gw.state), "atlas")}
    made = gw.call("root", "POST", "/api/v1/volumes", json={"name": squat, "vo": "cms"})
    assert made.status_code == 201, made.text
    gw.call("root", "DELETE", f"/api/v1/volumes/{squat}")


def test_each_sees_the_volumes_of_their_vos(gw: Gateway, volume: str) -> None:
    def names(who: str, **params: str) -> list[str]:
        found = gw.call(who, "GET", "/api/v1/volumes", params=params)
        assert found.status_code == 200, found.text
        return [v["name"] for v in found.json()]

    assert volume in names("carol") and volume in names("carol", vo="cms")
    assert volume not in names("carol", vo="atlas")
    assert volume not in names("dave")
    assert volume in names("root")
    assert "dave is not an active member of VO cms" in detail(
        gw.call("dave", "GET", f"/api/v1/volumes/{volume}"), 403
    )
    detail(requests.get(f"{gw.url}/api/v1/volumes", timeout=10), 401)
    served = requests.get(f"{gw.url}/openapi.json", timeout=10).json()  # joined documents
    assert {"/api/v1/volumes", "/api/v1/volumes/{volume}/files/{path}"} <= set(served["paths"])


# -- files -------------------------------------------------------------------------------
def test_members_read_and_write_files_other_vos_are_refused(gw: Gateway, volume: str) -> None:
    base = f"/api/v1/volumes/{volume}/files"
    made = gw.call("carol", "PUT", f"{base}/run1/in.dat", data=b"hello volume")
    assert made.status_code == 201, made.text
    assert made.headers["Location"] == f"{base}/run1/in.dat"
    assert made.json()["path"] == "run1/in.dat" and made.json()["size"] == 12
    assert made.json()["url"] == f"file://{gw.volume_dir('cms', volume)}/run1/in.dat"

    got = gw.call("sam", "GET", f"{base}/run1/in.dat")
    assert got.status_code == 200 and got.content == b"hello volume"
    assert got.headers["content-type"] == "application/octet-stream"
    head = gw.call("carol", "HEAD", f"{base}/run1/in.dat")
    assert head.status_code == 200 and head.content == b""
    assert head.headers["Content-Length"] == "12" and head.headers["X-Entry-Type"] == "file"
    assert gw.call("carol", "HEAD", f"{base}/run1").headers["X-Entry-Type"] == "folder"
    assert gw.call("carol", "HEAD", f"{base}/nothing").status_code == 404
    assert requests.head(f"{gw.url}{base}/run1/in.dat", timeout=10).status_code == 401
    assert requests.get(f"{gw.url}{base}/run1/in.dat", timeout=10).status_code == 401

    root = gw.call("carol", "GET", base).json()
    assert [(e["path"], e["type"]) for e in root] == [("run1", "folder")]
    folder = gw.call("carol", "GET", f"{base}/run1")
    assert folder.headers["content-type"] == "application/json"
    assert [(e["path"], e["type"], e["size"]) for e in folder.json()] == [
        ("run1/in.dat", "file", 12)
    ]

    for method, kwargs in (("GET", {}), ("HEAD", {}), ("PUT", {"data": b"x"}), ("DELETE", {})):
        refused = gw.call("dave", method, f"{base}/run1/in.dat", **kwargs)
        assert refused.status_code == 403, (method, refused.text)
        if method != "HEAD":
            assert "dave is not an active member of VO cms" in refused.json()["detail"]
    assert gw.call("carol", "GET", f"{base}/run1/in.dat").content == b"hello volume"

    assert "not empty" in detail(gw.call("carol", "DELETE", f"{base}/run1"), 409)
    assert gw.call("carol", "DELETE", f"{base}/run1/in.dat").status_code == 204
    assert gw.call("carol", "DELETE", f"{base}/run1/in.dat").status_code == 404
    gw.call("carol", "PUT", f"{base}/run2/a/b.dat", data=b"1")
    assert (
        gw.call("carol", "DELETE", f"{base}/run2", params={"recursive": "true"}).status_code == 204
    )
    assert leftovers(gw.volume_dir("cms", volume)) == ["run1"]


def test_replace_keep_and_length_required(gw: Gateway, volume: str) -> None:
    path = f"/api/v1/volumes/{volume}/files/doc.txt"
    assert gw.call("carol", "PUT", path, data=b"one").status_code == 201
    again = gw.call("carol", "PUT", path, data=b"second")
    assert again.status_code == 200 and again.json()["size"] == 6
    kept = gw.call("carol", "PUT", path, data=b"third", headers={"If-None-Match": "*"})
    assert "exists" in detail(kept, 412)
    assert gw.call("carol", "GET", path).content == b"second"

    def chunks() -> Iterator[bytes]:
        yield b"no length"

    assert "Content-Length" in detail(gw.call("carol", "PUT", path, data=chunks()), 411)
    assert gw.call("carol", "GET", path).content == b"second"
    gw.call("carol", "PUT", f"/api/v1/volumes/{volume}/files/dir/f", data=b"x")
    onto_folder = gw.call("carol", "PUT", f"/api/v1/volumes/{volume}/files/dir", data=b"x")
    assert "it is a folder" in detail(onto_folder, 400)
    through_a_file = f"/api/v1/volumes/{volume}/files/doc.txt/inner"
    assert "a part of the path is a file" in detail(
        gw.call("carol", "PUT", through_a_file, data=b"x"), 409
    )
    for method in ("GET", "DELETE"):
        assert "is a file" in detail(gw.call("carol", method, through_a_file), 404)
    assert gw.call("carol", "HEAD", through_a_file).status_code == 404
    as_text = gw.call("carol", "PUT", path, data=b"t", headers={"Content-Type": "text/plain"})
    assert "application/octet-stream" in detail(as_text, 415)
    assert gw.call("carol", "GET", path).content == b"second"


def test_range_requests(gw: Gateway, volume: str) -> None:
    path = f"/api/v1/volumes/{volume}/files/digits"
    gw.call("carol", "PUT", path, data=b"0123456789")

    def ranged(spec: str) -> requests.Response:
        return gw.call("carol", "GET", path, headers={"Range": spec})

    part = ranged("bytes=2-4")
    assert part.status_code == 206 and part.content == b"234"
    assert part.headers["Content-Range"] == "bytes 2-4/10"
    assert ranged("bytes=7-").content == b"789"
    assert ranged("bytes=-3").content == b"789"
    assert ranged("bytes=8-100").headers["Content-Range"] == "bytes 8-9/10"
    whole = ranged("bytes=0-1,4-5")  # several ranges: the whole file (RFC 9110 allows it)
    assert whole.status_code == 200 and whole.content == b"0123456789"
    assert ranged("bytes=5-2").status_code == 200  # invalid: ignored
    beyond = ranged("bytes=10-")
    assert "10 bytes" in detail(beyond, 416)
    assert beyond.headers["Content-Range"] == "bytes */10"


def test_a_quota_overrun_is_507_and_leaves_nothing(gw: Gateway, volume: str) -> None:
    base = f"/api/v1/volumes/{volume}/files"
    assert gw.call("carol", "PUT", f"{base}/keep.bin", data=b"k" * (3 * MiB)).status_code == 201
    too_big = gw.call("carol", "PUT", f"{base}/more.bin", data=b"m" * (2 * MiB))
    message = detail(too_big, 507)
    assert "quota" in message and "more.bin" in message and str(MiB) in message
    assert leftovers(gw.volume_dir("cms", volume)) == ["keep.bin"]
    assert gw.call("carol", "GET", f"/api/v1/volumes/{volume}").json()["used_bytes"] == 3 * MiB
    # replacing a file counts only the difference
    assert gw.call("carol", "PUT", f"{base}/keep.bin", data=b"r" * (4 * MiB)).status_code == 200


def test_an_upload_larger_than_the_free_space_is_507_before_the_first_byte(gw: Gateway) -> None:
    """#16.16: on a volume without quota the file system's free space (statvfs) limits."""
    name = f"u{uuid.uuid4().hex[:10]}"
    made = gw.call("maria", "POST", "/api/v1/volumes", json={"name": name, "vo": "cms"})
    assert made.status_code == 201 and made.json()["quota_bytes"] is None, made.text
    try:
        path = f"/api/v1/volumes/{name}/files/huge.bin"
        headers = {"Content-Length": str(10**18), "Content-Type": "application/octet-stream"}
        status, body, _ = gw.raw("carol", "PUT", path, headers)  # no byte of the body sent
        assert status == 507, body
        problem = json.loads(body)
        assert "bytes free on the volume's file system" in problem["detail"]
        assert leftovers(gw.volume_dir("cms", name)) == []
        small = gw.call("carol", "PUT", path, data=b"fits")
        assert small.status_code == 201, small.text
    finally:
        gw.call("root", "DELETE", f"/api/v1/volumes/{name}", params={"force": "true"})


def test_concurrent_uploads_never_overrun_the_quota(gw: Gateway, volume: str) -> None:
    """Six uploads of 1 MiB at once into a 4 MiB volume, each fitting alone: the declared
    lengths are reserved in the quota ledger, so exactly four are stored and two get 507."""
    base = f"/api/v1/volumes/{volume}/files"

    def upload(i: int) -> int:
        return gw.call("carol", "PUT", f"{base}/part{i}.bin", data=bytes([i]) * MiB).status_code

    with ThreadPoolExecutor(max_workers=6) as pool:
        statuses = sorted(pool.map(upload, range(6)))
    assert statuses == [201] * 4 + [507] * 2
    stored = leftovers(gw.volume_dir("cms", volume))
    assert len(stored) == 4 and all(name.startswith("part") for name in stored), stored
    assert gw.call("carol", "GET", f"/api/v1/volumes/{volume}").json()["used_bytes"] == 4 * MiB


def test_a_broken_upload_leaves_no_partial_file(gw: Gateway, volume: str) -> None:
    connection = socket.create_connection(("127.0.0.1", gw.port), timeout=10)
    token = requests.auth._basic_auth_str("carol", PASSWORD)
    connection.sendall(
        (
            f"PUT /api/v1/volumes/{volume}/files/half.bin HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: {token}\r\nContent-Type: application/octet-stream\r\n"
            f"Content-Length: {3 * MiB}\r\n\r\n"
        ).encode()
        + b"h" * MiB
    )
    time.sleep(0.5)  # the server is inside the upload, writing the temp file
    assert any(".xg-part-" in n for n in leftovers(gw.volume_dir("cms", volume)))
    connection.close()
    deadline = time.monotonic() + 10
    while leftovers(gw.volume_dir("cms", volume)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert leftovers(gw.volume_dir("cms", volume)) == []
    assert gw.call("carol", "GET", f"/api/v1/volumes/{volume}").json()["used_bytes"] == 0


def test_paths_cannot_leave_the_volume(gw: Gateway, volume: str) -> None:
    base = f"/api/v1/volumes/{volume}/files"
    gw.call("carol", "PUT", f"{base}/inside/ok.txt", data=b"ok")
    for raw in (f"{base}/inside/../../../../etc/passwd", f"{base}/inside/%2e%2e/%2E%2E/x"):
        status, body, _ = gw.raw("carol", "GET", raw)
        assert status == 400 and b"must not contain '..'" in body, (raw, status, body)
    # an absolute path never names the host's file: the router refuses '//' (a 308, from
    # connexion's routing), and the path without it is the volume's etc/passwd
    status, body, _ = gw.raw("carol", "GET", f"{base}//etc/passwd")
    assert status == 308 and b"root:" not in body, (status, body)
    assert "no file 'etc/passwd'" in detail(gw.call("carol", "GET", f"{base}/etc/passwd"), 404)

    outside = gw.state / f"outside-{volume}"
    outside.mkdir()
    (outside / "secret").write_bytes(b"not yours")
    root = gw.volume_dir("cms", volume)
    (root / "escape").symlink_to(outside)
    (root / "secret-link").symlink_to(outside / "secret")
    for method, path, kwargs in (
        ("GET", "escape/secret", {}),
        ("GET", "secret-link", {}),
        ("HEAD", "escape/secret", {}),
        ("PUT", "escape/planted", {"data": b"planted"}),
        ("DELETE", "escape/secret", {}),
    ):
        refused = gw.call("carol", method, f"{base}/{path}", **kwargs)
        assert refused.status_code == 400, (method, path, refused.status_code, refused.text)
        if method != "HEAD":
            assert "leads outside volume" in refused.json()["detail"]
    assert sorted(p.name for p in outside.iterdir()) == ["secret"]
    assert (outside / "secret").read_bytes() == b"not yours"


def test_curl_as_a_client(gw: Gateway, volume: str, tmp_path: Path) -> None:
    """The README's commands: curl -T uploads (PUT, no Content-Type), -r reads a range."""
    curl = services.require("curl", hint="apt-get install curl")["curl"]
    source = tmp_path / "run1.tar"
    source.write_bytes(os.urandom(3 * MiB + 7))
    url = f"{gw.url}/api/v1/volumes/{volume}/files/in/run1.tar"

    def curl_as(who: str, *args: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [curl, "-sS", "-u", f"{who}:{PASSWORD}", *args],
            capture_output=True,
            timeout=60,
            check=False,
        )

    sent = curl_as("carol", "-f", "-T", str(source), url)
    assert sent.returncode == 0, sent.stderr
    assert json.loads(sent.stdout)["size"] == source.stat().st_size
    part = curl_as("carol", "-f", "-r", "1000-1999", url)
    assert part.returncode == 0 and part.stdout == source.read_bytes()[1000:2000]
    refused = curl_as("dave", "-o", "/dev/null", "-w", "%{http_code}", url)
    assert refused.stdout == b"403"


# -- streams and memory ------------------------------------------------------------------
def _peak_rss(pid: int) -> int:
    """VmHWM, the process's peak resident set so far, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def test_large_files_stream_through_with_bounded_server_memory(gw: Gateway) -> None:
    """A 96 MiB upload and download through the served gateway: the server's *peak* RSS
    (VmHWM, which never goes down) grows by far less than the file. What this proves:
    the server never held the file whole in memory at any moment during either transfer
    (a body read whole would raise the peak by at least its size). It does not prove a
    constant bound for every size; the chunk size (1 MiB) is what the code promises."""
    size = 96 * MiB
    name = f"big{uuid.uuid4().hex[:8]}"
    made = gw.call("root", "POST", "/api/v1/volumes", json={"name": name, "vo": "cms"})
    assert made.status_code == 201
    pid = gw.pid()
    block = os.urandom(MiB)
    digest = hashlib.sha256()

    class Body:
        """Generated as it is sent (the client holds 1 MiB), with a known length."""

        def __len__(self) -> int:
            return size

        def __iter__(self) -> Iterator[bytes]:
            for i in range(size // MiB):
                chunk = block[i:] + block[:i]
                digest.update(chunk)
                yield chunk

    try:
        gw.call("carol", "GET", "/api/v1/volumes")  # warm: first requests import modules
        before = _peak_rss(pid)
        up = gw.call(
            "carol",
            "PUT",
            f"/api/v1/volumes/{name}/files/big.bin",
            data=Body(),
        )
        assert up.status_code == 201, up.text
        after_upload = _peak_rss(pid)
        received = hashlib.sha256()
        count = 0
        with gw.call("carol", "GET", f"/api/v1/volumes/{name}/files/big.bin", stream=True) as down:
            assert down.status_code == 200 and down.headers["Content-Length"] == str(size)
            for piece in down.iter_content(256 * 1024):
                received.update(piece)
                count += len(piece)
        after_download = _peak_rss(pid)
    finally:
        gw.call("root", "DELETE", f"/api/v1/volumes/{name}", params={"force": "true"})
    assert count == size and received.hexdigest() == digest.hexdigest()
    grew_up, grew_down = after_upload - before, after_download - after_upload
    assert grew_up < size // 4, f"peak RSS grew {grew_up >> 20} MiB during a 96 MiB upload"
    assert grew_down < size // 4, f"peak RSS grew {grew_down >> 20} MiB during the download"


# -- the operator's CLI ------------------------------------------------------------------
def test_cli_volume_create_registers_the_volume_into_its_vo(gw: Gateway) -> None:
    name = f"cli{uuid.uuid4().hex[:8]}"
    made = run(["volume", "create", name, "--vo", "cms", "--quota", "5000"], gw.env)
    assert made.stdout.split()[:4] == [name, "cms", "0", "5000"]
    assert ("volume", name, "maria") in registered(str(gw.state), "cms")  # the VO's manager
    assert (
        gw.call("carol", "PUT", f"/api/v1/volumes/{name}/files/x", data=b"via API").status_code
        == 201
    )
    assert gw.call("root", "GET", f"/api/v1/volumes/{name}").json()["owner"] == "maria"

    other = f"cli{uuid.uuid4().hex[:8]}"
    run(["volume", "create", other, "--vo", "atlas", "--owner", "dave"], gw.env)
    assert ("volume", other, "dave") in registered(str(gw.state), "atlas")
    unknown = run(
        ["volume", "create", f"cli{uuid.uuid4().hex[:8]}", "--vo", "nope"], gw.env, check=False
    )
    assert unknown.returncode == 1 and "no VO 'nope'" in unknown.stderr
    assert gw.call("root", "POST", "/api/v1/vos", json={"name": "lonely"}).status_code == 201
    orphan = f"cli{uuid.uuid4().hex[:8]}"
    nobody_to_own = run(["volume", "create", orphan, "--vo", "lonely"], gw.env, check=False)
    assert nobody_to_own.returncode == 1 and "--owner" in nobody_to_own.stderr
    # refused before anything was made
    assert orphan not in [v["name"] for v in gw.call("root", "GET", "/api/v1/volumes").json()]

    for vo, volume_name in (("cms", name), ("atlas", other)):
        run(["volume", "delete", volume_name], gw.env)
        assert all(r[1] != volume_name for r in registered(str(gw.state), vo))
