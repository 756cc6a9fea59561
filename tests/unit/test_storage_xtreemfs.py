"""XtreemFS: the command lines the adapter builds and how it reads the tools' answers.
(No XtreemFS runs on the test machines; the file operations are the shared code that
the contract suite runs on POSIX and a real GlusterFS volume.)"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from backends.contracts.interfaces import (
    BackendContext,
    BackendError,
    BackendUnavailable,
    InvalidRequest,
)
from backends.storage import xtreemfs

LSFS = """Listing all volumes of the MRC: mrc.example.org
Volumes on mrc.example.org:32636 (Format: volume name -> volume UUID):
\tphysics-data\t->\t7b8d5c2e-0e0a-4c51-9a4b-6b3f1c9f0e11
\timages\t->\t0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0
End of List.
"""


def test_mkfs_names_the_vo_as_owning_group_on_the_mrc() -> None:
    argv = xtreemfs.mkfs_argv("/usr/bin/mkfs.xtreemfs", "mrc.example.org", "vol1", "physics")
    assert argv == [
        "/usr/bin/mkfs.xtreemfs",
        "--owner-groupname",
        "physics",
        "--mode",
        "770",
        "--access-control-policy",
        "POSIX",
        "--volume-attribute",
        "xtreemgate_vo=physics",
        "mrc.example.org/vol1",
    ]


def test_admin_password_goes_first_on_every_mrc_tool() -> None:
    assert xtreemfs.lsfs_argv("lsfs", "mrc:32636", admin_password="s3")[:3] == [
        "lsfs",
        "--admin_password",
        "s3",
    ]
    assert xtreemfs.rmfs_argv("rmfs", "mrc", "v", admin_password="s3") == [
        "rmfs",
        "--admin_password",
        "s3",
        "mrc/v",
    ]
    assert xtreemfs.rmfs_argv("rmfs", "mrc", "v") == ["rmfs", "mrc/v"]


def test_mount_goes_to_the_directory_service() -> None:
    argv = xtreemfs.mount_argv("mount.xtreemfs", "dir.example.org", "vol1", Path("/m/vol1"))
    assert argv == ["mount.xtreemfs", "dir.example.org/vol1", "/m/vol1"]


@pytest.mark.parametrize(
    ("policy", "factor", "tail"),
    [
        ("WqRq", 3, ["--replication-policy", "WqRq", "--replication-factor", "3"]),
        ("war1", 2, ["--replication-policy", "WaR1", "--replication-factor", "2"]),
        ("ronly", 2, ["--replication-policy", "RONLY", "--replication-factor", "2"]),
        ("none", 1, ["--replication-policy", "NONE"]),
    ],
)
def test_default_replication_policy(policy: str, factor: int, tail: list[str]) -> None:
    argv = xtreemfs.replication_argv("xtfsutil", Path("/m/v"), policy, factor)
    assert argv == ["xtfsutil", "--set-drp", *tail, "/m/v"]


@pytest.mark.parametrize(("policy", "factor"), [("quorum-ish", 3), ("WqRq", 1)])
def test_bad_replication_is_refused_before_running_anything(policy: str, factor: int) -> None:
    with pytest.raises(InvalidRequest):
        xtreemfs.replication_argv("xtfsutil", Path("/m/v"), policy, factor)


def test_lsfs_output_is_parsed() -> None:
    assert xtreemfs.parse_lsfs(LSFS) == {
        "physics-data": "7b8d5c2e-0e0a-4c51-9a4b-6b3f1c9f0e11",
        "images": "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0",
    }
    empty = "Listing all volumes of the MRC: m\nVolumes on m:32636 (Format: ...):\nEnd of List.\n"
    assert xtreemfs.parse_lsfs(empty) == {}


def test_a_failed_listing_says_why() -> None:
    failed = "Listing all volumes of the MRC: m\nFailed to list the volumes, error:\n\tconnection refused\n"
    with pytest.raises(BackendError, match="connection refused"):
        xtreemfs.parse_lsfs(failed)


def _backend(tmp_path: Path, **options: str) -> xtreemfs.XtreemFSStorageBackend:
    context = BackendContext(None, tmp_path, SimpleNamespace(**options))
    return xtreemfs.XtreemFSStorageBackend(context)


def test_urls_name_the_mrc(tmp_path: Path) -> None:
    backend = _backend(tmp_path, mrc="mrc.example.org:32636")
    url = backend.url("vol1", "in/data.bin")
    assert url == "xtreemfs://mrc.example.org:32636/vol1/in/data.bin"
    assert backend.resolve(url) == ("vol1", "in/data.bin")
    with pytest.raises(InvalidRequest):
        backend.resolve("glusterfs://h/vol1/x")


def test_missing_tools_or_mrc_make_it_unavailable(tmp_path: Path) -> None:
    with pytest.raises(BackendUnavailable, match=r"storage\.mrc"):
        _backend(tmp_path).url("v")
    backend = _backend(tmp_path, mrc="m")
    backend.tools["lsfs.xtreemfs"] = str(tmp_path / "no-lsfs")
    with pytest.raises(BackendUnavailable, match="not installed"):
        backend.list_volumes()
    assert not backend.health().ok
