"""The storage REST API on a real GlusterFS volume, through a real ``xtreemgate serve``
whose storage backend is glusterfs (glusterd started by the session fixture), and the
end of the story: a volume a VO manager made through the API is registered into the VO,
a member's BES job stages in from it and out to it, and a member of another VO is
refused at CreateActivity with a NotAuthorized fault that says why.

A smaller subset than the POSIX module (tests/integration/test_storage_api.py): the HTTP
layer is the same code; what differs is the backend underneath."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import socket
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from backends.storage.glusterfs import GlusterStorageBackend
from tests import bes_messages as m
from tests.conftest import PASSWORD, basic
from tests.integration.storage_api_support import detail, registered
from tests.integration.storage_support import (
    PREFIX,
    gluster_backend,
    glusterd,  # noqa: F401 - the session fixture
)
from tests.integration.test_bes_endpoint import SOAPClient

KiB = 1024
NOBODY = pwd.getpwnam("nobody")
POOL = {"accounts": ["nobody"], "uid_start": NOBODY.pw_uid, "gid": NOBODY.pw_gid, "home": "/"}


class HTTP:
    """What SOAPClient needs of a client, over a real socket."""

    def __init__(self, url: str) -> None:
        self.url = url

    def post(self, path: str, *, content: bytes | str, headers: dict[str, str]) -> Any:
        return requests.post(self.url + path, data=content, headers=headers, timeout=60)


class World:
    def __init__(self, url: str, env: dict[str, str], storage: GlusterStorageBackend) -> None:
        self.url, self.env, self.storage = url, env, storage
        self.state = env["XTREEMGATE_STATE_DIR"]

    def call(self, who: str, method: str, path: str, **kwargs: Any) -> requests.Response:
        return requests.request(method, self.url + path, auth=(who, PASSWORD), timeout=60, **kwargs)

    def soap(self, who: str) -> SOAPClient:
        return SOAPClient(HTTP(self.url), basic(who))

    def create(self, who: str = "maria", quota: int | None = 256 * KiB) -> str:
        name = f"{PREFIX}{uuid.uuid4().hex[:8]}"
        body = {"name": name, "vo": "cms", "quota_bytes": quota}
        made = self.call(who, "POST", "/api/v1/volumes", json=body)
        assert made.status_code == 201, made.text
        return name


@pytest.fixture(scope="module")
def world(module_gateway_server, glusterd, tmp_path_factory) -> Iterator[World]:  # noqa: F811
    from gateway.auth.users import add_user
    from gateway.config import load_settings
    from gateway.runtime import open_database

    folder = tmp_path_factory.mktemp("storage-api-gl")
    # the job's account reaches the server's mounts through this folder (mode 755)
    mounts = Path(tempfile.mkdtemp(prefix="xg-api-mounts-"))
    mounts.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith("XTREEMGATE_")}
    env.update(
        XTREEMGATE_STATE_DIR=str(folder / "state"),
        XTREEMGATE_LOGGING__FORMAT="text",
        XTREEMGATE_LOGGING__ACCESS_LOG="false",
        XTREEMGATE_BACKENDS__STORAGE="glusterfs",
        XTREEMGATE_STORAGE__SERVER=socket.gethostname(),
        XTREEMGATE_STORAGE__BRICK_ROOT=str(glusterd.folder / "bricks"),
        XTREEMGATE_STORAGE__MOUNT_ROOT=str(mounts),
        XTREEMGATE_STORAGE__GLUSTER=glusterd.gluster,
        # cms members' jobs run as a leased pool account: here the one account "nobody"
        XTREEMGATE_VO__POOLS=json.dumps({"cms": POOL}),
    )
    url = module_gateway_server(env)
    db = open_database(load_settings(None, state_dir=env["XTREEMGATE_STATE_DIR"]))
    try:
        for user in ("root", "maria", "carol", "dave"):
            add_user(db, user, PASSWORD, site_admin=user == "root")
    finally:
        db.dispose()
    # the test's own view of the same GlusterFS (its own mounts); the session fixture
    # removes every xgtest- volume at the end, whoever made it
    storage = gluster_backend(glusterd, folder)
    here = World(url, env, storage)
    for vo, manager in (("cms", "maria"), ("atlas", "root")):
        made = here.call("root", "POST", "/api/v1/vos", json={"name": vo, "managers": [manager]})
        assert made.status_code == 201, made.text
    for vo, who, by in (("cms", "carol", "maria"), ("atlas", "dave", "root")):
        added = here.call(by, "POST", f"/api/v1/vos/{vo}/members", json={"principal": who})
        assert added.status_code == 201, added.text
    yield here
    left = [v.name for v in storage.list_volumes() if v.name.startswith(PREFIX)]
    storage.close()  # unmount the test's view first: a volume destroyed under a mount
    for name in left:  # leaves the mount dangling
        gone = here.call("root", "DELETE", f"/api/v1/volumes/{name}", params={"force": "true"})
        assert gone.status_code in (204, 404), gone.text
    shutil.rmtree(mounts, ignore_errors=True)


def test_a_glusterfs_volume_through_the_api(world: World) -> None:
    name = world.create()
    seen = world.call("carol", "GET", f"/api/v1/volumes/{name}").json()
    assert seen["system"] == "glusterfs" and seen["quota_bytes"] == 256 * KiB
    assert seen["url"] == f"glusterfs://{socket.gethostname()}/{name}/"
    assert name in [v.name for v in world.storage.list_volumes("cms")]  # glusterd has it

    base = f"/api/v1/volumes/{name}/files"
    data = bytes(range(256)) * 400  # 100 KiB
    assert world.call("carol", "PUT", f"{base}/in/data.bin", data=data).status_code == 201
    with world.storage.open_read(name, "in/data.bin") as stored:  # another mount sees it
        assert stored.read() == data
    got = world.call("carol", "GET", f"{base}/in/data.bin", headers={"Range": "bytes=1000-1009"})
    assert got.status_code == 206 and got.content == data[1000:1010]
    assert world.call("carol", "HEAD", f"{base}/in/data.bin").headers["Content-Length"] == str(
        len(data)
    )

    over = world.call("carol", "PUT", f"{base}/in/big.bin", data=b"b" * (200 * KiB))
    assert "quota" in detail(over, 507)
    assert [f.path for f in world.storage.list_files(name, "in")] == ["in/data.bin"]
    assert world.call("carol", "GET", f"/api/v1/volumes/{name}").json()["used_bytes"] == len(data)
    assert "dave is not an active member of VO cms" in detail(
        world.call("dave", "GET", f"{base}/in/data.bin"), 403
    )

    assert "force=true" in detail(world.call("maria", "DELETE", f"/api/v1/volumes/{name}"), 409)
    world.storage.close()  # the test's own mount goes before the volume does
    gone = world.call("maria", "DELETE", f"/api/v1/volumes/{name}", params={"force": "true"})
    assert gone.status_code == 204
    assert name not in [v.name for v in world.storage.list_volumes()]
    assert all(r[1] != name for r in registered(world.state, "cms"))


def staging(filename: str, *, source: str = "", target: str = "") -> str:
    where = f"<jsdl:Source><jsdl:URI>{source}</jsdl:URI></jsdl:Source>" if source else ""
    where += f"<jsdl:Target><jsdl:URI>{target}</jsdl:URI></jsdl:Target>" if target else ""
    return (
        f"<jsdl:DataStaging><jsdl:FileName>{filename}</jsdl:FileName>"
        f"<jsdl:CreationFlag>overwrite</jsdl:CreationFlag>{where}</jsdl:DataStaging>"
    )


def test_a_vo_members_job_stages_from_and_to_the_vo_volume_another_vo_is_refused(
    world: World,
) -> None:
    name = world.create()  # by the VO's manager, through the API: registered into cms
    assert ("volume", name, "maria") in registered(world.state, "cms")
    base = f"/api/v1/volumes/{name}/files"
    assert world.call("carol", "PUT", f"{base}/in/data.txt", data=b"from the volume\n").ok
    # the site lets the VO's pool account write the volume
    os.chown(world.storage.local_root(name), NOBODY.pw_uid, NOBODY.pw_gid)

    source = world.storage.url(name, "in/data.txt")
    target = world.storage.url(name, "results/out.txt")
    job = m.job(
        "/bin/cat",
        "in.txt",
        extra=staging("in.txt", source=source) + staging("stdout.txt", target=target),
    )
    carol = world.soap("carol")
    activity = carol.create(job)
    status = carol.wait(activity, "Finished", "Failed", timeout=60)
    assert status.get("state") == "Finished", status.findtext("xg:Reason", namespaces=m.NS)
    back = world.call("carol", "GET", f"{base}/results/out.txt")
    assert back.status_code == 200 and back.content == b"from the volume\n"

    fault = world.soap("dave").fault(m.create(job))
    assert m.fault_detail_names(fault) == ["NotAuthorizedFault"]
    reason = fault.findtext("faultstring")
    assert name in reason and "dave is not an active member of VO cms" in reason
    assert [f.path for f in world.storage.list_files(name, "results")] == ["results/out.txt"]
