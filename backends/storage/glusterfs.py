"""GlusterFS volumes, driven through ``gluster --mode=script ... --xml`` and FUSE mounts.

One GlusterFS volume per gateway volume, on bricks under ``brick_root`` on ``server``
(``replica`` bricks each). The owning VO and the quota the gateway enforces are kept on
the volume itself as the options ``user.xtreemgate-vo`` and ``user.xtreemgate-quota``, so
every gateway instance sees the same and volumes without them (not ours) are never
listed or touched. The quota is also set with ``gluster volume quota`` as a backstop.
Files are reached through a FUSE mount under ``mount_root``; everything else is the
shared directory code (``backends.storage.directory_volume``).
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import xml.etree.ElementTree as ET
from pathlib import Path

from backends.contracts import volume_urls as urls
from backends.contracts.interfaces import (
    BackendContext,
    BackendError,
    BackendUnavailable,
    InvalidState,
    UnknownResource,
)
from backends.contracts.model import HealthReport, Volume
from backends.storage import commands
from backends.storage.directory_volume import DirectoryVolumes, checked_name
from backends.storage.settings import StorageSettings

VO_OPTION = "user.xtreemgate-vo"
QUOTA_OPTION = "user.xtreemgate-quota"


def parse_reply(text: str, what: str) -> ET.Element:
    """The ``<cliOutput>`` of ``--xml``; BackendError with ``opErrstr`` when it failed."""
    try:
        root = ET.fromstring(text)  # noqa: S314 - output of the local gluster CLI
    except ET.ParseError as exc:
        raise BackendError(f"{what}: gluster gave no XML answer ({exc})") from exc
    if (root.findtext("opRet") or "0").strip() != "0":
        reason = (root.findtext("opErrstr") or "").strip() or "no reason given"
        raise BackendError(f"{what}: {reason}")
    return root


def parse_volumes(root: ET.Element) -> dict[str, dict[str, str]]:
    """``volume info --xml``: name -> its options (plus ``status`` and ``type``)."""
    volumes: dict[str, dict[str, str]] = {}
    for volume in root.iter("volume"):
        name = volume.findtext("name")
        if not name:
            continue
        options = {
            o.findtext("name") or "": o.findtext("value") or ""
            for o in volume.iterfind("options/option")
        }
        options["status"] = volume.findtext("statusStr") or ""
        options["type"] = volume.findtext("typeStr") or ""
        volumes[name] = options
    return volumes


class GlusterStorageBackend(DirectoryVolumes):
    name = "glusterfs"
    scheme = "glusterfs"
    settings = StorageSettings

    def __init__(self, context: BackendContext[StorageSettings]) -> None:
        super().__init__(context)
        self.options = StorageSettings.of(context.settings)

    # -- settings ----------------------------------------------------------------------------
    @property
    def server(self) -> str:
        return self.options.server or socket.gethostname()

    @property
    def brick_root(self) -> Path:
        return Path(self.options.brick_root or self.context.state_dir / "glusterfs-bricks")

    @property
    def mount_root(self) -> Path:
        return Path(self.options.mount_root or self.context.state_dir / "glusterfs-mounts")

    @property
    def replica(self) -> int:
        return self.options.replica

    def gluster(self, *args: str, what: str) -> ET.Element:
        gluster = commands.tool("gluster", self.options.gluster)
        out = commands.run([gluster, "--mode=script", *args, "--xml"], what=what)
        return parse_reply(out, what)

    # -- records -----------------------------------------------------------------------------
    def _ours(self, name: str | None = None) -> dict[str, dict[str, str]]:
        root = self.gluster("volume", "info", name or "all", what="listing GlusterFS volumes")
        return {n: o for n, o in parse_volumes(root).items() if VO_OPTION in o}

    def _volume_record(self, name: str) -> tuple[str, int | None]:
        try:
            options = self._ours(name).get(name)
        except BackendError:
            options = None  # gluster answers "Volume x does not exist" as a failure
        if options is None:
            raise UnknownResource(f"no volume {name!r}")
        quota = options.get(QUOTA_OPTION, "")
        return options[VO_OPTION], int(quota) if quota.isdigit() else None

    def _volume_names(self) -> list[str]:
        return list(self._ours())

    def _volume_root(self, name: str) -> Path:
        mountpoint = self.mount_root / name
        argv = ["mount", "-t", "glusterfs", f"{self.server}:/{name}", str(mountpoint)]
        what = f"mounting GlusterFS volume {name}"
        return commands.ensure_mounted(mountpoint, argv, what, self._mounted)

    def health(self) -> HealthReport:
        try:
            root = self.gluster("volume", "list", what="asking glusterd")
        except BackendError as exc:
            return HealthReport(False, str(exc))
        count = len(root.findall(".//volList/volume"))
        return HealthReport(True, f"glusterd on {self.server} answers", {"volumes": count})

    # -- volumes -----------------------------------------------------------------------------
    def create_volume(self, name: str, vo: str, quota_bytes: int | None) -> Volume:
        checked_name(name, "volume")
        checked_name(vo, "VO")
        self._check_quota(quota_bytes)
        what = f"creating GlusterFS volume {name}"
        bricks = [self.brick_root / name / f"b{i}" for i in range(self.replica)]
        if (self.brick_root / name).exists():
            raise InvalidState(f"volume {name!r} exists already (its brick folder is there)")
        layout = ["replica", str(self.replica)] if self.replica > 1 else []
        for brick in bricks:
            brick.mkdir(parents=True)
        try:
            spec = [f"{self.server}:{b}" for b in bricks]
            self.gluster("volume", "create", name, *layout, *spec, "force", what=what)
        except BackendError as exc:
            shutil.rmtree(self.brick_root / name, ignore_errors=True)
            if "already exists" in str(exc):
                raise InvalidState(f"volume {name!r} exists already") from None
            raise
        try:
            self.gluster("volume", "set", name, VO_OPTION, vo, what=what)
            self.gluster("volume", "start", name, what=what)
            if quota_bytes is not None:
                self._set_quota(name, quota_bytes)
        except BaseException:
            self._destroy(name)
            raise
        return self.volume(name)

    def _set_quota(self, name: str, quota_bytes: int | None) -> None:
        what = f"setting the quota of GlusterFS volume {name}"
        if quota_bytes is None:
            # gluster cannot reset a user.* option; "none" reads back as no quota
            self.gluster("volume", "set", name, QUOTA_OPTION, "none", what=what)
            with contextlib.suppress(BackendError):  # not enabled: nothing to lift
                self.gluster("volume", "quota", name, "remove", "/", what=what)
            return
        self.gluster("volume", "set", name, QUOTA_OPTION, str(quota_bytes), what=what)
        try:
            self.gluster("volume", "quota", name, "enable", what=what)
        except BackendError as exc:
            if "already enabled" not in str(exc):
                raise
        # in KB, rounded up: gluster's own limit is the backstop; the gateway's is exact
        kb = f"{-(-quota_bytes // 1024)}KB"
        self.gluster("volume", "quota", name, "limit-usage", "/", kb, what=what)

    def delete_volume(self, name: str) -> None:
        checked_name(name, "volume")
        self._volume_record(name)  # ours, or UnknownResource
        self._destroy(name)

    def _destroy(self, name: str) -> None:
        """Unmount, stop, delete, remove the bricks: as far as it goes, then the error."""
        what = f"deleting GlusterFS volume {name}"
        commands.unmount(self.mount_root / name)
        with contextlib.suppress(BackendError):  # not started: nothing to stop
            self.gluster("volume", "stop", name, "force", what=what)
        self.gluster("volume", "delete", name, what=what)
        shutil.rmtree(self.brick_root / name, ignore_errors=True)

    # -- URLs --------------------------------------------------------------------------------
    def url(self, volume: str, path: str = "") -> str:
        checked_name(volume, "volume")
        return str(urls.VolumeURL("glusterfs", self.server, volume, urls.clean_path(path)))

    def resolve(self, url: str) -> tuple[str, str]:
        parsed = self._parse_own(url, "a GlusterFS")
        if parsed.host.split(":")[0] not in (self.server.lower(), "localhost"):
            raise BackendUnavailable(
                f"URL {url!r} names GlusterFS server {parsed.host!r}; "
                f"this gateway uses {self.server!r}"
            )
        return parsed.volume, parsed.path
