"""VM disks made from images on storage volumes: one copy-on-write qcow2 overlay per VM
(``qemu-img create -f qcow2 -b <image> -F <format>``), so every VM writes only its own
overlay and the image on the volume stays as uploaded, shared by all VMs made from it.

The image's format comes from ``qemu-img info --output=json`` (the file on the volume is
the truth, whatever its name says). Only ``qcow2`` and ``raw`` are accepted, and an image
that itself has a backing file is refused: a user's upload must not make a VM read some
other file of the host. GlusterFS and XtreemFS images are read through the volume's FUSE
mount, the same path for all three storage systems (see the README for why not libgfapi).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from backends.contracts.interfaces import BackendUnavailable, InvalidSpec

FORMATS = ("qcow2", "raw")
_TIMEOUT = 120  # seconds; qemu-img only reads headers here, but a FUSE mount can stall


@dataclass(frozen=True)
class Image:
    """An image file on this host (on a volume's mount) and its disk format."""

    path: Path
    format: str
    virtual_size: int


def qemu_img() -> str:
    found = shutil.which("qemu-img")
    if not found:
        raise BackendUnavailable(
            "qemu-img is not installed: VMs from volume images need the Debian package "
            "qemu-utils (apt-get install qemu-utils)"
        )
    return found


def _run(argv: list[str], what: str) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise BackendUnavailable(f"{what}: qemu-img gave no answer in {_TIMEOUT} s") from None
    if done.returncode != 0:
        reason = (done.stderr.strip().splitlines() or ["no reason given"])[-1]
        raise InvalidSpec(f"{what}: {reason.removeprefix('qemu-img: ')}")
    return done.stdout


def probe(path: Path, name: str) -> Image:
    """Format and size of the image at ``path`` (``name`` says which, in errors);
    InvalidSpec when it is not a usable qcow2 or raw image."""
    what = f"os_tpl image {name}"
    if not os.access(path, os.R_OK):
        raise InvalidSpec(f"{what} cannot be read by the gateway")
    try:
        out = _run([qemu_img(), "info", "--output=json", "-U", str(path)], what)
    except InvalidSpec as exc:  # qemu-img names the local path; the client knows the URL
        raise InvalidSpec(str(exc).replace(f"'{path}'", "it")) from None
    try:
        info = json.loads(out)
        fmt, size = str(info["format"]), int(info["virtual-size"])
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidSpec(f"{what}: qemu-img info gave no usable answer ({exc})") from None
    if fmt not in FORMATS:
        raise InvalidSpec(f"{what} is a {fmt} image; use one of {', '.join(FORMATS)}")
    if info.get("backing-filename") or info.get("full-backing-filename"):
        raise InvalidSpec(
            f"{what} has a backing file ({info.get('backing-filename')}); upload a "
            "standalone image (qemu-img convert -O qcow2 <image> <new>)"
        )
    return Image(path, fmt, size)


def create_overlay(image: Image, overlay: Path) -> None:
    """A new qcow2 at ``overlay`` backed by ``image`` (refuses to replace a file); a
    failure leaves no overlay behind."""
    overlay.parent.mkdir(parents=True, exist_ok=True)
    if overlay.exists():
        raise InvalidSpec(f"the disk {overlay.name} exists already")
    argv = [qemu_img(), "create", "-q", "-f", "qcow2", "-b", str(image.path)]
    argv += ["-F", image.format, str(overlay)]
    try:
        _run(argv, f"making the disk {overlay.name} over {image.path.name}")
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            overlay.unlink()
        raise


def remove_overlay(overlay: Path, disk_dir: Path) -> None:
    """Delete a VM's overlay, only ever inside ``disk_dir`` (the path comes from the
    domain's metadata, which someone with libvirt access could have edited)."""
    real = os.path.realpath(overlay)
    if not real.startswith(os.path.realpath(disk_dir) + os.sep):
        return
    with contextlib.suppress(FileNotFoundError):
        os.unlink(real)
