"""The site's templates: os_tpl mixins for the images the VM backend offers (and those
uploaded onto ``storage.image_volume``), resource_tpl mixins for the ``[vm.sizes]``.

A compute chooses them at creation; what an image is stays the VM backend's business.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from backends.contracts.interfaces import BackendError, StorageBackend, VMBackend
from backends.contracts.model import ImageTemplate
from backends.services.images import ImageShelf
from gateway.config import Settings
from gateway.occi import infrastructure as infra
from gateway.occi.model import Mixin


@dataclass(frozen=True)
class Size:
    """A configured resource_tpl: its name in ``[vm.sizes.<name>]`` and its values."""

    name: str
    cores: int
    memory_mib: int


@dataclass(frozen=True)
class Templates:
    """One consistent view of the templates; replaced whole when the images change."""

    images: Mapping[str, str] = field(default_factory=dict)  # os_tpl identifier -> image id
    sizes: Mapping[str, Size] = field(default_factory=dict)  # resource_tpl identifier -> size

    def is_template(self, identifier: str) -> bool:
        return identifier in self.images or identifier in self.sizes

    def with_images(self, mixins: list[Mixin], images: list[ImageTemplate]) -> Templates:
        return Templates(
            {m.identifier: t.id for m, t in zip(mixins, images, strict=True)}, self.sizes
        )


def configured_sizes(settings: Settings) -> dict[str, Size]:
    """resource_tpl identifier -> size, from ``[vm.sizes]``."""
    sizes = {}
    for name, size in settings.vm.sizes.items():
        mixin = infra.resource_template(name, size.cores, size.memory_mib / 1024)
        sizes[mixin.identifier] = Size(name, size.cores, size.memory_mib)
    return sizes


def offered_images(
    vm: VMBackend, storage: StorageBackend | None, image_volume: str
) -> list[ImageTemplate] | None:
    """The backend's image templates and the volume's uploaded images; None when either
    cannot be read now (the caller keeps what it had: a flaky host must not empty the menu)."""
    try:
        images = vm.templates()
    except (BackendError, NotImplementedError):
        return None
    if image_volume and storage is not None:
        try:  # images uploaded onto a storage volume (xtreemgate image upload)
            images = [*images, *ImageShelf(storage, image_volume).list()]
        except BackendError:
            return None
    return images
