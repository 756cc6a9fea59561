"""File operations on a volume that is a directory on this host: a POSIX folder, or
the FUSE mount of a GlusterFS or XtreemFS volume. The POSIX, GlusterFS and XtreemFS
backends share this code and differ only in how a volume is made, found and mounted.

Quotas are enforced here, by the gateway, on every write stream: a write that would take
the volume past its quota fails with :class:`QuotaExceeded` and its temp file is removed.
Concurrent writers (threads, or gateway processes sharing the volume) reserve their bytes
in a per-volume ledger under a file lock before writing them, so together they never
overrun the quota (:mod:`backends.storage.quota`).
(GlusterFS and XtreemFS also get the quota set in the file system itself, as a backstop
for writers that do not go through the gateway.) Every write goes to a hidden temp file
beside the target and is renamed into place only when complete, so a failed transfer
never leaves a partial file.
"""

from __future__ import annotations

import abc
import contextlib
import functools
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from backends.contracts import volume_urls as urls
from backends.contracts.interfaces import (
    BackendError,
    InvalidRequest,
    InvalidState,
    QuotaExceeded,
    StorageBackend,
    UnknownResource,
)
from backends.contracts.model import FileInfo, Volume
from backends.contracts.volume_urls import VolumeURLError, check_name, clean_path
from backends.storage import commands
from backends.storage.quota import QuotaLedger

CHUNK = 1024 * 1024
TEMP_MARK = ".xg-part-"


def checked_name(name: str, what: str) -> str:
    try:
        return check_name(name, what)
    except VolumeURLError as exc:
        raise InvalidRequest(str(exc)) from None


def used_bytes(root: Path) -> int:
    """Bytes in the files under ``root`` (sizes, not blocks: what a quota counts). Writes
    in progress (temp files) are not counted: their reservations are."""
    total = 0
    stack = [str(root)]
    while stack:
        with contextlib.suppress(FileNotFoundError), os.scandir(stack.pop()) as entries:
            for entry in entries:
                with contextlib.suppress(FileNotFoundError):
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(entry.path)
                    elif entry.is_file(follow_symlinks=False) and TEMP_MARK not in entry.name:
                        total += entry.stat(follow_symlinks=False).st_size
    return total


class _QuotaStream:
    """A write stream that reserves its bytes in the volume's ledger before writing them
    (``ledger`` None: no quota). ``size`` is the declared size, reserved at once."""

    def __init__(
        self,
        raw: BinaryIO,
        what: str,
        ledger: QuotaLedger | None = None,
        *,
        quota: int = 0,
        size: int | None = None,
        target: Path | None = None,
        temp: Path | None = None,
        credit: int = 0,
    ) -> None:
        self.raw = raw
        self.what = what
        self.ledger = ledger
        self.quota = quota
        self.key = uuid.uuid4().hex
        self.target, self.temp, self.credit = str(target), str(temp), credit
        self.written = 0
        self.reserved = 0
        if ledger is not None and size:
            self._reserve(size)

    def _reserve(self, total: int) -> None:
        assert self.ledger is not None
        free = self.ledger.reserve(
            self.key, total, self.quota, target=self.target, temp=self.temp, credit=self.credit
        )
        if free >= 0:
            raise QuotaExceeded(
                f"{self.what}: the volume's quota of {self.quota} bytes would be exceeded "
                f"({total} bytes needed, {free} free)"
            )
        self.reserved = total

    def write(self, data: bytes | bytearray | memoryview) -> int:
        n = len(data)
        if self.ledger is not None and self.written + n > self.reserved:
            self._reserve(self.written + n)
        self.raw.write(data)
        self.written += n
        return n

    def writable(self) -> bool:
        return True

    def flush(self) -> None:
        self.raw.flush()


class DirectoryVolumes(StorageBackend):
    """A StorageBackend whose volumes are directories here; subclasses say which."""

    def _parse_own(self, url: str, what: str) -> urls.VolumeURL:
        """``url`` parsed, if it is of this backend's scheme (``what`` names the file system
        in the refusal); InvalidRequest saying why not."""
        try:
            parsed = urls.parse(url)
        except urls.VolumeURLError as exc:
            raise InvalidRequest(str(exc)) from None
        if parsed.scheme != self.scheme:
            raise InvalidRequest(f"URL {url!r} does not name a file on {what} volume")
        return parsed

    # -- what a subclass provides ----------------------------------------------------------
    @abc.abstractmethod
    def _volume_record(self, name: str) -> tuple[str, int | None]:
        """(vo, quota) of an existing volume; UnknownResource otherwise."""

    @abc.abstractmethod
    def _volume_names(self) -> list[str]:
        """Every volume this backend manages."""

    @abc.abstractmethod
    def _volume_root(self, name: str) -> Path:
        """The folder holding the volume's files on this host (mounting if needed)."""

    @abc.abstractmethod
    def _set_quota(self, name: str, quota_bytes: int | None) -> None:
        """Make ``quota_bytes`` the quota of an existing volume (None: no quota)."""

    @functools.cached_property
    def _mounted(self) -> set[Path]:
        """The mounts this backend object made itself (the only ones :meth:`close` takes
        down: a CLI command must not unmount the running gateway's volumes)."""
        return set()

    def close(self) -> None:
        """Unmount what this backend mounted (the volumes stay)."""
        for mountpoint in sorted(self._mounted):
            with contextlib.suppress(BackendError, OSError):
                commands.unmount(mountpoint)
        self._mounted.clear()

    def local_root(self, volume: str) -> Path:
        return self._volume_root(checked_name(volume, "volume"))

    # -- volumes ---------------------------------------------------------------------------
    def volume(self, name: str) -> Volume:
        checked_name(name, "volume")
        vo, quota = self._volume_record(name)
        return Volume(name, vo, self.url(name), quota, used_bytes(self._volume_root(name)))

    def volume_vo(self, name: str) -> str:
        return self._volume_record(checked_name(name, "volume"))[0]

    def list_volumes(self, vo: str | None = None) -> list[Volume]:
        found = []
        for name in sorted(self._volume_names()):
            with contextlib.suppress(UnknownResource):
                volume = self.volume(name)
                if vo is None or volume.vo == vo:
                    found.append(volume)
        return found

    @staticmethod
    def _check_quota(quota_bytes: int | None) -> None:
        if quota_bytes is not None and (not isinstance(quota_bytes, int) or quota_bytes < 1):
            raise InvalidRequest(f"quota {quota_bytes!r} must be a positive number of bytes")

    def resize_volume(self, name: str, quota_bytes: int | None) -> Volume:
        self._check_resize(name, quota_bytes)
        self._set_quota(name, quota_bytes)
        return self.volume(name)

    def _check_resize(self, name: str, quota_bytes: int | None) -> None:
        self._check_quota(quota_bytes)
        used = self.volume(name).used_bytes
        if quota_bytes is not None and quota_bytes < used:
            raise InvalidState(
                f"volume {name!r} holds {used} bytes; a quota of {quota_bytes} bytes "
                "would be below that: delete files first"
            )
        reserved = self.reserved_bytes(name) if quota_bytes is not None else 0
        if quota_bytes is not None and quota_bytes < used + reserved:
            raise InvalidState(
                f"volume {name!r} holds {used} bytes and writes in progress reserve "
                f"{reserved} more; a quota of {quota_bytes} bytes would be below that: "
                "try again when they are done"
            )

    # -- paths -----------------------------------------------------------------------------
    def _path(self, volume: str, path: str) -> tuple[Path, str]:
        """The local path of ``path`` on ``volume``; never outside the volume's root."""
        try:
            relative = clean_path(path)
        except VolumeURLError as exc:
            raise InvalidRequest(str(exc)) from None
        if TEMP_MARK in relative:
            raise InvalidRequest(f"path {path!r} names a transfer in progress")
        root = self._volume_root(checked_name(volume, "volume"))
        target = root / relative if relative else root
        real_root = os.path.realpath(root)
        real = os.path.realpath(target)
        if real != real_root and not real.startswith(real_root + os.sep):
            raise InvalidRequest(f"path {path!r} leads outside volume {volume!r}")
        return target, relative

    @staticmethod
    def _info(target: Path, relative: str) -> FileInfo:
        st = target.stat()
        return FileInfo(relative, st.st_size, target.is_dir(), st.st_mtime)

    # -- files -----------------------------------------------------------------------------
    def stat(self, volume: str, path: str) -> FileInfo:
        target, relative = self._path(volume, path)
        try:
            return self._info(target, relative)
        except FileNotFoundError:
            raise UnknownResource(f"no file {relative!r} on volume {volume!r}") from None

    def list_files(self, volume: str, path: str = "") -> list[FileInfo]:
        target, relative = self._path(volume, path)
        try:
            names = sorted(os.listdir(target))
        except FileNotFoundError:
            raise UnknownResource(f"no folder {relative!r} on volume {volume!r}") from None
        except NotADirectoryError:
            raise InvalidRequest(f"{relative!r} on volume {volume!r} is a file") from None
        infos = []
        real_root = os.path.realpath(self._volume_root(volume))
        for name in names:
            if TEMP_MARK in name:
                continue
            entry = target / name
            real = os.path.realpath(entry)
            if real != real_root and not real.startswith(real_root + os.sep):
                continue  # a link out of the volume: not even its size or age is shown
            with contextlib.suppress(FileNotFoundError):
                infos.append(self._info(entry, f"{relative}/{name}".lstrip("/")))
        return infos

    def open_read(self, volume: str, path: str) -> BinaryIO:
        target, relative = self._path(volume, path)
        try:
            return target.open("rb")
        except FileNotFoundError:
            raise UnknownResource(f"no file {relative!r} on volume {volume!r}") from None
        except IsADirectoryError:
            raise InvalidRequest(f"{relative!r} on volume {volume!r} is a folder") from None

    @property
    def ledger_dir(self) -> Path:
        """Where the quota ledgers live: every gateway process writing to these volumes
        must see the same folder (the state folder by default)."""
        return self.context.state_dir / "quota-ledgers"

    def _ledger(self, volume: str) -> QuotaLedger:
        root = self._volume_root(volume)
        return QuotaLedger(self.ledger_dir, volume, lambda: used_bytes(root))

    def reserved_bytes(self, volume: str) -> int:
        """Bytes reserved by writes in flight on the volume."""
        ledger = self._ledger(checked_name(volume, "volume"))
        try:
            return ledger.reserved()
        finally:
            ledger.close()

    def _check_free_space(self, volume: str, what: str, needed: int) -> None:
        """QuotaExceeded (507) before the first byte when the file system under the
        volume cannot hold ``needed`` more bytes, whatever the volume's quota says."""
        if needed <= 0:
            return
        usage = os.statvfs(self._volume_root(volume))
        free = usage.f_bavail * usage.f_frsize
        if needed > free:
            raise QuotaExceeded(
                f"{what}: {needed} bytes do not fit in the {free} bytes free on the "
                "volume's file system"
            )

    @contextlib.contextmanager
    def open_write(
        self, volume: str, path: str, *, overwrite: bool = True, size: int | None = None
    ) -> Iterator[BinaryIO]:
        """``size``, when known, is reserved against the quota before the first byte."""
        target, relative = self._path(volume, path)
        if not relative:
            raise InvalidRequest("a file path on the volume is needed, not its root")
        what = f"writing {relative!r} on volume {volume!r}"
        if target.is_dir():
            raise InvalidRequest(f"{what}: it is a folder")
        if not overwrite and os.path.lexists(target):
            raise InvalidState(f"{what}: the file exists and overwriting was not asked for")
        _, quota = self._volume_record(volume)
        ledger = None if quota is None else self._ledger(volume)
        credit = target.stat().st_size if overwrite and target.is_file() else 0
        if size is not None:
            self._check_free_space(volume, what, size - credit)
        target.parent.mkdir(parents=True, exist_ok=True)
        temp = target.with_name(f".{target.name}{TEMP_MARK}{uuid.uuid4().hex[:12]}")

        def commit() -> int:
            """The temp file becomes the target; returns the bytes this adds."""
            try:
                replaced = target.stat().st_size if target.is_file() else 0
            except FileNotFoundError:
                replaced = 0
            if overwrite:
                os.replace(temp, target)
            else:
                try:
                    os.link(temp, target)  # create, never replace
                except FileExistsError:
                    raise InvalidState(f"{what}: the file appeared meanwhile") from None
                temp.unlink()
            return stream.written - replaced

        stream = None
        try:
            with temp.open("xb") as raw:
                stream = _QuotaStream(
                    raw, what, ledger, quota=quota or 0, size=size, target=target, temp=temp,
                    credit=credit,
                )  # fmt: skip
                yield stream  # type: ignore[misc]
                raw.flush()
                os.fsync(raw.fileno())
            if ledger is None:
                commit()
            else:
                free = ledger.settle(stream.key, stream.written, quota or 0, commit)
                if free >= 0:
                    raise QuotaExceeded(
                        f"{what}: the volume's quota of {quota} bytes would be exceeded "
                        f"({stream.written} bytes written, {free} free)"
                    )
        except OSError as exc:
            self._abandon(ledger, stream, temp)
            raise InvalidRequest(f"{what}: {exc.strerror or exc}") from exc
        except BaseException:
            self._abandon(ledger, stream, temp)
            raise
        finally:
            if ledger is not None:
                ledger.close()

    @staticmethod
    def _abandon(ledger: QuotaLedger | None, stream: _QuotaStream | None, temp: Path) -> None:
        """A failed write: no temp file, no reservation left behind."""
        temp.unlink(missing_ok=True)
        if ledger is not None and stream is not None:
            ledger.release(stream.key)

    def delete(self, volume: str, path: str) -> None:
        target, relative = self._path(volume, path)
        if not relative:
            raise InvalidRequest("deleting a volume's root: delete the volume instead")
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        else:
            try:
                target.unlink()
            except FileNotFoundError:
                raise UnknownResource(f"no file {relative!r} on volume {volume!r}") from None

    def copy_in(self, volume: str, path: str, local: Path, *, overwrite: bool = True) -> int:
        with (
            local.open("rb") as source,
            self.open_write(
                volume, path, overwrite=overwrite, size=os.fstat(source.fileno()).st_size
            ) as out,
        ):
            return _pump(source, out)

    def copy_out(self, volume: str, path: str, local: Path) -> int:
        temp = local.with_name(f".{local.name}{TEMP_MARK}{uuid.uuid4().hex[:12]}")
        try:
            with self.open_read(volume, path) as source, temp.open("xb") as out:
                copied = _pump(source, out)
            os.replace(temp, local)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        return copied


class JsonVolumeRecords:
    """VO and quota of each volume in ``<records_dir>/<volume>.json``, one file per
    volume created exclusively (so a name is taken once), replaced atomically."""

    records_dir: Path

    def _meta(self, name: str) -> Path:
        return self.records_dir / f"{name}.json"

    def _volume_record(self, name: str) -> tuple[str, int | None]:
        try:
            record = json.loads(self._meta(name).read_text())
        except FileNotFoundError:
            raise UnknownResource(f"no volume {name!r}") from None
        return record["vo"], record.get("quota_bytes")

    def _volume_names(self) -> list[str]:
        if not self.records_dir.is_dir():
            return []
        return [p.stem for p in self.records_dir.glob("*.json")]

    def _set_quota(self, name: str, quota_bytes: int | None) -> None:
        vo, _ = self._volume_record(name)
        self._write_record(name, vo, quota_bytes, new=False)

    def _write_record(self, name: str, vo: str, quota: int | None, *, new: bool) -> None:
        self.records_dir.mkdir(parents=True, exist_ok=True)
        meta = self._meta(name)
        temp = meta.with_name(f".{meta.name}{TEMP_MARK}{uuid.uuid4().hex[:12]}")
        temp.write_text(json.dumps({"vo": vo, "quota_bytes": quota}))
        if new:
            try:
                os.link(temp, meta)
            except FileExistsError:
                raise InvalidState(f"volume {name!r} exists already") from None
            finally:
                temp.unlink(missing_ok=True)
        else:
            os.replace(temp, meta)


def _pump(source: BinaryIO, out: BinaryIO) -> int:
    """Copy in bounded chunks (never the whole file in memory)."""
    total = 0
    buffer = bytearray(CHUNK)
    view = memoryview(buffer)
    while n := source.readinto(view):  # type: ignore[attr-defined]
        out.write(view[:n])
        total += n
    return total
