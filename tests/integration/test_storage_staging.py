"""BES jobs staging in from and out to a real GlusterFS volume, through the app's HTTP
with real SOAP: the volume URL is resolved and authorised at CreateActivity, the
transfer runs as the job's account on the FUSE mount, and a failed transfer leaves no
partial file and fails the activity with the reason."""

from __future__ import annotations

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

from backends.store import migrate
from tests import bes_messages as m
from tests.conftest import PASSWORD, basic
from tests.integration.storage_support import (
    SESSION,
    glusterd,  # noqa: F401 - the session fixture
)
from tests.integration.test_bes_endpoint import SOAPClient


@pytest.fixture
def gl_app(make_settings, glusterd, tmp_path) -> Iterator[Any]:  # noqa: F811
    from gateway.app import create_app

    # the job's account reaches the mounts through this folder (pytest's are root-only)
    mounts = Path(tempfile.mkdtemp(prefix="xg-mounts-"))
    mounts.chmod(0o755)
    settings = make_settings(
        backends={"storage": "glusterfs"},
        storage={
            "server": socket.gethostname(),
            "brick_root": str(glusterd.folder / "bricks"),
            "mount_root": str(mounts),
            "gluster": glusterd.gluster,
        },
    )
    migrate.upgrade(settings.database_url)
    app = create_app(settings, configure_logs=False)
    runtime = app.app.extensions["xtreemgate"]
    storage = runtime.backends["storage"]
    glusterd.made.append(storage)
    yield app
    for volume in storage.list_volumes():
        if volume.name.startswith(SESSION):
            storage.delete_volume(volume.name)
    runtime.close()
    shutil.rmtree(mounts, ignore_errors=True)


@pytest.fixture
def world(gl_app) -> SimpleWorld:
    from starlette.testclient import TestClient

    from gateway.auth.users import add_user

    runtime = gl_app.app.extensions["xtreemgate"]
    for user in ("alice", "bob"):
        add_user(runtime.db, user, PASSWORD)
    storage = runtime.backends["storage"]
    name = f"{SESSION}{uuid.uuid4().hex[:8]}"
    storage.create_volume(name, "physics", 64 * 1024)
    vo = runtime.backends["vo"]
    vo.create_vo("physics", creator="alice")
    vo.register_resource("physics", "volume", name, "alice")
    # the site lets the job's account write the volume (jobs run as execution.default_account)
    nobody = pwd.getpwnam(runtime.settings.execution.default_account)
    os.chown(storage.local_root(name), nobody.pw_uid, nobody.pw_gid)
    with storage.open_write(name, "in/data.txt") as out:
        out.write(b"from the volume\n")
    client = TestClient(gl_app)
    return SimpleWorld(runtime, storage, name, SOAPClient(client, basic("alice")), client)


class SimpleWorld:
    def __init__(self, runtime, storage, volume, soap, client) -> None:
        self.runtime, self.storage, self.volume = runtime, storage, volume
        self.soap, self.client = soap, client

    def url(self, path: str) -> str:
        return self.storage.url(self.volume, path)


def staging(filename: str, *, source: str = "", target: str = "") -> str:
    where = f"<jsdl:Source><jsdl:URI>{source}</jsdl:URI></jsdl:Source>" if source else ""
    where += f"<jsdl:Target><jsdl:URI>{target}</jsdl:URI></jsdl:Target>" if target else ""
    return (
        f"<jsdl:DataStaging><jsdl:FileName>{filename}</jsdl:FileName>"
        f"<jsdl:CreationFlag>overwrite</jsdl:CreationFlag>{where}</jsdl:DataStaging>"
    )


def names_on(world: SimpleWorld, folder: str) -> list[str]:
    return sorted(os.listdir(world.storage.local_root(world.volume) / folder))


def test_a_job_stages_in_from_and_out_to_a_glusterfs_volume(world: SimpleWorld) -> None:
    extra = staging("in.txt", source=world.url("in/data.txt")) + staging(
        "stdout.txt", target=world.url("results/out.txt")
    )
    activity = world.soap.create(m.job("/bin/cat", "in.txt", extra=extra))
    status = world.soap.wait(activity, "Finished", "Failed", timeout=30)
    assert status.get("state") == "Finished", status.findtext("xg:Reason", namespaces=m.NS)
    with world.storage.open_read(world.volume, "results/out.txt") as data:
        assert data.read() == b"from the volume\n"
    owner = world.storage.stat(world.volume, "results/out.txt")
    assert owner.size == 16
    uid = os.stat(world.storage.local_root(world.volume) / "results/out.txt").st_uid
    assert uid == pwd.getpwnam(world.runtime.settings.execution.default_account).pw_uid
    assert names_on(world, "results") == ["out.txt"]


def test_a_stage_out_past_the_quota_fails_the_activity_and_leaves_nothing(
    world: SimpleWorld,
) -> None:
    extra = staging("stdout.txt", target=world.url("results/big.bin"))
    job = m.job("/usr/bin/head", "-c", "100000", "/dev/zero", extra=extra)
    activity = world.soap.create(job)
    status = world.soap.wait(activity, "Finished", "Failed", timeout=30)
    assert status.get("state") == "Failed"
    reason = status.findtext("xg:Reason", namespaces=m.NS)
    assert "quota" in reason and world.url("results/big.bin") in reason
    assert not (world.storage.local_root(world.volume) / "results").exists() or not names_on(
        world, "results"
    )
    assert world.storage.volume(world.volume).used_bytes == 16


def test_the_accounts_own_rights_apply_on_the_volume(world: SimpleWorld) -> None:
    root = world.storage.local_root(world.volume)
    (root / "locked").mkdir(mode=0o755)  # root's folder: the job's account cannot write
    os.chown(root / "locked", 0, 0)
    extra = staging("stdout.txt", target=world.url("locked/out.txt"))
    activity = world.soap.create(m.job("/bin/echo", "hello", extra=extra))
    status = world.soap.wait(activity, "Finished", "Failed", timeout=30)
    assert status.get("state") == "Failed"
    assert "Permission denied" in status.findtext("xg:Reason", namespaces=m.NS)
    assert os.listdir(root / "locked") == []


def test_a_missing_source_fails_the_activity_naming_it(world: SimpleWorld) -> None:
    url = world.url("in/missing.txt")
    activity = world.soap.create(m.job("/bin/cat", "in.txt", extra=staging("in.txt", source=url)))
    status = world.soap.wait(activity, "Finished", "Failed", timeout=30)
    assert status.get("state") == "Failed"
    assert url in status.findtext("xg:Reason", namespaces=m.NS)


def test_only_those_the_volume_is_offered_to_may_stage_from_it(world: SimpleWorld) -> None:
    as_bob = SOAPClient(world.client, basic("bob"))
    job = m.job("/bin/cat", "in.txt", extra=staging("in.txt", source=world.url("in/data.txt")))
    fault = as_bob.fault(m.create(job))
    assert m.fault_detail_names(fault) == ["NotAuthorizedFault"]
    assert world.volume in fault.findtext("faultstring")


def test_an_unknown_volume_or_another_file_system_is_refused_at_create(
    world: SimpleWorld,
) -> None:
    unknown = world.url("x").replace(world.volume, "xgtest-nothere")
    fault = world.soap.fault(m.create(m.job("/bin/true", extra=staging("x", source=unknown))))
    assert m.fault_detail_names(fault) == ["InvalidRequestMessageFault"]
    assert "xgtest-nothere" in fault.findtext("faultstring")
    other = "xtreemfs://mrc.example.org/vol/x"
    fault = world.soap.fault(m.create(m.job("/bin/true", extra=staging("x", source=other))))
    assert m.fault_detail_names(fault) == ["UnsupportedFeatureFault"]
