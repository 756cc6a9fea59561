"""Staging to and from a volume URL the gateway resolved to a mounted folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from backends.execution.staging import (
    StagingError,
    StagingLimits,
    TransferOptions,
    stage_in,
    stage_out,
)

URL = "glusterfs://host/vol"


@pytest.fixture
def dirs(tmp_path: Path) -> tuple[Path, Path]:
    work, volume = tmp_path / "work", tmp_path / "volume"
    work.mkdir()
    volume.mkdir()
    return work, volume


def test_in_and_out(dirs: tuple[Path, Path]) -> None:
    work, volume = dirs
    (volume / "in").mkdir()
    (volume / "in/a.txt").write_bytes(b"data")
    assert stage_in(work, "a.txt", f"{URL}/in/a.txt", TransferOptions(local_root=str(volume))) == 4
    assert (
        stage_out(work, "a.txt", f"{URL}/out/b.txt", TransferOptions(local_root=str(volume))) == 4
    )
    assert (volume / "out/b.txt").read_bytes() == b"data"


@pytest.mark.parametrize("path", ["", "/", "/../../etc/passwd", "/a/../../x"])
def test_a_url_must_name_a_file_inside_the_volume(dirs: tuple[Path, Path], path: str) -> None:
    work, volume = dirs
    with pytest.raises(StagingError, match=r"without '\.\.'"):
        stage_in(work, "x", f"{URL}{path}", TransferOptions(local_root=str(volume)))


def test_a_symlink_on_the_volume_cannot_lead_out(dirs: tuple[Path, Path], tmp_path: Path) -> None:
    work, volume = dirs
    (tmp_path / "secret").write_text("no")
    os.symlink(tmp_path, volume / "link")
    with pytest.raises(StagingError, match="outside the volume"):
        stage_in(work, "x", f"{URL}/link/secret", TransferOptions(local_root=str(volume)))


def test_an_unresolved_volume_url_is_refused(dirs: tuple[Path, Path]) -> None:
    work, _ = dirs
    with pytest.raises(StagingError, match="not resolved"):
        stage_in(work, "x", f"{URL}/a")


def test_quota_room_and_size_bound_leave_no_partial_file(dirs: tuple[Path, Path]) -> None:
    work, volume = dirs
    (work / "big").write_bytes(b"x" * 5000)
    with pytest.raises(StagingError, match="quota"):
        stage_out(
            work, "big", f"{URL}/big", TransferOptions(local_root=str(volume), free_bytes=4999)
        )
    with pytest.raises(StagingError, match="limit"):
        stage_out(
            work,
            "big",
            f"{URL}/big",
            TransferOptions(local_root=str(volume)),
            StagingLimits(max_bytes=1000),
        )
    assert os.listdir(volume) == []
