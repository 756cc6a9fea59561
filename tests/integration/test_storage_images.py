"""`xtreemgate volume create|list|resize|delete` and VM images on a storage volume
(`xtreemgate image upload|list|delete`) as an operator runs them, and the images as
os_tpl mixins in OCCI's query interface (real HTTP through the app, real libvirt
test-driver host)."""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from backends.contracts.interfaces import BackendContext, InvalidState
from backends.services.images import ImageShelf
from backends.storage.posix import PosixStorageBackend
from tests import services
from tests.conftest import basic
from tests.integration.occi_support import check_json, isolated_vm
from tests.integration.storage_api_support import make_vos
from tests.integration.test_cli import XG, run


def posix(state: Path) -> PosixStorageBackend:
    return PosixStorageBackend(BackendContext(None, state, SimpleNamespace(root="")))


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("XTREEMGATE_")}
    environment["XTREEMGATE_STATE_DIR"] = str(tmp_path / "state")
    environment["XTREEMGATE_LOGGING__FORMAT"] = "text"
    environment["XTREEMGATE_STORAGE__IMAGE_VOLUME"] = "images"
    run(["db", "upgrade"], environment)
    return environment


def test_volume_create_list_resize_delete(env: dict[str, str]) -> None:
    make_vos(env["XTREEMGATE_STATE_DIR"], {"physics": ["maria"], "chemistry": []})
    made = run(["volume", "create", "data1", "--vo", "physics", "--quota", "1000"], env)
    assert made.stdout.split()[:4] == ["data1", "physics", "0", "1000"]
    run(["volume", "create", "data2", "--vo", "chemistry", "--owner", "carl"], env)
    assert [line.split()[0] for line in run(["volume", "list"], env).stdout.splitlines()] == [
        "data1",
        "data2",
    ]
    only = run(["volume", "list", "--vo", "chemistry"], env).stdout.split()
    assert only[:4] == ["data2", "chemistry", "0", "unlimited"]
    again = run(["volume", "create", "data1", "--vo", "physics"], env, check=False)
    assert again.returncode == 1 and "exists already" in again.stderr
    assert run(["volume", "resize", "data1", "--unlimited"], env).stdout.split()[3] == "unlimited"
    both = run(["volume", "resize", "data1"], env, check=False)
    assert both.returncode == 2 and "exactly one" in both.stderr
    run(["volume", "delete", "data1"], env)
    gone = run(["volume", "delete", "data1"], env, check=False)
    assert gone.returncode == 1 and "no volume 'data1'" in gone.stderr


def test_image_upload_list_delete(env: dict[str, str], tmp_path: Path) -> None:
    missing = run(["image", "list"], env, check=False)
    assert missing.returncode == 1 and "no volume 'images'" in missing.stderr
    posix(tmp_path / "state").create_volume("images", "physics", None)
    disk = tmp_path / "debian13.qcow2"
    disk.write_bytes(os.urandom(3 * 1024 * 1024 + 5))
    url = run(["image", "upload", str(disk)], env).stdout.strip()
    assert url.startswith("file://") and url.endswith("/images/debian13.qcow2")
    assert Path(url.removeprefix("file://")).read_bytes() == disk.read_bytes()
    again = run(["image", "upload", str(disk)], env, check=False)
    assert again.returncode == 1 and "exists" in again.stderr
    run(["image", "upload", "--replace", "--name", "debian13.qcow2", str(disk)], env)
    listing = run(["image", "list"], env).stdout.split()
    assert listing == [str(disk.stat().st_size), "debian13.qcow2", url]
    bad = run(["image", "delete", "../etc"], env, check=False)
    assert bad.returncode == 1 and "image name" in bad.stderr
    run(["image", "delete", "debian13.qcow2"], env)
    assert run(["image", "list"], env).stdout == ""


def test_a_terminal_gets_a_progress_bar(env: dict[str, str], tmp_path: Path) -> None:
    # script(1) runs the command on a pseudo-terminal (Debian's bsdutils, always there)
    script = services.require("script", hint="apt-get install bsdutils")["script"]
    posix(tmp_path / "state").create_volume("images", "physics", None)
    disk = tmp_path / "tty.img"
    disk.write_bytes(b"t" * (5 * 1024 * 1024))
    command = f"{shlex.quote(XG)} image upload {shlex.quote(str(disk))}"
    shown = subprocess.run(
        [script, "-qec", command, "/dev/null"], env=env, capture_output=True, text=True, timeout=60
    )
    assert shown.returncode == 0, shown.stdout
    assert "uploading tty.img" in shown.stdout and "100%" in shown.stdout


def test_upload_reports_progress_and_a_quota_overrun_leaves_no_image(tmp_path: Path) -> None:
    storage = posix(tmp_path)
    storage.create_volume("images", "physics", 2 * 1024 * 1024)
    shelf = ImageShelf(storage, "images")
    small, big = tmp_path / "small.img", tmp_path / "big.img"
    small.write_bytes(b"s" * (1024 * 1024 + 1))
    big.write_bytes(b"b" * (2 * 1024 * 1024))
    seen: list[int] = []
    shelf.upload(small, "small.img", progress=seen.append)
    assert sum(seen) == small.stat().st_size and len(seen) == 2
    with pytest.raises(Exception, match="quota"):
        shelf.upload(big, "big.img")
    assert [t.title for t in shelf.list()] == ["small.img (volume images)"]
    with pytest.raises(InvalidState):
        shelf.upload(small, "small.img")


@pytest.fixture
def settings(make_settings: Any, tmp_path: Path) -> Any:
    from backends.store import migrate

    s = make_settings(vm=isolated_vm(tmp_path), storage={"image_volume": "images"})
    migrate.upgrade(s.database_url)
    return s


def test_images_on_the_volume_are_os_tpl_mixins(
    client: Any, alice: str, runtime: Any, tmp_path: Path
) -> None:
    storage = runtime.backends["storage"]
    storage.create_volume("images", "physics", None)
    disk = tmp_path / "rocky9.qcow2"
    disk.write_bytes(b"q" * 4096)
    ImageShelf(storage, "images").upload(disk, "rocky9.qcow2")
    headers = {**basic(alice), "Accept": "application/occi+json"}
    doc = check_json(client.get("/-/", headers=headers))
    titles = {m["title"]: m for m in doc["mixins"] if m.get("scheme", "").endswith("os_tpl#")}
    assert "rocky9.qcow2 (volume images)" in titles
    assert any("debian12" in t for t in titles)  # the hypervisor's own templates stay
