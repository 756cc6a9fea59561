"""A POSIX directory tree per VO and volume: the embedded storage backend.

Layout under the root: ``<vo>/<volume>/`` holds the volume's files; ``.volumes/<volume>.json``
records its VO and quota (one file per volume, created exclusively, so a name is taken
once). Quotas are enforced by the gateway on every write (``backends.storage.directory_volume``).
Files are named by ``file://<root>/<vo>/<volume>/<path>`` URLs.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from backends.contracts import volume_urls as urls
from backends.contracts.health import writable_dir
from backends.contracts.interfaces import (
    BackendContext,
    InvalidRequest,
    InvalidState,
    UnknownResource,
)
from backends.contracts.model import HealthReport, Volume
from backends.storage.directory_volume import DirectoryVolumes, JsonVolumeRecords, checked_name
from backends.storage.settings import StorageSettings

META = ".volumes"


class PosixStorageBackend(JsonVolumeRecords, DirectoryVolumes):
    name = "posix"
    scheme = "file"
    settings = StorageSettings

    def __init__(self, context: BackendContext[StorageSettings]) -> None:
        super().__init__(context)
        self.options = StorageSettings.of(context.settings)

    @property
    def root(self) -> Path:
        configured = self.options.root
        return Path(configured) if configured else self.context.state_dir / "volumes"

    def health(self) -> HealthReport:
        return writable_dir(self.root, "volume root")

    @property
    def records_dir(self) -> Path:
        return self.root / META

    @property
    def ledger_dir(self) -> Path:
        """Beside the volume records: every gateway using this root shares the ledgers."""
        return self.root / META

    def _volume_root(self, name: str) -> Path:
        vo, _ = self._volume_record(name)
        return self.root / vo / name

    # -- volumes -----------------------------------------------------------------------------
    def create_volume(self, name: str, vo: str, quota_bytes: int | None) -> Volume:
        checked_name(name, "volume")
        checked_name(vo, "VO")
        self._check_quota(quota_bytes)
        (self.root / META).mkdir(parents=True, exist_ok=True)
        self._write_record(name, vo, quota_bytes, new=True)
        try:
            (self.root / vo).mkdir(mode=0o755, exist_ok=True)
            (self.root / vo / name).mkdir(mode=0o755)
        except OSError as exc:
            self._meta(name).unlink(missing_ok=True)
            raise InvalidState(f"volume {name!r}: {exc.strerror or exc}") from exc
        return self.volume(name)

    def delete_volume(self, name: str) -> None:
        checked_name(name, "volume")
        root = self._volume_root(name)
        self._meta(name).unlink()  # first: the name stops resolving at once
        shutil.rmtree(root, ignore_errors=True)
        (self.root / META / f"{name}.ledger").unlink(missing_ok=True)  # its reservations

    # -- URLs --------------------------------------------------------------------------------
    def url(self, volume: str, path: str = "") -> str:
        root = self._volume_root(checked_name(volume, "volume"))
        return str(urls.VolumeURL("file", "", "", str(root / path) if path else str(root)))

    def resolve(self, url: str) -> tuple[str, str]:
        parsed = self._parse_own(url, "a POSIX")
        root = os.path.realpath(self.root)
        relative = os.path.relpath(os.path.realpath(parsed.path), root)
        parts = relative.split(os.sep)
        if relative.startswith("..") or len(parts) < 2 or parts[0] == META:
            raise InvalidRequest(f"URL {url!r} lies outside the volume root {root}")
        vo, name, rest = parts[0], parts[1], "/".join(parts[2:])
        if self._volume_record(name)[0] != vo:
            raise UnknownResource(f"URL {url!r}: no volume {name!r} of VO {vo!r}")
        return name, rest
