"""A VM made from an image uploaded onto a storage volume, end to end: a real qcow2 (made
by qemu-img here) put on a POSIX or a real GlusterFS volume with ``xtreemgate image
upload``, then ``POST /compute/`` with its os_tpl over real HTTP to a gateway served by
uvicorn in this process (so the test can look into the same libvirt test-driver host):
the domain's disk is a qcow2 overlay backed by the image on the volume, and deleting the
compute removes the overlay. The test driver never opens a disk, so nothing boots: what
is checked is the overlay qemu-img made and the domain definition libvirt holds."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import requests

from backends.contracts.interfaces import InvalidSpec
from backends.contracts.model import VMSpec
from backends.vm.libvirt import domain_xml
from tests import services
from tests.conftest import PASSWORD
from tests.integration.occi_support import COMPUTE_KIND, isolated_vm
from tests.integration.storage_api_support import make_vos
from tests.integration.storage_support import glusterd, volume_name  # noqa: F401 - fixture
from tests.integration.test_cli import run

OS_TPL_SCHEME = "http://schemas.xtreemgate.org/occi/os_tpl#"


def qemu_img() -> str:
    return services.require("qemu-img", hint="apt-get install qemu-utils")["qemu-img"]


def make_image(path: Path, fmt: str = "qcow2", backing: Path | None = None) -> Path:
    argv = [qemu_img(), "create", "-q", "-f", fmt]
    if backing is not None:
        argv += ["-b", str(backing), "-F", "qcow2"]
    subprocess.run([*argv, str(path), "16M"], check=True, timeout=30)
    return path


def image_info(path: str | Path) -> dict[str, Any]:
    done = subprocess.run(
        [qemu_img(), "info", "--output=json", "-U", str(path)],
        check=True,
        capture_output=True,
        text=True,
        timeout=30,
    )
    return json.loads(done.stdout)


def _serve(app: Any, port: int) -> tuple[Any, threading.Thread]:
    import uvicorn

    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the gateway did not start"
        time.sleep(0.05)
    return server, thread


@pytest.fixture
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SimpleNamespace]:
    """A gateway served over HTTP, its CLI environment, and an empty image volume."""
    from backends.store import migrate
    from gateway.app import create_app
    from gateway.auth.users import add_user
    from gateway.config import load_settings

    qemu_img()
    volume = volume_name()
    state = tmp_path / "state"
    env = {k: v for k, v in os.environ.items() if not k.startswith("XTREEMGATE_")}
    env |= {
        "XTREEMGATE_STATE_DIR": str(state),
        "XTREEMGATE_LOGGING__FORMAT": "text",
        "XTREEMGATE_STORAGE__IMAGE_VOLUME": volume,
    }
    storage: dict[str, Any] = {"image_volume": volume}
    if request.param == "glusterfs":
        gluster = request.getfixturevalue("glusterd")
        storage |= {
            "server": socket.gethostname(),
            "brick_root": str(gluster.folder / "bricks"),
            "mount_root": str(tmp_path / "mounts"),
            "gluster": gluster.gluster,
        }
        env["XTREEMGATE_BACKENDS__STORAGE"] = "glusterfs"
        for key in ("server", "brick_root", "mount_root", "gluster"):
            env[f"XTREEMGATE_STORAGE__{key.upper()}"] = storage[key]
    port = services.free_port()
    settings = load_settings(
        None,
        state_dir=str(state),
        server={"port": port},
        logging={"format": "text", "access_log": False},
        backends={"storage": request.param},
        storage=storage,
        vm=isolated_vm(tmp_path),
    )
    migrate.upgrade(settings.database_url)
    make_vos(str(state), {"physics": ["maria"]})  # a volume belongs to a VO that exists
    run(["volume", "create", volume, "--vo", "physics"], env)
    app = create_app(settings, configure_logs=False)
    rt = app.app.extensions["xtreemgate"]
    add_user(rt.db, "alice", PASSWORD)
    server, thread = _serve(app, port)
    try:
        yield SimpleNamespace(
            url=f"http://127.0.0.1:{port}",
            env=env,
            rt=rt,
            vm=rt.backends["vm"],
            volume=volume,
            disk_dir=state / "vm-disks",
            auth=("alice", PASSWORD),
            kind=request.param,
        )
    finally:
        server.should_exit = True
        thread.join(timeout=20)
        rt.backends["storage"].delete_volume(volume)
        rt.close()


def os_tpl(world: SimpleNamespace, name: str) -> str:
    """The os_tpl mixin (Category value) the query interface lists for an uploaded image."""
    answer = requests.get(
        f"{world.url}/-/",
        auth=world.auth,
        headers={"Accept": "application/occi+json"},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    title = f"{name} (volume {world.volume})"
    found = [m for m in answer.json()["mixins"] if m.get("title") == title]
    assert len(found) == 1, [m.get("title") for m in answer.json()["mixins"]]
    assert found[0]["scheme"] == OS_TPL_SCHEME
    return f'{found[0]["term"]}; scheme="{OS_TPL_SCHEME}"; class="mixin"'


def post_compute(world: SimpleNamespace, mixin: str) -> requests.Response:
    return requests.post(
        f"{world.url}/compute/",
        auth=world.auth,
        headers={
            "Content-Type": "text/occi",
            "Category": f"{COMPUTE_KIND}, {mixin}",
            "X-OCCI-Attribute": 'occi.core.title="from-volume"',
        },
        timeout=60,
    )


def domains(world: SimpleNamespace) -> list[Any]:
    conn = world.vm.connection(world.vm.uris[0])
    return [d for d in conn.listAllDomains(0) if d.name().startswith("xg-")]


@pytest.mark.parametrize("world", ["posix", "glusterfs"], indirect=True)
def test_a_compute_from_an_uploaded_image_runs_on_an_overlay(
    world: SimpleNamespace, tmp_path: Path
) -> None:
    disk = make_image(tmp_path / "cirros.qcow2")
    url = run(["image", "upload", str(disk)], world.env).stdout.strip()
    scheme = "file" if world.kind == "posix" else "glusterfs"
    assert url.startswith(f"{scheme}://") and url.endswith("/images/cirros.qcow2")
    image = world.rt.backends["storage"].local_root(world.volume) / "images" / "cirros.qcow2"
    assert image_info(image)["format"] == "qcow2"

    created = post_compute(world, os_tpl(world, "cirros.qcow2"))
    assert created.status_code == 201, created.text
    vm_id = created.headers["Location"].rstrip("/").rsplit("/", 1)[-1]

    [dom] = domains(world)
    assert dom.UUIDString() == vm_id and dom.isActive()
    xml = domain_xml.parse(dom.XMLDesc(0))
    [disk_el] = xml.findall("devices/disk")
    overlay = Path(disk_el.find("source").get("file"))
    assert overlay.parent == world.disk_dir and overlay.is_file()
    assert disk_el.find("driver").get("type") == "qcow2"
    assert disk_el.find("backingStore/source").get("file") == str(image)
    assert disk_el.find("backingStore/format").get("type") == "qcow2"
    made = image_info(overlay)  # qemu-img's own view of the chain
    assert made["format"] == "qcow2" and made["backing-filename"] == str(image)
    assert made["backing-filename-format"] == "qcow2"

    shown = requests.get(
        f"{world.url}/compute/{vm_id}",
        auth=world.auth,
        headers={"Accept": "application/occi+json"},
        timeout=30,
    )
    assert shown.status_code == 200 and shown.json()["attributes"]["occi.compute.state"] == "active"

    # the image is in use: neither deleted nor replaced under the VM's disk
    for argv in (["image", "delete", "cirros.qcow2"], ["image", "upload", "--replace", str(disk)]):
        refused = run(argv, world.env, check=False)
        assert refused.returncode != 0 and overlay.name in refused.stderr, refused.stderr
        assert "--force" in refused.stderr and image.is_file()

    gone = requests.delete(f"{world.url}/compute/{vm_id}", auth=world.auth, timeout=60)
    assert gone.status_code in (200, 204), gone.text
    assert domains(world) == [] and not overlay.exists()
    assert image.is_file()  # the image on the volume stays for the next VM
    run(["image", "delete", "cirros.qcow2"], world.env)  # no VM uses it any more
    assert not image.exists()


@pytest.mark.parametrize("world", ["posix"], indirect=True)  # same code on every volume
def test_raw_images_and_images_that_cannot_be_used(world: SimpleNamespace, tmp_path: Path) -> None:
    make_image(tmp_path / "plain.img", "raw")
    # an image with a backing file of its own would let a VM read another host file
    make_image(tmp_path / "chained.qcow2", backing=make_image(tmp_path / "base.qcow2"))
    broken = tmp_path / "broken.qcow2"  # a qcow2 whose header is garbage
    broken.write_bytes(b"QFI\xfb" + b"\x00\x00\x00\x03" + os.urandom(4096))
    make_image(tmp_path / "vanishing.qcow2")
    names = ("plain.img", "chained.qcow2", "broken.qcow2", "vanishing.qcow2")
    for name in names:
        run(["image", "upload", str(tmp_path / name)], world.env)
    mixins = {name: os_tpl(world, name) for name in names}  # os_tpl are cached from here on

    created = post_compute(world, mixins["plain.img"])
    assert created.status_code == 201, created.text
    [dom] = domains(world)
    backing = domain_xml.parse(dom.XMLDesc(0)).find("devices/disk/backingStore/format")
    assert backing.get("type") == "raw"  # the image's own format, from qemu-img info
    vm_id = created.headers["Location"].rstrip("/").rsplit("/", 1)[-1]
    requests.delete(f"{world.url}/compute/{vm_id}", auth=world.auth, timeout=60)

    run(["image", "delete", "vanishing.qcow2"], world.env)  # its os_tpl is still listed
    for name, said in (
        ("chained.qcow2", "has a backing file"),
        ("broken.qcow2", "broken.qcow2"),
        ("vanishing.qcow2", "is no longer on volume"),
    ):
        refused = post_compute(world, mixins[name])
        assert refused.status_code == 400, (name, refused.status_code, refused.text)
        assert said in refused.text, refused.text
        assert str(world.disk_dir.parent) not in refused.text.replace(
            f"file://{world.disk_dir.parent}", ""
        )
        assert domains(world) == []
        assert list(world.disk_dir.iterdir()) == []


@pytest.mark.parametrize("world", ["posix"], indirect=True)
def test_a_failed_define_leaves_no_overlay(world: SimpleNamespace, tmp_path: Path) -> None:
    url = run(["image", "upload", str(make_image(tmp_path / "a.qcow2"))], world.env).stdout
    with pytest.raises(InvalidSpec):  # libvirt refuses the architecture after qemu-img ran
        world.vm.create(str(uuid.uuid4()), VMSpec(name="x", image=url.strip(), architecture="z80"))
    assert domains(world) == [] and list(world.disk_dir.iterdir()) == []
