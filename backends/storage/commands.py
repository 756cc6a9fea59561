"""Running a file system's admin tools and mounting its volumes: the code path the
GlusterFS and XtreemFS backends share. A tool that is not installed makes the backend
unavailable (503); a tool that fails raises BackendError with what it said."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from backends.contracts.interfaces import BackendError, BackendUnavailable


def tool(name: str, configured: str = "") -> str:
    """The absolute path of an admin tool, or BackendUnavailable naming the package."""
    path = configured or shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if not path:
        raise BackendUnavailable(f"{name} is not installed on the gateway host")
    return path


def run(argv: Sequence[str], *, timeout: float = 120.0, what: str = "") -> str:
    """Run ``argv`` (no shell); its standard output, or BackendError with its message."""
    try:
        done = subprocess.run(
            list(argv), capture_output=True, text=True, timeout=timeout, check=False
        )
    except FileNotFoundError as exc:
        raise BackendUnavailable(f"{argv[0]} is not installed on the gateway host") from exc
    except subprocess.TimeoutExpired as exc:
        raise BackendUnavailable(f"{what or argv[0]}: no answer within {timeout:g} s") from exc
    if done.returncode != 0:
        said = (done.stderr.strip() or done.stdout.strip()).splitlines()
        reason = said[-1] if said else f"exit status {done.returncode}"
        raise BackendError(f"{what or Path(argv[0]).name} failed: {reason}")
    return done.stdout


def mounted(mountpoint: Path) -> bool:
    return os.path.ismount(mountpoint)


def ensure_mounted(
    mountpoint: Path, argv: Sequence[str], what: str, made: set[Path] | None = None
) -> Path:
    """Mount with ``argv`` (whose last word is ``mountpoint``) unless it is mounted; a
    mount made here is added to ``made``, so its owner unmounts only its own: another
    process on this host (the gateway, a CLI command) may be using the others."""
    if not mounted(mountpoint):
        mountpoint.mkdir(parents=True, exist_ok=True)
        run(argv, timeout=60, what=what)
        if not mounted(mountpoint):
            raise BackendUnavailable(f"{what}: {mountpoint} is not a mount point afterwards")
        if made is not None:
            made.add(mountpoint)
    return mountpoint


def unmount(mountpoint: Path, umount: str = "umount") -> None:
    if mounted(mountpoint):
        run([umount, str(mountpoint)], timeout=60, what=f"unmounting {mountpoint}")
    if mountpoint.is_dir():
        mountpoint.rmdir()
