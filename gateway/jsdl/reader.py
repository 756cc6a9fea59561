"""JSDL 1.0 JobDefinition → neutral :class:`~backends.contracts.model.JobSpec`.

Reads JSDL 1.0 (GFD.56) with the POSIX application (GFD.56 §8), the HPC Profile
Application (GFD.111), SPMD (GFD.115) and Parameter Sweep (GFD.149) extensions. The
input is an lxml element that :mod:`gateway.xmlsafe` has already parsed (no DTD, no
entities, bounded size).

Tolerant where the meaning is clear, because real clients break the schema in small
ways: children in any order, unqualified children of JSDL elements (read in their
parent's vocabulary), the ogf.org spelling of the HPC Profile namespace, white space
around values, a missing CreationFlag, UNICORE's StagingSchedule. Exact about the rest:
every refusal is a :class:`JSDLFault` naming the element, where it is and what to do.

Use, in CreateActivity::

    specs = read_job_definition(job_definition)      # JSDLFault → the BES fault
    specs = [fit(s, offer) for s in specs]            # gateway.jsdl.match

``JSDLFault.fault`` is the BES fault name (InvalidRequestMessage or UnsupportedFeature),
``.element`` the JSDL element it is about and ``str()`` the sentence for the client. The
job spec's ``user_name``/``group_name`` (jsdl-posix:UserName/GroupName) are what the
submitter asked to run as: the caller must check them against the mapped account.

The rule for elements this reader does not know:

* in a JSDL namespace (jsdl, jsdl-posix, jsdl-hpcpa, jsdl-spmd, sweep): always
  UnsupportedFeature naming it; JSDL elements describe what the job needs, and a job
  whose needs are not all understood cannot be promised to run as asked;
* from a foreign namespace, *ignored* only where it cannot change what runs, where or
  how: as a child of jsdl:JobDefinition after the JobDescription (where clients put
  their own bookkeeping, e.g. GridSAM's MyProxy hint) and inside jsdl:JobIdentification
  (descriptive by definition); foreign attributes are ignored everywhere (JSDL's
  anyAttribute extension points carry annotations);
* ARC's queue hint (jsdl-arc:CandidateTarget/QueueName in Resources) is read as the
  job's queue (gateway.jsdl.queue);
* from a foreign namespace anywhere else (JobDescription, Application, an application
  body, Resources, DataStaging, Source/Target): UnsupportedFeature naming it, since
  these extension points exist to change the job (UNICORE's UserPreCommand, GridSAM's
  MPIApplication, inline data) and silently dropping one would run a different job.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lxml import etree

from backends.contracts.model import JobSpec, StagingSpec
from gateway.jsdl.applications import ApplicationRegistry, UnknownApplication
from gateway.jsdl.common import (
    JSDLFault,
    attribute,
    boolean,
    child_name,
    elements,
    invalid,
    name_of,
    qname,
    shown,
    simple_text,
    split,
    unknown_jsdl,
    unsupported,
)
from gateway.jsdl.namespaces import HPCPA, HPCPA_OGF, JSDL, JSDL_NAMESPACES, POSIX, SPMD
from gateway.jsdl.queue import is_candidate_target, read_candidate_target
from gateway.jsdl.ranges import read_range_value
from gateway.jsdl.staging import read_data_staging
from gateway.jsdl.sweep import expand_sweep

__all__ = ["JSDLFault", "read_job_definition"]

# jsdl-posix limits → JobSpec fields (all nonNegativeInteger: seconds or bytes or counts)
POSIX_LIMITS = {
    "WallTimeLimit": "wall_time_limit",
    "CPUTimeLimit": "cpu_time_limit",
    "MemoryLimit": "memory_limit",
    "VirtualMemoryLimit": "virtual_memory_limit",
    "FileSizeLimit": "file_size_limit",
    "CoreDumpLimit": "core_dump_limit",
    "DataSegmentLimit": "data_segment_limit",
    "LockedMemoryLimit": "locked_memory_limit",
    "OpenDescriptorsLimit": "open_descriptors_limit",
    "StackSizeLimit": "stack_size_limit",
    "ProcessCountLimit": "process_count_limit",
    "ThreadCountLimit": "thread_count_limit",
}
APPLICATION_TEXT = ("Executable", "Input", "Output", "Error", "WorkingDirectory")
APPLICATION_COMMON = (*APPLICATION_TEXT, "Argument", "Environment", "UserName")
POSIX_APPLICATION = (*APPLICATION_COMMON, "GroupName", "PipeSizeLimit", *POSIX_LIMITS)
SPMD_ELEMENTS = ("NumberOfProcesses", "ProcessesPerHost", "ThreadsPerProcess", "SPMDVariation")
APPLICATION_BODIES = {
    "POSIXApplication": POSIX,
    "HPCProfileApplication": HPCPA,
    "SPMDApplication": SPMD,
}
JOB_DESCRIPTION_CHILDREN = dict.fromkeys(
    ("JobIdentification", "Application", "Resources", "DataStaging"), JSDL
)
JOB_IDENTIFICATION_CHILDREN = dict.fromkeys(
    ("JobName", "Description", "JobAnnotation", "JobProject"), JSDL
)
APPLICATION_CHILDREN = {
    **dict.fromkeys(("ApplicationName", "ApplicationVersion", "Description"), JSDL),
    **APPLICATION_BODIES,
}
RESOURCES_CHILDREN = dict.fromkeys(
    """CandidateHosts FileSystem ExclusiveExecution OperatingSystem CPUArchitecture
    IndividualCPUSpeed IndividualCPUTime IndividualCPUCount IndividualNetworkBandwidth
    IndividualPhysicalMemory IndividualVirtualMemory IndividualDiskSpace TotalCPUTime
    TotalCPUCount TotalPhysicalMemory TotalVirtualMemory TotalDiskSpace
    TotalResourceCount""".split(),  # noqa: SIM905 - the schema's order, kept readable
    JSDL,
)
# GFD.115 §4.5: the variation URIs the specification defines, and the name a backend uses
SPMD_VARIATIONS = (
    "MPI",
    "GridMPI",
    "IntelMPI",
    "LAM-MPI",
    "MPICH1",
    "MPICH2",
    "MPICH-GM",
    "MPICH-MX",
    "MVAPICH",
    "MVAPICH2",
    "OpenMPI",
    "POE",
    "PVM",
)
SPMD_VARIATION_BASES = (
    "http://www.ogf.org/jsdl/2007/02/jsdl-spmd/",
    "http://schemas.ogf.org/jsdl/2007/02/jsdl-spmd/",
)
# JSDL 1.0 enumerations (jsdl.xsd): matched case-insensitively, reported canonically
OPERATING_SYSTEMS = tuple(
    (  # noqa: SIM905 - the schema's list, kept readable
        "Unknown MACOS ATTUNIX DGUX DECNT Tru64_UNIX OpenVMS HPUX AIX MVS OS400 OS_2 JavaVM "
        "MSDOS WIN3x WIN95 WIN98 WINNT WINCE NCR3000 NetWare OSF DC_OS Reliant_UNIX "
        "SCO_UnixWare SCO_OpenServer Sequent IRIX Solaris SunOS U6000 ASERIES TandemNSK "
        "TandemNT BS2000 LINUX Lynx XENIX VM Interactive_UNIX BSDUNIX FreeBSD NetBSD "
        "GNU_Hurd OS9 MACH_Kernel Inferno QNX EPOC IxWorks VxWorks MiNT BeOS HP_MPE "
        "NextStep PalmPilot Rhapsody Windows_2000 Dedicated OS_390 VSE TPF Windows_R_Me "
        "Caldera_Open_UNIX OpenBSD Not_Applicable Windows_XP z_OS other"
    ).split()
)
ARCHITECTURES = (
    "sparc",
    "powerpc",
    "x86",
    "x86_32",
    "x86_64",
    "parisc",
    "mips",
    "ia64",
    "arm",
    "other",
)
LARGEST = 2**63 - 1  # setrlimit's rlim_t, and every batch system's counters
# characters that make an Executable a shell command line rather than a program's name
SHELL_SYNTAX = set(";|&$`<>\n\t")


def read_job_definition(
    job_definition: etree._Element,
    *,
    max_sweep: int = 1000,
    applications: ApplicationRegistry | None = None,
) -> list[JobSpec]:
    """The job specs a jsdl:JobDefinition asks for: one, or one per sweep point.

    Raises :class:`JSDLFault` for anything the gateway will not run; a parameter sweep
    that would yield more than ``max_sweep`` jobs is refused before any is built. An
    application asked for by name is looked up in ``applications`` (the site's registry).
    """
    namespace, local = split(job_definition)
    if namespace != JSDL or local != "JobDefinition":
        raise invalid(
            job_definition,
            "is not a JSDL job definition",
            f"The document element must be JobDefinition in the namespace {JSDL}.",
        )
    documents = expand_sweep(job_definition, max_sweep=max_sweep)
    registry = applications or ApplicationRegistry()
    if len(documents) == 1:
        return [_JobReader(documents[0], registry).job_spec()]
    specs = []
    for number, document in enumerate(documents, start=1):
        try:
            specs.append(_JobReader(document, registry).job_spec())
        except JSDLFault as fault:
            fault.message += (
                f" This is in sweep point {number} of {len(documents)}, after the "
                "sweep:Sweep assigned its values."
            )
            fault.args = (fault.message,)
            raise
    return specs


@dataclass
class _JobReader:
    """Reads one (swept, if it was a sweep) JobDefinition; fields collect as it goes."""

    root: etree._Element
    applications: ApplicationRegistry = field(default_factory=ApplicationRegistry)
    fields: dict[str, Any] = field(default_factory=dict)
    stage_in: list[StagingSpec] = field(default_factory=list)
    stage_out: list[StagingSpec] = field(default_factory=list)

    def job_spec(self) -> JobSpec:
        description = self._job_description()
        parts: dict[str, etree._Element] = {}
        stagings: list[etree._Element] = []
        for child in elements(description):
            namespace, local = child_name(child, JSDL)
            if namespace == JSDL and local in ("JobIdentification", "Application", "Resources"):
                if local in parts:
                    raise invalid(child, "appears twice in one jsdl:JobDescription")
                parts[local] = child
            elif namespace == JSDL and local == "DataStaging":
                stagings.append(child)
            elif namespace in JSDL_NAMESPACES:
                raise unknown_jsdl(child, "jsdl:JobDescription", JOB_DESCRIPTION_CHILDREN)
            else:
                raise unsupported(
                    child,
                    "is an extension of jsdl:JobDescription this gateway does not understand; "
                    "it could change the job, so it is not ignored",
                )
        if "JobIdentification" in parts:
            self._job_identification(parts["JobIdentification"])
        # Resources first: SPMD's "actual...CPUCount" flags refer to them.
        if "Resources" in parts:
            self._resources(parts["Resources"])
        if "Application" in parts:
            self._application(parts["Application"])
        for staging in stagings:
            stage_in, stage_out = read_data_staging(staging)
            if stage_in:
                self.stage_in.append(stage_in)
            if stage_out:
                self.stage_out.append(stage_out)
        if not self.fields.get("executable") and not stagings:
            raise invalid(
                description,
                "asks for nothing: it has no application to run and no files to stage",
                "Add a jsdl:Application with a jsdl-posix:POSIXApplication naming the "
                "Executable, or jsdl:DataStaging elements.",
            )
        self.fields.setdefault("executable", "")
        return JobSpec(
            stage_in=tuple(self.stage_in), stage_out=tuple(self.stage_out), **self.fields
        )

    def _job_description(self) -> etree._Element:
        found: etree._Element | None = None
        for child in elements(self.root):
            namespace, local = child_name(child, JSDL)
            if namespace == JSDL and local == "JobDescription":
                if found is not None:
                    raise invalid(child, "appears twice; a JobDefinition describes one job")
                found = child
            elif namespace in JSDL_NAMESPACES:
                raise unknown_jsdl(child, "jsdl:JobDefinition", {"JobDescription": JSDL})
            # foreign children of JobDefinition: client bookkeeping, ignored (module doc)
        if found is None:
            raise invalid(self.root, "has no jsdl:JobDescription", "Every JSDL job needs one.")
        return found

    # -- JobIdentification -------------------------------------------------------------

    def _job_identification(self, element: etree._Element) -> None:
        for child in elements(element):
            namespace, local = child_name(child, JSDL)
            if namespace == JSDL and local == "JobName":
                self.fields["name"] = simple_text(child, required=False)
            elif namespace == JSDL and local == "JobProject":
                project = simple_text(child, required=False)
                if project and not self.fields.get("project"):
                    self.fields["project"] = project
            elif namespace == JSDL and local in ("Description", "JobAnnotation"):
                continue  # for people; nothing to run
            elif namespace in JSDL_NAMESPACES:
                raise unknown_jsdl(child, "jsdl:JobIdentification", JOB_IDENTIFICATION_CHILDREN)
            # foreign children of JobIdentification: descriptive, ignored (module doc)

    # -- Application -------------------------------------------------------------------

    def _application(self, element: etree._Element) -> None:
        app_name = app_version = None
        body: etree._Element | None = None
        for child in elements(element):
            namespace, local = child_name(child, JSDL)
            if namespace == JSDL and local == "ApplicationName":
                if app_name is not None:
                    raise invalid(child, "appears twice in one jsdl:Application")
                app_name = child
            elif namespace == JSDL and local == "ApplicationVersion":
                app_version = child
            elif namespace == JSDL and local == "Description":
                continue
            elif (namespace, local) in (
                (POSIX, "POSIXApplication"),
                (HPCPA, "HPCProfileApplication"),
                (HPCPA_OGF, "HPCProfileApplication"),
                (SPMD, "SPMDApplication"),
            ):
                if body is not None:
                    raise invalid(
                        child,
                        f"is a second application body next to {name_of(body)}",
                        "A jsdl:Application holds one.",
                    )
                body = child
            elif namespace in JSDL_NAMESPACES:
                raise unknown_jsdl(child, "jsdl:Application", APPLICATION_CHILDREN)
            elif local == "MPIApplication":
                raise unsupported(
                    child,
                    "is a non-standard MPI application body",
                    "Describe parallel jobs with jsdl-spmd:SPMDApplication (GFD.115): "
                    "NumberOfProcesses and SPMDVariation.",
                )
            else:
                raise unsupported(
                    child,
                    "is an extension of jsdl:Application this gateway does not understand; "
                    "it could change what runs, so it is not ignored",
                )
        if body is not None:
            self._application_body(body)
        if self.fields.get("executable"):
            return
        where = "a jsdl-posix:Executable inside a jsdl-posix:POSIXApplication"
        if body is not None:
            namespace, local = split(body)
            executable = qname(POSIX if local == "SPMDApplication" else namespace, "Executable")
            where = f"a {executable} inside the {name_of(body)}"
        if app_name is not None:
            name = simple_text(app_name, required=False) or ""
            version = simple_text(app_version, required=False) if app_version is not None else ""
            if not self.applications.entries:
                raise unsupported(
                    app_name,
                    f"asks for the application {shown(name)}"
                    + (f" version {version}" if version else "")
                    + " by name, and this gateway has no application registry to look it up in",
                    f"Name the program itself in {where}.",
                )
            try:
                self.fields["executable"] = self.applications.resolve(name, version or "")
            except UnknownApplication as exc:
                raise unsupported(
                    app_name, f"cannot be run: {exc}", f"Or name the program itself in {where}."
                ) from exc
            return
        raise invalid(
            body if body is not None else element,
            "names no program to run",
            f"Give the program's path in {where}.",
        )

    def _application_body(self, body: etree._Element) -> None:
        body_namespace, body_local = split(body)
        is_spmd = body_local == "SPMDApplication"
        # the POSIX-style children each body may hold, and in which namespace
        names_namespace = POSIX if is_spmd else (body_namespace or POSIX)
        allowed = {
            "POSIXApplication": POSIX_APPLICATION,
            "HPCProfileApplication": APPLICATION_COMMON,
            # GFD.115 lists the common POSIX children; limits are tolerated, they are
            # as meaningful for each MPI process as for one POSIX process
            "SPMDApplication": POSIX_APPLICATION,
        }[body_local]
        arguments: list[str] = []
        environment: dict[str, str] = {}
        seen: dict[str, etree._Element] = {}
        spmd: dict[str, etree._Element] = {}
        for child in elements(body):
            namespace, local = split(child)
            if namespace is None:  # unqualified: the body's own vocabulary
                namespace = SPMD if is_spmd and local in SPMD_ELEMENTS else names_namespace
            self._no_filesystem_reference(child)
            if is_spmd and namespace == SPMD and local in SPMD_ELEMENTS:
                if local in spmd:
                    raise invalid(child, f"appears twice in {name_of(body)}")
                spmd[local] = child
                continue
            if namespace != names_namespace or local not in allowed:
                if namespace in JSDL_NAMESPACES:
                    expected = dict.fromkeys(allowed, names_namespace)
                    if is_spmd:
                        expected.update(dict.fromkeys(SPMD_ELEMENTS, SPMD))
                    raise unknown_jsdl(child, name_of(body), expected)
                raise unsupported(
                    child,
                    f"is an extension of {name_of(body)} this gateway does not understand; "
                    "it could change what runs, so it is not ignored",
                )
            if local == "Argument":
                value = simple_text(child, required=False)
                if names_namespace == POSIX:  # xsd:normalizedString: tabs, newlines → space
                    value = value.replace("\t", " ").replace("\n", " ").replace("\r", " ")
                arguments.append(value)
            elif local == "Environment":
                name = (child.get("name") or "").strip()
                if not name:
                    raise invalid(child, "has no name attribute", 'Write name="VARIABLE".')
                if name in environment:
                    raise invalid(child, f"sets {name} a second time")
                if "=" in name or "\0" in name:
                    raise invalid(
                        child, f"has the name {shown(name)}, which is not a variable name"
                    )
                environment[name] = simple_text(child, required=False)
            elif local in seen:
                raise invalid(child, f"appears twice in {name_of(body)}")
            else:
                seen[local] = child
        self._application_fields(seen)
        self.fields["arguments"] = tuple(arguments)
        self.fields["environment"] = environment
        if is_spmd:
            self._spmd(body, spmd)

    def _application_fields(self, seen: dict[str, etree._Element]) -> None:
        if "Executable" in seen:
            self.fields["executable"] = _executable(seen["Executable"])
        for local, key in (
            ("Input", "stdin"),
            ("Output", "stdout"),
            ("Error", "stderr"),
            ("WorkingDirectory", "working_directory"),
            ("UserName", "user_name"),
            ("GroupName", "group_name"),
        ):
            if local in seen:
                self.fields[key] = simple_text(seen[local])
        if "PipeSizeLimit" in seen:
            raise unsupported(
                seen["PipeSizeLimit"],
                "cannot be enforced: Linux has no per-process pipe size limit",
                "Leave it out.",
            )
        for local, key in POSIX_LIMITS.items():
            if local in seen:
                self.fields[key] = _non_negative_integer(seen[local])

    def _spmd(self, body: etree._Element, spmd: dict[str, etree._Element]) -> None:
        if "SPMDVariation" not in spmd:
            raise invalid(
                body,
                "has no jsdl-spmd:SPMDVariation",
                f"Name the MPI flavour, e.g. {SPMD_VARIATION_BASES[0]}OpenMPI.",
            )
        self.fields["spmd_variation"] = _spmd_variation(spmd["SPMDVariation"])
        count = spmd.get("NumberOfProcesses")
        if count is not None:
            self.fields["spmd_processes"] = self._spmd_count(
                count, ("actualtotalcpucount",), "total_cpu_count", "jsdl:TotalCPUCount"
            )
        threads = spmd.get("ThreadsPerProcess")
        if threads is not None:
            self.fields["threads_per_process"] = self._spmd_count(
                threads,
                ("actualindividualcpucount",),
                "individual_cpu_count",
                "jsdl:IndividualCPUCount",
            )
        per_host = spmd.get("ProcessesPerHost")
        if per_host is not None:
            self.fields["processes_per_host"] = _positive_integer(per_host)

    def _spmd_count(
        self, element: etree._Element, flag: tuple[str, ...], resource: str, resource_name: str
    ) -> int | None:
        """The value of NumberOfProcesses / ThreadsPerProcess, or the CPU count it defers
        to when its actual...CPUCount attribute is true (None: one per granted CPU)."""
        actual = attribute(element, *flag)
        if actual is not None and actual.strip() in ("true", "1"):
            given = _positive_integer(element) if simple_text(element, required=False) else None
            value = self.fields.get(resource)
            if given is not None and value is not None and given != value:
                raise invalid(
                    element,
                    f"says {given} and also to use {resource_name} ({value})",
                    "Give one of them.",
                )
            return value
        if actual is not None and actual.strip() not in ("false", "0"):
            raise invalid(element, f"has {flag[0]}={shown(actual)}; it must be true or false")
        return _positive_integer(element)

    @staticmethod
    def _no_filesystem_reference(element: etree._Element) -> None:
        if element.get("filesystemName") is not None:
            raise unsupported(
                element,
                f"refers to the file system {shown(element.get('filesystemName') or '')} "
                "(filesystemName); this gateway offers no named file systems",
                "Give paths relative to the job's working directory instead.",
            )

    # -- Resources ---------------------------------------------------------------------

    def _resources(self, element: etree._Element) -> None:
        handlers: dict[str, Callable[[etree._Element], None]] = {
            "CandidateHosts": self._candidate_hosts,
            "ExclusiveExecution": self._exclusive,
            "OperatingSystem": self._operating_system,
            "CPUArchitecture": self._cpu_architecture,
        }
        ranges = {
            # element: (JobSpec field, bounds field or "", whole-number count?)
            "TotalCPUCount": ("total_cpu_count", "total_cpu_count_bounds", True),
            "IndividualCPUCount": ("individual_cpu_count", "individual_cpu_count_bounds", True),
            "TotalResourceCount": ("total_resource_count", "", True),
            "IndividualPhysicalMemory": ("individual_physical_memory", "", False),
            "TotalPhysicalMemory": ("total_physical_memory", "", False),
            "IndividualVirtualMemory": ("individual_virtual_memory", "", False),
            "TotalVirtualMemory": ("total_virtual_memory", "", False),
            "IndividualCPUTime": ("individual_cpu_time", "", False),
            "TotalCPUTime": ("total_cpu_time", "", False),
            "IndividualDiskSpace": ("individual_disk_space", "", False),
            "TotalDiskSpace": ("total_disk_space", "", False),
        }
        seen: set[str] = set()
        queue_seen: set[str] = set()
        for child in elements(element):
            namespace, local = child_name(child, JSDL)
            if namespace == JSDL and local in seen:
                raise invalid(child, "appears twice in jsdl:Resources")
            seen.add(local)
            if namespace == JSDL and local in handlers:
                handlers[local](child)
            elif namespace == JSDL and local in ranges:
                key, bounds_key, integral = ranges[local]
                value = read_range_value(child)
                self.fields[key] = value.request(child, integral=integral)
                if bounds_key and not value.is_exact:
                    self.fields[bounds_key] = value.bounds()
            elif namespace == JSDL and local in (
                "FileSystem",
                "IndividualCPUSpeed",
                "IndividualNetworkBandwidth",
            ):
                raise unsupported(
                    child,
                    "is a requirement this gateway cannot check or guarantee",
                    "Leave it out.",
                )
            elif namespace in JSDL_NAMESPACES:
                raise unknown_jsdl(child, "jsdl:Resources", RESOURCES_CHILDREN)
            elif is_candidate_target(namespace, local):
                if "CandidateTarget" in queue_seen:
                    raise invalid(child, "appears twice in jsdl:Resources")
                queue_seen.add("CandidateTarget")
                self.fields["queue"] = read_candidate_target(child)
            else:
                raise unsupported(
                    child,
                    "is a resource requirement from an extension this gateway does not "
                    "understand; a requirement cannot be ignored",
                )

    def _candidate_hosts(self, element: etree._Element) -> None:
        hosts = []
        for child in elements(element):
            namespace, local = child_name(child, JSDL)
            if namespace != JSDL or local != "HostName":
                raise invalid(child, "does not belong in jsdl:CandidateHosts")
            hosts.append(simple_text(child))
        if not hosts:
            raise invalid(element, "lists no jsdl:HostName")
        self.fields["candidate_hosts"] = tuple(hosts)

    def _exclusive(self, element: etree._Element) -> None:
        self.fields["exclusive"] = boolean(element)

    def _operating_system(self, element: etree._Element) -> None:
        for child in elements(element):
            namespace, local = child_name(child, JSDL)
            if namespace == JSDL and local == "OperatingSystemType":
                names = [
                    c
                    for c in elements(child)
                    if child_name(c, JSDL) == (JSDL, "OperatingSystemName")
                ]
                others = [c for c in elements(child) if c not in names]
                if others:
                    raise unsupported(others[0], "is not understood in an OperatingSystemType")
                if len(names) != 1:
                    raise invalid(child, "must hold exactly one jsdl:OperatingSystemName")
                self.fields["operating_system"] = _enumerated(names[0], OPERATING_SYSTEMS)
            elif namespace == JSDL and local == "OperatingSystemVersion":
                self.fields["operating_system_version"] = simple_text(child)
            elif namespace == JSDL and local == "Description":
                continue
            else:
                raise unsupported(child, "is not understood in a jsdl:OperatingSystem")

    def _cpu_architecture(self, element: etree._Element) -> None:
        names = [
            c for c in elements(element) if child_name(c, JSDL) == (JSDL, "CPUArchitectureName")
        ]
        others = [c for c in elements(element) if c not in names]
        if others:
            raise unsupported(others[0], "is not understood in a jsdl:CPUArchitecture")
        if len(names) != 1:
            raise invalid(element, "must hold exactly one jsdl:CPUArchitectureName")
        self.fields["cpu_architecture"] = _enumerated(names[0], ARCHITECTURES)


def _executable(element: etree._Element) -> str:
    """The program to run. GridSAM let a shell command line stand here; JSDL names one
    program, and guessing which shell and quoting the submitter meant would run
    something else than they wrote, so such a value is refused with the fix."""
    value = simple_text(element)
    syntax = sorted(SHELL_SYNTAX.intersection(value))
    if syntax:
        listed = " ".join(repr(c) for c in syntax)
        raise invalid(
            element,
            f"{shown(value)} is a shell command line (it contains {listed}), not a program",
            "Put the program's path in Executable and each word in its own Argument; "
            "for shell syntax use Executable /bin/sh with the Arguments -c and the "
            "command line.",
        )
    return value


def _non_negative_integer(element: etree._Element) -> int:
    text = simple_text(element)
    if not (text.isascii() and text.isdigit()):
        raise invalid(element, f"must be a whole number of at least 0, not {shown(text)}")
    value = int(text) if len(text) <= 20 else LARGEST + 1  # int() refuses 4300+ digits
    if value > LARGEST:
        raise invalid(
            element, f"is {shown(text)}, more than any limit a system can set ({LARGEST})"
        )
    return value


def _positive_integer(element: etree._Element) -> int:
    value = _non_negative_integer(element)
    if value < 1:
        raise invalid(element, "must be at least 1")
    return value


def _enumerated(element: etree._Element, allowed: tuple[str, ...]) -> str:
    text = simple_text(element)
    for value in allowed:
        if value.lower() == text.lower():
            return value
    raise invalid(
        element,
        f"is {shown(text)}, which JSDL does not define",
        f"Use one of: {', '.join(allowed)}.",
    )


def _spmd_variation(element: etree._Element) -> str:
    uri = simple_text(element)
    for base in SPMD_VARIATION_BASES:
        if uri.startswith(base) and uri[len(base) :] in SPMD_VARIATIONS:
            return uri[len(base) :]
    raise unsupported(
        element,
        f"is {shown(uri)}, which is not an SPMD variation of GFD.115",
        f"Use {SPMD_VARIATION_BASES[0]}<name> with one of: {', '.join(SPMD_VARIATIONS)}.",
    )
