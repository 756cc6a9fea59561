"""XtreemFS volumes, driven through the documented tools: ``mkfs.xtreemfs``,
``lsfs.xtreemfs`` and ``rmfs.xtreemfs`` against the MRC, ``mount.xtreemfs`` against the
DIR, and ``xtfsutil`` on the mount for the default replication policy.

Thin on purpose: the command lines are built and the answers parsed by the pure
functions below (unit-tested); running them, mounting, and every file operation go
through the same code as GlusterFS (``backends.storage.commands``, ``.tree``). The VO and
quota of each volume are kept in the gateway's state folder (the XtreemFS tools offer no
way to read volume attributes back); the volume's owning group is the VO's name, so
POSIX rights on the mount follow VO membership. The quota is enforced by the gateway.
No XtreemFS can run on the test machines, so only this module's command construction
and output parsing are tested, not a real XtreemFS.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from backends.contracts import volume_urls as urls
from backends.contracts.interfaces import (
    BackendContext,
    BackendError,
    BackendUnavailable,
    InvalidRequest,
    InvalidState,
    UnknownResource,
)
from backends.contracts.model import HealthReport, Volume
from backends.storage import commands
from backends.storage.directory_volume import DirectoryVolumes, JsonVolumeRecords, checked_name
from backends.storage.settings import StorageSettings

REPLICATION_POLICIES = {"none": "NONE", "ronly": "RONLY", "wqrq": "WqRq", "war1": "WaR1"}
LSFS_LINE = re.compile(r"^\t(?P<name>\S+)\t->\t(?P<uuid>\S+)\s*$")


# -- command lines (pure) -----------------------------------------------------------------
def _auth(admin_password: str) -> list[str]:
    return ["--admin_password", admin_password] if admin_password else []


def mkfs_argv(
    tool: str, mrc: str, volume: str, vo: str, *, admin_password: str = "", mode: str = "770"
) -> list[str]:
    """Create ``volume`` on ``mrc`` owned by group ``vo``, POSIX access control."""
    return [
        tool,
        *_auth(admin_password),
        "--owner-groupname",
        vo,
        "--mode",
        mode,
        "--access-control-policy",
        "POSIX",
        "--volume-attribute",
        f"xtreemgate_vo={vo}",
        f"{mrc}/{volume}",
    ]


def lsfs_argv(tool: str, mrc: str, *, admin_password: str = "") -> list[str]:
    return [tool, *_auth(admin_password), mrc]


def rmfs_argv(tool: str, mrc: str, volume: str, *, admin_password: str = "") -> list[str]:
    return [tool, *_auth(admin_password), f"{mrc}/{volume}"]


def mount_argv(tool: str, dir_service: str, volume: str, mountpoint: Path) -> list[str]:
    """``mount.xtreemfs`` takes the DIR (directory service), not the MRC."""
    return [tool, f"{dir_service}/{volume}", str(mountpoint)]


def replication_argv(tool: str, mountpoint: Path, policy: str, factor: int) -> list[str]:
    """``xtfsutil --set-drp``: the default replication policy of the whole volume."""
    key = policy.lower()
    if key not in REPLICATION_POLICIES:
        raise InvalidRequest(
            f"replication policy {policy!r} is not one of {', '.join(REPLICATION_POLICIES)}"
        )
    if key != "none" and factor < 2:
        raise InvalidRequest(f"replication policy {policy} needs a replication factor of 2+")
    argv = [tool, "--set-drp", "--replication-policy", REPLICATION_POLICIES[key]]
    if key != "none":
        argv += ["--replication-factor", str(factor)]
    return [*argv, str(mountpoint)]


def parse_lsfs(text: str) -> dict[str, str]:
    """``lsfs.xtreemfs`` prints one ``\\t<name>\\t->\\t<uuid>`` line per volume between
    its header and ``End of List.``; anything else means the listing failed."""
    if "End of List." not in text:
        said = [line.strip() for line in text.splitlines() if line.strip()]
        raise BackendError(f"lsfs.xtreemfs gave no volume list: {said[-1] if said else ''}")
    found = {}
    for line in text.splitlines():
        match = LSFS_LINE.match(line)
        if match:
            found[match["name"]] = match["uuid"]
    return found


# -- the backend --------------------------------------------------------------------------
class XtreemFSStorageBackend(JsonVolumeRecords, DirectoryVolumes):
    name = "xtreemfs"
    scheme = "xtreemfs"
    settings = StorageSettings

    def __init__(self, context: BackendContext[StorageSettings]) -> None:
        super().__init__(context)
        self.options = StorageSettings.of(context.settings)
        # Admin tool name -> its path; a tool not named here is found on PATH.
        self.tools: dict[str, str] = {}

    @property
    def mrc(self) -> str:
        mrc = self.options.mrc
        if not mrc:
            raise BackendUnavailable("storage.mrc (the XtreemFS MRC, host[:port]) is not set")
        return mrc

    @property
    def dir_service(self) -> str:
        return self.options.dir or self.mrc

    @property
    def mount_root(self) -> Path:
        return Path(self.options.mount_root or self.context.state_dir / "xtreemfs-mounts")

    @property
    def records_dir(self) -> Path:
        return self.context.state_dir / "xtreemfs-volumes"

    @property
    def password(self) -> str:
        return self.options.admin_password

    def _run(self, argv: Sequence[str], what: str) -> str:
        return commands.run(argv, what=what)

    def _tool(self, name: str) -> str:
        return commands.tool(name, self.tools.get(name, ""))

    def _on_mrc(self) -> dict[str, str]:
        argv = lsfs_argv(self._tool("lsfs.xtreemfs"), self.mrc, admin_password=self.password)
        return parse_lsfs(self._run(argv, "listing XtreemFS volumes"))

    def health(self) -> HealthReport:
        try:
            count = len(self._on_mrc())
        except BackendError as exc:
            return HealthReport(False, str(exc))
        return HealthReport(True, f"XtreemFS MRC {self.mrc} answers", {"volumes": count})

    def _volume_names(self) -> list[str]:
        on_mrc = self._on_mrc()
        return [n for n in super()._volume_names() if n in on_mrc]

    def _volume_root(self, name: str) -> Path:
        mountpoint = self.mount_root / name
        argv = mount_argv(self._tool("mount.xtreemfs"), self.dir_service, name, mountpoint)
        what = f"mounting XtreemFS volume {name}"
        return commands.ensure_mounted(mountpoint, argv, what, self._mounted)

    def create_volume(self, name: str, vo: str, quota_bytes: int | None) -> Volume:
        checked_name(name, "volume")
        checked_name(vo, "VO")
        self._check_quota(quota_bytes)
        if name in self._on_mrc():
            raise InvalidState(f"volume {name!r} exists already on MRC {self.mrc}")
        self._write_record(name, vo, quota_bytes, new=True)
        what = f"creating XtreemFS volume {name}"
        try:
            tool = self._tool("mkfs.xtreemfs")
            self._run(mkfs_argv(tool, self.mrc, name, vo, admin_password=self.password), what)
        except BaseException:
            self._meta(name).unlink(missing_ok=True)
            raise
        policy = self.options.replication_policy
        if policy.lower() != "none":
            factor = self.options.replication_factor
            root = self._volume_root(name)
            self._run(replication_argv(self._tool("xtfsutil"), root, policy, factor), what)
        return self.volume(name)

    def delete_volume(self, name: str) -> None:
        checked_name(name, "volume")
        self._volume_record(name)  # ours, or UnknownResource
        commands.unmount(self.mount_root / name, self._tool("umount.xtreemfs"))
        argv = rmfs_argv(self._tool("rmfs.xtreemfs"), self.mrc, name, admin_password=self.password)
        self._run(argv, f"deleting XtreemFS volume {name}")
        self._meta(name).unlink(missing_ok=True)

    def url(self, volume: str, path: str = "") -> str:
        checked_name(volume, "volume")
        return str(urls.VolumeURL("xtreemfs", self.mrc, volume, urls.clean_path(path)))

    def resolve(self, url: str) -> tuple[str, str]:
        parsed = self._parse_own(url, "an XtreemFS")
        if parsed.host != self.mrc.lower():
            raise UnknownResource(f"URL {url!r} names MRC {parsed.host!r}, not {self.mrc!r}")
        return parsed.volume, parsed.path
