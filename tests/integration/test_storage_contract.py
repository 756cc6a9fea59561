"""The storage contract: what every StorageBackend must do, run against the POSIX tree
and against a real GlusterFS volume (glusterd started by the tests, FUSE-mounted)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from backends.contracts.interfaces import (
    InvalidRequest,
    InvalidState,
    QuotaExceeded,
    UnknownResource,
)
from tests.integration.storage_support import (
    gluster_backend,
    glusterd,  # noqa: F401 - the session fixture
    posix_backend,
    remove_volumes,
    volume_name,
)


@pytest.fixture(params=["posix", "glusterfs"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    if request.param == "posix":
        backend = posix_backend(tmp_path)
    else:
        backend = gluster_backend(request.getfixturevalue("glusterd"), tmp_path)
    yield backend
    remove_volumes(backend)


@pytest.fixture
def vol(storage: Any) -> str:
    return storage.create_volume(volume_name(), "physics", None).name


def write(storage: Any, volume: str, path: str, data: bytes, **kw: Any) -> None:
    with storage.open_write(volume, path, **kw) as out:
        out.write(data)


def read(storage: Any, volume: str, path: str) -> bytes:
    with storage.open_read(volume, path) as data:
        return data.read()


def test_health(storage: Any) -> None:
    assert storage.health().ok


def test_volumes_are_owned_by_a_vo_and_listed_by_it(storage: Any) -> None:
    a = storage.create_volume(volume_name(), "physics", 10_000)
    b = storage.create_volume(volume_name(), "chemistry", None)
    assert (a.vo, a.quota_bytes, a.used_bytes) == ("physics", 10_000, 0)
    assert [v.name for v in storage.list_volumes("physics")] == [a.name]
    assert {a.name, b.name} <= {v.name for v in storage.list_volumes()}
    assert storage.volume(b.name).quota_bytes is None
    with pytest.raises(InvalidState, match="exists already"):
        storage.create_volume(a.name, "chemistry", None)
    storage.delete_volume(a.name)
    with pytest.raises(UnknownResource):
        storage.volume(a.name)
    assert a.name not in {v.name for v in storage.list_volumes()}


@pytest.mark.parametrize("name", ["", "../x", "-x", "a/b", "x" * 65, ".hidden"])
def test_bad_names_are_refused(storage: Any, name: str) -> None:
    with pytest.raises(InvalidRequest, match="letters, digits"):
        storage.create_volume(name, "physics", None)
    with pytest.raises(InvalidRequest):
        storage.create_volume("fine", name, None)


def test_bad_quota_is_refused(storage: Any) -> None:
    with pytest.raises(InvalidRequest, match="positive"):
        storage.create_volume(volume_name(), "physics", 0)


def test_files_write_read_stat_list_delete(storage: Any, vol: str) -> None:
    write(storage, vol, "in/deep/data.bin", b"x" * 5000)
    write(storage, vol, "top.txt", b"hello")
    assert read(storage, vol, "in/deep/data.bin") == b"x" * 5000
    info = storage.stat(vol, "in/deep/data.bin")
    assert (info.path, info.size, info.is_dir) == ("in/deep/data.bin", 5000, False)
    assert [(f.path, f.is_dir) for f in storage.list_files(vol)] == [
        ("in", True),
        ("top.txt", False),
    ]
    assert [f.path for f in storage.list_files(vol, "in/deep")] == ["in/deep/data.bin"]
    assert storage.volume(vol).used_bytes == 5005
    write(storage, vol, "top.txt", b"bye")  # overwrite is the default
    assert read(storage, vol, "top.txt") == b"bye"
    with pytest.raises(InvalidState, match="exists"):
        write(storage, vol, "top.txt", b"again", overwrite=False)
    storage.delete(vol, "in")
    with pytest.raises(UnknownResource):
        storage.stat(vol, "in/deep/data.bin")
    with pytest.raises(UnknownResource):
        storage.open_read(vol, "nothing")
    with pytest.raises(UnknownResource):
        storage.delete(vol, "nothing")


def test_a_failed_write_leaves_nothing_behind(storage: Any, vol: str) -> None:
    write(storage, vol, "keep.txt", b"old")
    with pytest.raises(RuntimeError), storage.open_write(vol, "keep.txt") as out:
        out.write(b"half of the new")
        raise RuntimeError("the source broke")
    with pytest.raises(RuntimeError), storage.open_write(vol, "new.txt") as out:
        out.write(b"half")
        raise RuntimeError("the source broke")
    assert read(storage, vol, "keep.txt") == b"old"
    assert [f.path for f in storage.list_files(vol)] == ["keep.txt"]
    assert storage.volume(vol).used_bytes == 3


def test_quota_overrun_fails_cleanly_and_resize_lifts_it(storage: Any) -> None:
    vol = storage.create_volume(volume_name(), "physics", 4096).name
    write(storage, vol, "a", b"1" * 3000)
    with pytest.raises(QuotaExceeded, match="quota"), storage.open_write(vol, "b") as out:
        for _ in range(4):
            out.write(b"2" * 512)
    assert [f.path for f in storage.list_files(vol)] == ["a"]
    write(storage, vol, "a", b"3" * 4096)  # replacing a file frees its old size
    with pytest.raises(InvalidState, match="below"):
        storage.resize_volume(vol, 100)
    assert storage.resize_volume(vol, 10_000).quota_bytes == 10_000
    write(storage, vol, "b", b"4" * 5000)
    assert storage.volume(vol).used_bytes == 9096
    assert storage.resize_volume(vol, None).quota_bytes is None
    write(storage, vol, "c", b"5" * 20_000)


@pytest.mark.parametrize("path", ["../outside", "a/../../b", "x\0y"])
def test_paths_never_leave_the_volume(storage: Any, vol: str, path: str) -> None:
    with pytest.raises(InvalidRequest):
        write(storage, vol, path, b"no")


def test_a_symlink_cannot_lead_out_of_the_volume(storage: Any, vol: str, tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("root's")
    root = storage._volume_root(vol)
    os.symlink(tmp_path, root / "link")
    with pytest.raises(InvalidRequest, match="outside"):
        storage.open_read(vol, "link/secret")
    with pytest.raises(InvalidRequest, match="outside"):
        write(storage, vol, "link/secret", b"overwritten")
    assert secret.read_text() == "root's"
    os.symlink(secret, root / "file-link")
    write(storage, vol, "inside.txt", b"mine")
    os.symlink(root / "inside.txt", root / "inner-link")
    # a listing shows links within the volume, and not even the size or age of outside ones
    assert [i.path for i in storage.list_files(vol)] == ["inner-link", "inside.txt"]


def test_copy_in_and_out(storage: Any, vol: str, tmp_path: Path) -> None:
    local = tmp_path / "local.bin"
    local.write_bytes(os.urandom(3 * 1024 * 1024 + 7))
    assert storage.copy_in(vol, "data/copy.bin", local) == local.stat().st_size
    back = tmp_path / "back.bin"
    assert storage.copy_out(vol, "data/copy.bin", back) == local.stat().st_size
    assert back.read_bytes() == local.read_bytes()
    with pytest.raises(UnknownResource):
        storage.copy_out(vol, "data/missing", tmp_path / "never")
    assert not any(p.name.startswith(".never") or p.name == "never" for p in tmp_path.iterdir())


def test_urls_name_files_on_the_volume(storage: Any, vol: str) -> None:
    write(storage, vol, "dir/f.txt", b"by url")
    url = storage.url(vol, "dir/f.txt")
    assert url.startswith(f"{storage.scheme}:")
    assert storage.resolve(url) == (vol, "dir/f.txt")
    with pytest.raises(InvalidRequest):
        storage.resolve("http://example.org/x")
    with pytest.raises(UnknownResource):
        storage.volume("xgtest-nothere")
