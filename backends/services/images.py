"""VM images kept on a storage volume (``storage.image_volume``), in its ``images/``
folder: uploaded streamed and atomically (a broken upload leaves no image), listed as
image templates whose id is the image's volume URL (OCCI os_tpl image locations).

Neutral: it uses any StorageBackend through the contract only, so the OCCI front end and
the CLI may use it without knowing which storage implementation runs."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

from backends.contracts.interfaces import InvalidRequest, StorageBackend, UnknownResource
from backends.contracts.model import ImageTemplate

FOLDER = "images"
CHUNK = 1024 * 1024
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def image_name(name: str) -> str:
    if not NAME.match(name or ""):
        raise InvalidRequest(
            f"image name {name!r} must be 1-128 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


def backing_file(path: Path) -> str:
    """The backing file a qcow2 header names ("" for none, or not a qcow2), read from the
    header itself: cheap enough to ask of every overlay in a folder."""
    try:
        with open(path, "rb") as disk:
            header = disk.read(20)
            if len(header) < 20 or header[:4] != b"QFI\xfb":
                return ""
            offset = int.from_bytes(header[8:16], "big")
            size = int.from_bytes(header[16:20], "big")
            if not offset or not 0 < size <= 4096:
                return ""
            disk.seek(offset)
            return disk.read(size).decode("utf-8", "replace")
    except OSError:
        return ""


def overlays_over(image: Path, disk_dir: Path) -> list[str]:
    """Names of the VM overlays in ``disk_dir`` backed by ``image``: deleting or
    replacing the image would break those VMs' disks."""
    try:
        names = sorted(os.listdir(disk_dir))
    except FileNotFoundError:
        return []
    wanted = os.path.realpath(image)
    users = []
    for name in names:
        backing = backing_file(disk_dir / name)
        if backing and os.path.realpath(os.path.join(disk_dir, backing)) == wanted:
            users.append(name)
    return users


class ImageShelf:
    """The images on one volume of a storage backend."""

    def __init__(self, storage: StorageBackend, volume: str) -> None:
        self.storage = storage
        self.volume = volume

    def upload(
        self,
        local: Path,
        name: str,
        *,
        overwrite: bool = False,
        progress: Callable[[int], None] | None = None,
    ) -> ImageTemplate:
        """Copy ``local`` onto the volume as image ``name``; ``progress`` gets each
        chunk's byte count (for a progress bar)."""
        path = f"{FOLDER}/{image_name(name)}"
        with (
            local.open("rb") as source,
            self.storage.open_write(
                self.volume, path, overwrite=overwrite, size=os.fstat(source.fileno()).st_size
            ) as out,
        ):
            while chunk := source.read(CHUNK):
                out.write(chunk)
                if progress:
                    progress(len(chunk))
        return self._template(name, self.storage.stat(self.volume, path).size)

    def list(self) -> list[ImageTemplate]:
        try:
            files = self.storage.list_files(self.volume, FOLDER)
        except UnknownResource:  # no image uploaded yet
            return []
        return [self._template(f.path.rsplit("/", 1)[-1], f.size) for f in files if not f.is_dir]

    def delete(self, name: str) -> None:
        self.storage.delete(self.volume, f"{FOLDER}/{image_name(name)}")

    def users(self, name: str, disk_dir: Path) -> list[str]:
        """The VM overlays in ``disk_dir`` (the VM backend's ``vm.disk_dir``) that image
        ``name`` backs; [] when it is not on the volume."""
        url = self.storage.url(self.volume, f"{FOLDER}/{image_name(name)}")
        try:
            return overlays_over(self.storage.local_file(url, "image"), disk_dir)
        except UnknownResource:
            return []

    def _template(self, name: str, size: int) -> ImageTemplate:
        url = self.storage.url(self.volume, f"{FOLDER}/{name}")
        return ImageTemplate(url, f"{name} (volume {self.volume})", size)
