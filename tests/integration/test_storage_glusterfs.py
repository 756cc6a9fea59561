"""What only the GlusterFS backend does, on the real glusterd of the contract suite:
its quota backstop in GlusterFS itself, replica volumes, and never touching a volume it
did not make."""

from __future__ import annotations

import subprocess
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from backends.contracts.interfaces import UnknownResource
from tests.integration.storage_support import (
    PREFIX,
    gluster_backend,
    glusterd,  # noqa: F401 - the session fixture
    remove_volumes,
    volume_name,
)


@pytest.fixture
def gluster(glusterd: SimpleNamespace, tmp_path: Path) -> Any:  # noqa: F811
    backend = gluster_backend(glusterd, tmp_path)
    yield backend
    remove_volumes(backend)


def cli(binary: str, *args: str) -> ET.Element:
    out = subprocess.run(
        [binary, "--mode=script", *args, "--xml"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    return ET.fromstring(out)  # noqa: S314 - the local gluster CLI


def test_the_quota_is_also_set_in_glusterfs(gluster: Any) -> None:
    binary = gluster.options.gluster
    name = gluster.create_volume(volume_name(), "physics", 3 * 1024 * 1024).name
    limits = cli(binary, "volume", "quota", name, "list")
    assert limits.findtext(".//limit/hard_limit") == str(3 * 1024 * 1024)
    gluster.resize_volume(name, 5 * 1024 * 1024)
    limits = cli(binary, "volume", "quota", name, "list")
    assert limits.findtext(".//limit/hard_limit") == str(5 * 1024 * 1024)


def test_a_replica_volume_on_one_node(glusterd: SimpleNamespace, tmp_path: Path) -> None:  # noqa: F811
    backend = gluster_backend(glusterd, tmp_path)
    backend.options.replica = 2
    try:
        name = backend.create_volume(volume_name(), "physics", None).name
        info = cli(glusterd.gluster, "volume", "info", name)
        assert info.findtext(".//volume/replicaCount") == "2"
        with backend.open_write(name, "f") as out:
            out.write(b"twice")
        bricks = sorted((glusterd.folder / "bricks" / name).iterdir())
        assert [(b / "f").read_bytes() for b in bricks] == [b"twice", b"twice"]
    finally:
        remove_volumes(backend)


def test_volumes_it_did_not_make_are_never_listed_or_touched(
    gluster: Any,
    glusterd: SimpleNamespace,  # noqa: F811
) -> None:
    foreign = f"{PREFIX}foreign-{uuid.uuid4().hex[:6]}"
    brick = glusterd.folder / "bricks" / foreign
    brick.mkdir(parents=True)
    gl = glusterd.gluster
    cli(gl, "volume", "create", foreign, f"{gluster.server}:{brick}", "force")
    try:
        assert foreign not in {v.name for v in gluster.list_volumes()}
        with pytest.raises(UnknownResource):
            gluster.delete_volume(foreign)
        with pytest.raises(UnknownResource):
            gluster.volume(foreign)
        assert cli(gl, "volume", "info", foreign).findtext(".//volume/name") == foreign
    finally:
        cli(gl, "volume", "delete", foreign)
