"""VM images kept on a storage volume (``storage.image_volume``), in its ``images/``
folder: uploaded streamed and atomically (a broken upload leaves no image), listed as
image templates whose id is the image's volume URL (OCCI os_tpl image locations)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from backends.interfaces import InvalidRequest, StorageBackend, UnknownResource
from backends.model import ImageTemplate
from backends.storage.tree import CHUNK
from backends.storage.urls import VolumeURLError, check_name

FOLDER = "images"


def image_name(name: str) -> str:
    try:
        return check_name(name, "image name")
    except VolumeURLError as exc:
        raise InvalidRequest(str(exc)) from None


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
            self.storage.open_write(self.volume, path, overwrite=overwrite) as out,
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

    def _template(self, name: str, size: int) -> ImageTemplate:
        url = self.storage.url(self.volume, f"{FOLDER}/{name}")
        return ImageTemplate(url, f"{name} (volume {self.volume})", size)
