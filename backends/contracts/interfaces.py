"""The contracts between the gateway and the backends that do the work.

Each backend kind is an abstract class; implementations are registered as entry points
(``xtreemgate.backends``, named ``<kind>.<name>``) and built with the gateway's settings
and a :class:`BackendContext`. Methods a thin implementation does not support yet raise
:class:`NotSupported`, which front ends turn into the standard's "unsupported" answer.
"""

from __future__ import annotations

import abc
import os
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO, ClassVar, Generic, Protocol, TypeVar, runtime_checkable

from backends.contracts.model import (
    FileInfo,
    HealthReport,
    ImageTemplate,
    JobSpec,
    JobStatus,
    LocalAccount,
    NetworkInfo,
    NetworkSpec,
    PolicyDecision,
    Principal,
    Resource,
    StorageInfo,
    StorageSpec,
    VMInfo,
    VMSpec,
    Volume,
    VOMembership,
)
from backends.contracts.settings import Section


class BackendError(Exception):
    """A backend could not do what was asked; the message says why, for a person."""


class BackendUnavailable(BackendError):
    """The infrastructure behind a backend cannot be reached (front ends answer 503)."""


class PartlySubmitted(BackendError):
    """``submit_many`` started some of the jobs, then failed: submitting the same
    activities again returns the started ones' ids and does not start them twice, so the
    caller hands each over again on its own rather than failing them all."""


class NotSupported(BackendError):
    """This backend does not implement the operation."""


class UnknownResource(BackendError):
    """No job, VM, volume or network has that id here (front ends answer 404 / unknown id)."""


class InvalidSpec(BackendError, ValueError):
    """What was asked cannot be built as given: an unknown size or image template, a bad
    name or address (front ends answer 400 with the message). ``field`` names the
    JobSpec/VMSpec field at fault when there is one (``queue``, ``stage_in``...), so a
    front end can name its own element for it."""

    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(message)
        self.field = field


class InvalidState(BackendError):
    """The operation does not apply in the resource's current state (409, BES
    CantApplyOperationToCurrentState)."""


class InvalidRequest(BackendError):
    """The request itself is wrong: a bad name, a document failing its schema (400)."""


class PermissionDenied(BackendError):
    """The caller may not do this; the message is the policy decision's reason (403)."""


class DirectoryAccount(Protocol):
    """A person the site directory knows."""

    def local_account(self) -> LocalAccount | None:
        """Their own POSIX account, if the directory holds one."""


class SiteDirectory(Protocol):
    """What a plugin may ask of the site's directory (``adapters.ldap.Directory`` is one):
    the VO plugin maps users to their own accounts and VOs to pools of accounts with it."""

    def user_by_uid(self, uid: str) -> DirectoryAccount | None:
        """The directory's user with that uid, or None."""

    def pool_accounts(self, vo: str) -> list[LocalAccount]:
        """The accounts the VO's members may lease; [] if the directory has none."""


SettingsT = TypeVar("SettingsT")


@dataclass(frozen=True)
class BackendContext(Generic[SettingsT]):
    """What every backend may use: the SQL store's engine, its own state folder, its
    settings (its class's ``settings`` model, read from the section ``section``) and the
    site directory when ``[ldap]`` names one."""

    engine: Any  # sqlalchemy.Engine
    state_dir: Path
    settings: SettingsT | None = None  # None: every default of the plugin's model
    directory: SiteDirectory | None = None


class Backend(abc.ABC):
    """Common to all backends: a kind, a name, a health check, a clean shutdown.

    A plugin's configuration is its class's ``settings``: a :class:`Section` model that the
    gateway validates as the config section at the dotted key path ``section`` (default:
    the kind, e.g. ``[execution]``; ``"execution.site"`` is ``[execution.site]``). Plugins
    of one kind may declare the same section: the gateway joins their models into one
    (a key two models declare must come from one shared class). None: no settings."""

    kind: ClassVar[str]
    name: ClassVar[str]
    section: ClassVar[str]
    settings: ClassVar[type[Section] | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "kind" in cls.__dict__ and "section" not in cls.__dict__:
            cls.section = cls.kind

    def __init__(self, context: BackendContext) -> None:
        self.context = context

    @abc.abstractmethod
    def health(self) -> HealthReport:
        """Try the infrastructure for real (cheaply) and say whether it works."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections and threads."""


class ExecutionBackend(Backend):
    kind = "execution"

    def submit(self, activity_id: str, job: JobSpec, account: LocalAccount | None) -> str:
        """Start a job; returns the backend's own id for it.

        Idempotent per ``activity_id``: the gateway hands an activity over again when the
        process that handed it over died before writing the backend's id (kill -9, host
        crash), possibly from another process at the same time. A job started already
        for that activity must be found and its id returned, never started twice; one
        half-submitted is completed. The same holds for ``submit_many``."""
        raise NotSupported(f"{self.name} cannot submit jobs yet")

    def submit_many(
        self, jobs: Sequence[tuple[str, JobSpec]], account: LocalAccount | None
    ) -> list[str]:
        """Start several jobs handed over together (a parameter sweep); returns their
        backend ids in order. A batch system overrides this to submit them as one unit
        (Slurm: one job array); the default submits them one by one."""
        return [self.submit(activity_id, job, account) for activity_id, job in jobs]

    def status(self, backend_ids: Sequence[str]) -> dict[str, JobStatus]:
        """Statuses of many jobs in one call (one poll for all, not one per job).

        Ids the backend does not know are left out of the answer (rather than failing the
        whole batch), so the caller can answer "unknown activity" for each of them."""
        raise NotSupported(f"{self.name} cannot report job status yet")

    def terminate(self, backend_id: str) -> None:
        """Stop the job for good (BES TerminateActivities); it ends Cancelled."""
        raise NotSupported(f"{self.name} cannot terminate jobs yet")

    # Unix-like job control beyond BES, offered through the gateway's own REST API.
    def suspend(self, backend_id: str) -> None:
        raise NotSupported(f"{self.name} cannot suspend jobs")

    def resume(self, backend_id: str) -> None:
        raise NotSupported(f"{self.name} cannot resume jobs")

    def signal(self, backend_id: str, signum: int) -> None:
        raise NotSupported(f"{self.name} cannot send signals to jobs")

    def requeue(self, backend_id: str) -> None:
        """Put a running or ended job back in the queue to run again from the start
        (same backend id); its ended state is no longer final."""
        raise NotSupported(f"{self.name} cannot requeue jobs")

    def admit(self, job: JobSpec) -> None:
        """Refuse, before anything is recorded, a job this backend will not take: a queue
        hint it cannot honour (InvalidSpec, naming the queues there are), a staging URL it
        will refuse at run time (a ``file:`` URL where file staging is off or outside its
        roots: InvalidSpec with ``field`` ``stage_in``/``stage_out``), or any job while
        its infrastructure is down and the site chose to refuse then (BackendUnavailable).
        The default knows no queues, so a hint is refused rather than silently ignored:
        the job might need that queue."""
        if job.queue:
            raise InvalidSpec(
                f"the {self.name} execution backend has no queues: leave out the queue "
                f"hint {job.queue!r}",
                field="queue",
            )

    def resources(self) -> dict[str, Any]:
        """What the execution resource offers (CPUs, memory, OS, architecture)."""
        raise NotSupported(f"{self.name} cannot describe its resources yet")


class VMBackend(Backend):
    """Hypervisors: VMs, their disks (storage) and networks, and the devices linking them.

    Ids are the gateway's (UUID strings), chosen by the caller, so that a record can be
    written before the hypervisor is asked and found again after a crash. States are the
    OCCI Infrastructure words (``backends.contracts.model.VM_STATES``…), read from the hypervisor.
    A missing id raises :class:`UnknownResource`; an action that the current state does
    not allow raises :class:`InvalidState`; an unreachable host :class:`BackendUnavailable`.
    """

    kind = "vm"

    # -- compute -----------------------------------------------------------------------
    def use_storage(self, storage: StorageBackend) -> None:
        """The storage backend whose volume URLs may be os_tpl images; wired once at
        start. A VM backend that takes no images from volumes ignores it."""

    def create(self, vm_id: str, spec: VMSpec) -> VMInfo:
        """Define the VM on the host chosen by placement, and start it."""
        raise NotSupported(f"{self.name} cannot create VMs yet")

    def describe(self, vm_ids: Iterable[str] | None = None) -> dict[str, VMInfo]:
        """Current facts of many VMs in one call (all when ``vm_ids`` is None)."""
        raise NotSupported(f"{self.name} cannot report VM state yet")

    def act(self, vm_id: str, action: str, method: str = "", **params: str) -> VMInfo:
        """start | stop | restart | suspend | save (OCCI compute actions, their methods);
        ``save`` takes ``name`` and leaves a new image template behind whose id is that
        name (method ``deferred``: once the VM stops)."""
        raise NotSupported(f"{self.name} cannot act on VMs yet")

    def update(self, vm_id: str, spec: VMSpec) -> VMInfo:
        """Change cores/memory/hostname (applied at next start where the host needs it).
        ``spec`` is the whole new definition, not a patch: merge with describe() first."""
        raise NotSupported(f"{self.name} cannot update VMs yet")

    def delete(self, vm_id: str) -> None:
        """Destroy and undefine the VM and the disks created for it."""
        raise NotSupported(f"{self.name} cannot delete VMs yet")

    def templates(self) -> list[ImageTemplate]:
        """Images a VM can be created from (OCCI os_tpl)."""
        raise NotSupported(f"{self.name} has no image templates")

    # -- storage (OCCI storage: a volume on a host's pool) ------------------------------
    def create_storage(self, storage_id: str, spec: StorageSpec) -> StorageInfo:
        raise NotSupported(f"{self.name} cannot create storage yet")

    def describe_storage(self, ids: Iterable[str] | None = None) -> dict[str, StorageInfo]:
        raise NotSupported(f"{self.name} cannot report storage yet")

    def act_storage(self, storage_id: str, action: str) -> StorageInfo:
        """online | offline."""
        raise NotSupported(f"{self.name} cannot act on storage yet")

    def delete_storage(self, storage_id: str) -> None:
        raise NotSupported(f"{self.name} cannot delete storage yet")

    # -- networks ------------------------------------------------------------------------
    def create_network(self, network_id: str, spec: NetworkSpec) -> NetworkInfo:
        raise NotSupported(f"{self.name} cannot create networks yet")

    def describe_networks(self, ids: Iterable[str] | None = None) -> dict[str, NetworkInfo]:
        raise NotSupported(f"{self.name} cannot report networks yet")

    def act_network(self, network_id: str, action: str) -> NetworkInfo:
        """up | down."""
        raise NotSupported(f"{self.name} cannot act on networks yet")

    def delete_network(self, network_id: str) -> None:
        raise NotSupported(f"{self.name} cannot delete networks yet")

    # -- links (devices in a domain) -----------------------------------------------------
    def attach_storage(self, link_id: str, vm_id: str, storage_id: str, device: str = "") -> str:
        """A storagelink: the disk appears in the VM; returns the device name used."""
        raise NotSupported(f"{self.name} cannot attach storage yet")

    def attach_network(
        self, link_id: str, vm_id: str, network_id: str, mac: str = "", address: str = ""
    ) -> str:
        """A networkinterface: returns the MAC address of the new interface."""
        raise NotSupported(f"{self.name} cannot attach networks yet")

    def detach(self, link_id: str) -> None:
        raise NotSupported(f"{self.name} cannot detach devices yet")


class QuotaExceeded(InvalidRequest):
    """A write would take a volume past its quota; nothing of it was kept (413/400)."""


class StorageBackend(Backend):
    """Volumes owned by a VO (with an optional quota), and the file operations the
    gateway needs on them. Volume names are unique within one backend; file paths are
    relative to the volume's root ('/'-separated, never '..'). A missing volume or file
    raises :class:`UnknownResource`; a bad name or path :class:`InvalidRequest`; a write
    past the quota :class:`QuotaExceeded`, leaving no partial file behind.

    ``scheme`` is the URL scheme naming files on this backend's volumes
    (``file``, ``glusterfs``, ``xtreemfs``; see ``backends.contracts.volume_urls``).
    """

    kind = "storage"
    scheme: ClassVar[str] = ""

    # -- volumes -------------------------------------------------------------------------
    def create_volume(self, name: str, vo: str, quota_bytes: int | None) -> Volume:
        raise NotSupported(f"{self.name} cannot create volumes yet")

    def list_volumes(self, vo: str | None = None) -> list[Volume]:
        raise NotSupported(f"{self.name} cannot list volumes yet")

    def volume(self, name: str) -> Volume:
        """One volume with its current usage."""
        raise NotSupported(f"{self.name} cannot describe volumes yet")

    def volume_vo(self, name: str) -> str:
        """The VO owning the volume, without measuring its usage (what authorising a file
        operation needs; ``volume()`` walks the whole tree to count the bytes)."""
        return self.volume(name).vo

    def resize_volume(self, name: str, quota_bytes: int | None) -> Volume:
        """A new quota (None: unlimited); below the current usage it is refused."""
        raise NotSupported(f"{self.name} cannot resize volumes yet")

    def delete_volume(self, name: str) -> None:
        raise NotSupported(f"{self.name} cannot delete volumes yet")

    # -- files ---------------------------------------------------------------------------
    def stat(self, volume: str, path: str) -> FileInfo:
        raise NotSupported(f"{self.name} cannot stat files yet")

    def list_files(self, volume: str, path: str = "") -> list[FileInfo]:
        """The entries of a folder on the volume, sorted by name."""
        raise NotSupported(f"{self.name} cannot list files yet")

    def open_read(self, volume: str, path: str) -> BinaryIO:
        """A binary stream of the file (the caller closes it)."""
        raise NotSupported(f"{self.name} cannot read files yet")

    def open_write(
        self, volume: str, path: str, *, overwrite: bool = True, size: int | None = None
    ) -> AbstractContextManager[BinaryIO]:
        """A stream whose bytes become the file only when the ``with`` block ends
        without an exception; otherwise nothing is left behind. Missing folders are
        created. ``overwrite=False`` refuses an existing file (InvalidState). ``size``,
        when the caller knows it, lets a quota refuse the write before its first byte."""
        raise NotSupported(f"{self.name} cannot write files yet")

    def delete(self, volume: str, path: str) -> None:
        """Remove a file, or a folder with everything in it."""
        raise NotSupported(f"{self.name} cannot delete files yet")

    def copy_in(self, volume: str, path: str, local: Path, *, overwrite: bool = True) -> int:
        """Copy the local file onto the volume (streamed); returns the bytes copied."""
        raise NotSupported(f"{self.name} cannot copy files in yet")

    def copy_out(self, volume: str, path: str, local: Path) -> int:
        """Copy a file of the volume to a local file (streamed, placed atomically)."""
        raise NotSupported(f"{self.name} cannot copy files out yet")

    def local_root(self, volume: str) -> Path:
        """The folder where the volume's files are visible on this host (mounting it if
        needed): processes started here (job staging) read and write under it with
        their own account's rights."""
        raise NotSupported(f"{self.name} cannot show volumes as local folders")

    def url(self, volume: str, path: str = "") -> str:
        """The URL naming ``path`` on ``volume`` (for JSDL staging and OCCI os_tpl)."""
        raise NotSupported(f"{self.name} cannot name files by URL yet")

    def resolve(self, url: str) -> tuple[str, str]:
        """(volume, path) of a URL naming a file on one of this backend's volumes."""
        raise NotSupported(f"{self.name} cannot resolve URLs yet")

    def local_file(self, url: str, what: str = "file") -> Path:
        """The local path of the file a volume URL names (the volume mounted if needed), for
        a process on this host to read (a hypervisor reading an image); never a path
        outside the volume (a symlink on the volume pointing elsewhere is refused).
        UnknownResource when the file is gone."""
        volume, path = self.resolve(url)
        if not path:
            raise InvalidRequest(f"{what} URL {url!r} names a volume, not a {what} file on it")
        root = os.path.realpath(self.local_root(volume))
        real = os.path.realpath(os.path.join(root, path))
        if not real.startswith(root + os.sep):
            raise InvalidRequest(f"{what} URL {url!r} leads outside volume {volume!r}")
        if not os.path.isfile(real):
            raise UnknownResource(f"{what} {path!r} is no longer on volume {volume!r}")
        return Path(real)


class VOBackend(Backend):
    kind = "vo"

    @abc.abstractmethod
    def decide(self, principal: Principal, action: str, resource: Resource) -> PolicyDecision:
        """May ``principal`` do ``action`` on ``resource``? Default deny, always a reason."""

    def account_for(self, principal: Principal, vo: str = "", role: str = "") -> LocalAccount:
        """The local POSIX account the principal's work runs as."""
        raise NotSupported(f"{self.name} cannot map accounts yet")

    def memberships_of(self, principal: str) -> tuple[VOMembership, ...]:
        """The principal's active, unexpired, unsuspended VO memberships."""
        return ()

    def membership_epoch(self, principal: str) -> int:
        """A counter that grows whenever something is taken away from the principal;
        VO tokens issued at an older epoch are refused."""
        return 0

    def cached_epoch(self, principal: str) -> int | None:
        """:meth:`membership_epoch` when it can be answered without the store, else None
        (a token check on the hot path asks this first)."""
        return None

    def record(
        self,
        category: str,
        principal: Principal | str,
        action: str,
        resource: Resource | None = None,
        **details: Any,
    ) -> None:
        """Append an accounting/audit record ("execution" or "data"); default: none kept."""


@runtime_checkable
class VOAdministration(Protocol):
    """What the VO REST API (gateway/vo) asks of a VO backend that manages VOs itself
    (the ``sql`` one). Refusals are InvalidRequest (400), PermissionDenied (403),
    UnknownResource (404) and InvalidState (409); dates are aware UTC datetimes."""

    # VOs, groups, roles, managers
    def create_vo(
        self, name: str, *, description: str = "", creator: str = "", managers: list[str] = ...
    ) -> dict[str, Any]: ...
    def list_vos(self) -> list[dict[str, Any]]: ...
    def get_vo(self, name: str) -> dict[str, Any]: ...
    def delete_vo(self, name: str) -> None: ...
    def add_group(self, vo: str, path: str, description: str = "") -> str: ...
    def remove_group(self, vo: str, path: str) -> None: ...
    def add_role(self, vo: str, role: str, description: str = "") -> str: ...
    def remove_role(self, vo: str, role: str) -> None: ...
    def add_manager(self, vo: str, principal: str) -> None: ...
    def remove_manager(self, vo: str, principal: str) -> None: ...

    # members: requested | active | suspended (| expired, derived)
    def add_member(self, vo: str, principal: str, **details: Any) -> dict[str, Any]: ...
    def update_member(self, vo: str, principal: str, **changes: Any) -> dict[str, Any]: ...
    def remove_member(self, vo: str, principal: str, group: str | None = None) -> int: ...
    def list_members(self, vo: str, status: str | None = None) -> list[dict[str, Any]]: ...
    def member(self, vo: str, principal: str) -> list[dict[str, Any]]: ...
    def membership_expiry(self, principal: str) -> datetime | None: ...

    # resources owners offer to VOs
    def register_resource(
        self, vo: str, kind: str, resource_id: str, owner: str
    ) -> dict[str, Any]: ...
    def unregister_resource(self, vo: str, kind: str, resource_id: str) -> None: ...
    def resource_owner(self, kind: str, resource_id: str) -> str: ...
    def list_resources(self, vo: str) -> list[dict[str, Any]]: ...

    # versioned policies (level: owner | vo | user)
    def put_policy(
        self, level: str, scope: str, document: Any, *, author: str = "", comment: str = ""
    ) -> dict[str, Any]: ...
    def get_policy(self, level: str, scope: str, version: int | None = None) -> dict[str, Any]: ...
    def policy_history(self, level: str, scope: str) -> list[dict[str, Any]]: ...

    # tokens, accounting
    def revocations(self, window_seconds: int) -> dict[str, int]: ...
    def usage(
        self, vo: str, since: datetime | None = None, until: datetime | None = None
    ) -> list[Any]: ...
    def audit_records(
        self, *, vo: str | None = None, limit: int = 100, before_id: int | None = None
    ) -> list[Any]: ...


BACKEND_KINDS: dict[str, type[Backend]] = {
    "execution": ExecutionBackend,
    "vm": VMBackend,
    "storage": StorageBackend,
    "vo": VOBackend,
}
