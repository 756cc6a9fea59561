"""``[storage]`` as the storage plugins read it (POSIX, GlusterFS, XtreemFS): one model
for the three, each plugin reads the keys it knows."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from backends.contracts.settings import Section


class StorageSettings(Section):
    """The storage backend's settings; each backend reads the keys it knows."""

    # posix
    root: str = ""  # default: <state_dir>/volumes
    # glusterfs
    server: str = ""  # the GlusterFS server that bricks and mounts name; default: hostname
    brick_root: str = ""  # default: <state_dir>/glusterfs-bricks
    replica: int = Field(1, ge=1, le=16)  # bricks per volume (replica N; N>1 on one node)
    gluster: str = ""  # path of the gluster CLI; default: found on PATH
    # glusterfs and xtreemfs: where volumes are mounted; default <state_dir>/<fs>-mounts
    mount_root: str = ""
    # xtreemfs
    mrc: str = ""  # host[:port] of the MRC (volumes are made, listed, removed there)
    dir: str = ""  # host[:port] of the DIR that mount.xtreemfs asks; default: the MRC
    admin_password: str = ""  # the MRC's admin_password, if it has one
    replication_policy: Literal["none", "ronly", "WqRq", "WaR1"] = "none"  # xtfsutil --set-drp
    replication_factor: int = Field(2, ge=1, le=32)
