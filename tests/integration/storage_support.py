"""Storage backends for the contract suite: the POSIX tree in a temp folder, and a real
GlusterFS volume served by a glusterd this session starts (or the one already running).

glusterd keeps its state in /var/lib/glusterd, shared with anything else on the host
(other test sessions included), so the fixture touches only volumes this session made:
their names start with ``xgtest-<pid>-`` (:data:`SESSION`) and carry the gateway's VO
option; bricks and mounts live in a temp folder. A glusterd this session started is
stopped at the end only when no other session's test volume is still on it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from backends.contracts.interfaces import BackendContext
from backends.storage.glusterfs import GlusterStorageBackend
from backends.storage.posix import PosixStorageBackend
from tests import services

PREFIX = "xgtest-"  # every test volume, of any session
SESSION = f"{PREFIX}{os.getpid():x}-"  # the volumes of this session (pytest process)
HINT = "apt-get install glusterfs-server glusterfs-client (and run the tests as root)"


def _answers(gluster: str) -> bool:
    done = subprocess.run(
        [gluster, "--mode=script", "volume", "list"], capture_output=True, timeout=20
    )
    return done.returncode == 0


@pytest.fixture(scope="session")
def glusterd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    found = services.require("glusterd", "gluster", hint=HINT, search=("/usr/sbin",))
    if os.geteuid() != 0 or not os.path.exists("/dev/fuse"):
        services.missing("root and /dev/fuse (GlusterFS FUSE mounts)", HINT)
    folder = tmp_path_factory.mktemp("glusterfs")
    service = None
    if not _answers(found["gluster"]):
        pidfile = folder / "glusterd.pid"
        service = services.start(
            "glusterd",
            [found["glusterd"], "-p", str(pidfile)],
            directory=folder,
            port=24007,
            ready=lambda: pidfile.exists() and _answers(found["gluster"]),
            pidfile=pidfile,
        )
    made: list[GlusterStorageBackend] = []
    try:
        yield SimpleNamespace(folder=folder, made=made, gluster=found["gluster"])
    finally:
        others = False
        for backend in made:
            with contextlib.suppress(Exception):
                for name in backend._volume_names():
                    if name.startswith(SESSION):
                        with contextlib.suppress(Exception):
                            backend._destroy(name)
                    elif name.startswith(PREFIX):
                        others = True
            backend.close()
        if service is not None and not others:
            service.stop()


def posix_backend(tmp_path: Path) -> PosixStorageBackend:
    options = SimpleNamespace(root=str(tmp_path / "volumes"))
    return PosixStorageBackend(BackendContext(None, tmp_path / "state", options))


def gluster_backend(glusterd: SimpleNamespace, tmp_path: Path) -> GlusterStorageBackend:
    options = SimpleNamespace(
        server=socket.gethostname(),
        brick_root=str(glusterd.folder / "bricks"),
        mount_root=str(tmp_path / "mounts"),
        gluster=glusterd.gluster,
    )
    backend = GlusterStorageBackend(BackendContext(None, tmp_path / "state", options))
    glusterd.made.append(backend)
    return backend


def volume_name() -> str:
    return f"{SESSION}{uuid.uuid4().hex[:8]}"


def remove_volumes(backend: object) -> None:
    """Delete what a test left (the backend's own delete, so this is exercised too)."""
    for volume in backend.list_volumes():  # type: ignore[attr-defined]
        if volume.name.startswith(SESSION):
            with contextlib.suppress(Exception):
                backend.delete_volume(volume.name)  # type: ignore[attr-defined]
    backend.close()  # type: ignore[attr-defined]
    shutil.rmtree(getattr(backend, "mount_root", "/nonexistent"), ignore_errors=True)
