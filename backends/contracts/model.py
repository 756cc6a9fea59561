"""Protocol-neutral types shared by every front end and backend.

They say what is asked (a job, a VM, a volume) and who asks (a principal with VO
memberships), never in which standard it was asked.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class VOMembership:
    """Membership of a principal in a VO (or one of its groups), with its roles."""

    vo: str
    group: str = ""  # "" is the VO's root group; nested groups as "a/b"
    roles: tuple[str, ...] = ()


@dataclass(frozen=True)
class Principal:
    """Who is calling, as established by one authenticator of the chain."""

    name: str  # stable identifier: local user name, Kerberos principal, SAML subject id
    authenticated_by: str  # "basic", "bearer", "negotiate", "saml", "wss", "x509"
    display_name: str = ""
    memberships: tuple[VOMembership, ...] = ()
    attributes: Mapping[str, object] = field(default_factory=dict)
    site_admin: bool = False

    def vos(self) -> list[str]:
        return sorted({m.vo for m in self.memberships})


class Decision(enum.Enum):
    PERMIT = "permit"
    DENY = "deny"


@dataclass(frozen=True)
class PolicyDecision:
    """The answer of ``VOBackend.decide``: permit or deny, and always why."""

    decision: Decision
    reason: str
    vo: str = ""  # the VO through which it was permitted or asked, for accounting

    @property
    def permitted(self) -> bool:
        return self.decision is Decision.PERMIT


@dataclass(frozen=True)
class Resource:
    """Something a principal acts on: an activity, a VM, a volume, a VO."""

    kind: str  # "activity", "compute", "volume", "vo", "factory"
    id: str = ""
    owner: str = ""
    vo: str = ""


@dataclass(frozen=True)
class LocalAccount:
    """A POSIX account a principal's work runs as."""

    username: str
    uid: int
    gid: int
    home: str = ""


class JobState(enum.Enum):
    """Activity states of OGSA-BES, which every execution backend reports in."""

    PENDING = "Pending"
    RUNNING = "Running"
    FINISHED = "Finished"
    FAILED = "Failed"
    CANCELLED = "Cancelled"

    @property
    def terminal(self) -> bool:
        return self in (JobState.FINISHED, JobState.FAILED, JobState.CANCELLED)


@dataclass(frozen=True)
class StagingSpec:
    """One file to copy in before the job or out after it.

    ``filename`` is relative to the job's working directory. Credentials, when the
    submitter gave some for this one transfer (JSDL: a wsse UsernameToken or a bearer
    token in the DataStaging element), are kept out of ``repr`` so logs never show them.
    """

    filename: str
    source: str = ""  # URL, for stage-in
    target: str = ""  # URL, for stage-out
    creation_flag: str = "overwrite"  # overwrite | append | dontOverwrite
    delete_on_termination: bool = True
    username: str = ""  # for this transfer only (HTTP basic auth, FTP login)
    password: str = field(default="", repr=False)
    bearer_token: str = field(default="", repr=False)  # HTTP Authorization: Bearer
    # A storage volume URL (glusterfs:, xtreemfs:) is resolved by the gateway before the
    # job is handed over: the folder where that volume is mounted on the execution host,
    # and the room its quota leaves (None: no quota). Empty for every other URL.
    local_root: str = ""
    free_bytes: int | None = None


@dataclass(frozen=True)
class Bounds:
    """An inclusive interval a backend may choose a value from; ``None`` is unbounded.

    A job spec carries a concrete request (e.g. ``total_cpu_count``) and, when the
    submitter gave a range rather than one value, the range it came from, so that a
    backend with fewer resources can still pick a value the submitter accepts.
    """

    lower: float | None = None
    upper: float | None = None

    def allows(self, value: float) -> bool:
        return (self.lower is None or value >= self.lower) and (
            self.upper is None or value <= self.upper
        )


@dataclass(frozen=True)
class JobSpec:
    """What to run and with what resources, independent of JSDL or any batch system.

    An empty ``executable`` is a data-staging-only job (JSDL allows a job without an
    Application): stage in, stage out, nothing runs in between.
    """

    executable: str
    arguments: tuple[str, ...] = ()
    environment: Mapping[str, str] = field(default_factory=dict)
    working_directory: str = ""
    stdin: str = ""
    stdout: str = ""
    stderr: str = ""
    wall_time_limit: int | None = None  # seconds
    cpu_time_limit: int | None = None  # seconds
    memory_limit: int | None = None  # bytes
    file_size_limit: int | None = None  # bytes
    process_count_limit: int | None = None
    thread_count_limit: int | None = None
    total_cpu_count: int | None = None  # CPUs over all hosts
    exclusive: bool = False
    candidate_hosts: tuple[str, ...] = ()
    stage_in: tuple[StagingSpec, ...] = ()
    stage_out: tuple[StagingSpec, ...] = ()
    spmd_variation: str = ""  # "" (not SPMD) or MPICH2, OpenMPI, ... (GFD.115 names)
    spmd_processes: int | None = None  # None with an SPMD variation: one per granted CPU
    name: str = ""
    # the batch queue (Slurm partition) the submitter asked for; "" = the site's choice
    queue: str = ""
    # -- added for JSDL (GFD.56/GFD.111/GFD.115); every one optional --
    project: str = ""  # jsdl:JobProject (accounting), "" if none
    # POSIX limits beyond the ones above (setrlimit names in the comments)
    virtual_memory_limit: int | None = None  # bytes, RLIMIT_AS
    core_dump_limit: int | None = None  # bytes, RLIMIT_CORE
    data_segment_limit: int | None = None  # bytes, RLIMIT_DATA
    locked_memory_limit: int | None = None  # bytes, RLIMIT_MEMLOCK
    open_descriptors_limit: int | None = None  # RLIMIT_NOFILE
    stack_size_limit: int | None = None  # bytes, RLIMIT_STACK
    # the local account the submitter asked to run as (jsdl-posix:UserName/GroupName);
    # the front end must refuse the job unless the caller may act as that account
    user_name: str = ""
    group_name: str = ""
    # resource requirements (jsdl:Resources): the concrete request, and its range
    total_cpu_count_bounds: Bounds | None = None
    individual_cpu_count: int | None = None  # CPUs on each host
    individual_cpu_count_bounds: Bounds | None = None
    total_resource_count: int | None = None  # hosts
    individual_physical_memory: int | None = None  # bytes per host
    total_physical_memory: int | None = None  # bytes over all hosts
    individual_virtual_memory: int | None = None  # bytes per host
    total_virtual_memory: int | None = None  # bytes over all hosts
    individual_cpu_time: int | None = None  # seconds per host
    total_cpu_time: int | None = None  # seconds over all hosts
    individual_disk_space: int | None = None  # bytes per host
    total_disk_space: int | None = None  # bytes over all hosts
    operating_system: str = ""  # JSDL OperatingSystemTypeEnumeration, e.g. LINUX
    operating_system_version: str = ""
    cpu_architecture: str = ""  # JSDL ProcessorArchitectureEnumeration, e.g. x86_64
    # SPMD (GFD.115)
    processes_per_host: int | None = None
    threads_per_process: int | None = None


@dataclass(frozen=True)
class JobStatus:
    """What an execution backend knows about one job."""

    state: JobState
    substate: str = ""  # e.g. "Staging-In"
    exit_code: int | None = None
    reason: str = ""
    started_at: datetime | None = None
    finished_at: datetime | None = None


# OCCI Infrastructure states, which every VM backend reports in.
VM_STATES = ("active", "inactive", "suspended", "error")
STORAGE_STATES = ("online", "offline", "error")
NETWORK_STATES = ("active", "inactive", "error")


@dataclass(frozen=True)
class VMSpec:
    """A virtual machine to create: OCCI compute, independent of the hypervisor."""

    name: str
    cores: int = 1
    memory_mib: int = 512
    architecture: str = "x86_64"
    hostname: str = ""
    share: int | None = None  # relative CPU share
    image: str = ""  # os_tpl: the id of an ImageTemplate
    size: str = ""  # resource_tpl: a named size from the config; its cores/memory win
    user_data: str = ""
    ssh_keys: tuple[str, ...] = ()


@dataclass(frozen=True)
class VMInfo:
    """What the hypervisor says about one VM, now."""

    id: str
    state: str  # one of VM_STATES
    state_message: str = ""
    cores: int = 1
    memory_mib: int = 512
    architecture: str = "x86_64"
    hostname: str = ""
    host: str = ""  # the hypervisor URI it runs on
    image: str = ""


@dataclass(frozen=True)
class ImageTemplate:
    """An image a VM can start from (OCCI os_tpl)."""

    id: str
    title: str
    size_bytes: int = 0


@dataclass(frozen=True)
class StorageSpec:
    name: str
    size_gib: float = 1.0


@dataclass(frozen=True)
class StorageInfo:
    id: str
    state: str  # one of STORAGE_STATES
    size_gib: float = 0.0
    state_message: str = ""
    host: str = ""


@dataclass(frozen=True)
class NetworkSpec:
    name: str
    vlan: int | None = None
    label: str = ""
    address: str = ""  # CIDR, e.g. 192.0.2.0/24 (ipnetwork mixin)
    gateway: str = ""
    allocation: str = "dynamic"  # dynamic | static


@dataclass(frozen=True)
class NetworkInfo:
    id: str
    state: str  # one of NETWORK_STATES
    vlan: int | None = None
    label: str = ""
    address: str = ""
    gateway: str = ""
    allocation: str = "dynamic"
    state_message: str = ""
    host: str = ""


@dataclass(frozen=True)
class Volume:
    """A storage volume owned by a VO."""

    name: str
    vo: str
    url: str
    quota_bytes: int | None = None
    used_bytes: int = 0


@dataclass(frozen=True)
class FileInfo:
    """One entry on a volume: ``path`` is relative to the volume's root ('' is the root)."""

    path: str
    size: int
    is_dir: bool
    modified: float  # seconds since the epoch


@dataclass(frozen=True)
class HealthReport:
    """Whether a backend or service can do its work right now, and why not."""

    ok: bool
    detail: str
    figures: Mapping[str, object] = field(default_factory=dict)


def to_plain(value: object) -> object:
    """A model value (a JobSpec with its StagingSpecs and Bounds, tuples, mappings) as
    JSON-ready data: dataclasses as dicts keyed by field name, tuples as lists.

    The execution plugins hand jobs to the processes that run them on the host (the
    local supervisor, the Slurm job's staging step) in this form, and those read it by
    these field names: it is the model's own plain form, so it lives beside the model.
    """
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_plain(v) for v in value]
    return value


def job_from_plain(data: Mapping[str, object]) -> JobSpec:
    """The JobSpec whose :func:`to_plain` form ``data`` is (tuples back from lists,
    StagingSpecs and Bounds back from dicts): how a recorded activity's job is read back
    to be handed over again after a crash. Unknown keys are refused (TypeError)."""
    values = dict(data)
    for name in ("stage_in", "stage_out"):
        values[name] = tuple(StagingSpec(**s) for s in values.get(name) or ())  # type: ignore[arg-type, attr-defined]
    for name in ("arguments", "candidate_hosts"):
        values[name] = tuple(values.get(name) or ())  # type: ignore[arg-type]
    for name in ("total_cpu_count_bounds", "individual_cpu_count_bounds"):
        if values.get(name) is not None:
            values[name] = Bounds(**values[name])  # type: ignore[arg-type, operator]
    values["environment"] = dict(values.get("environment") or {})  # type: ignore[call-overload]
    return JobSpec(**values)  # type: ignore[arg-type]
