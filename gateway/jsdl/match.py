"""Does this site satisfy a job's jsdl:Resources? Fit the request to the offer, or say why not.

:func:`read_job_definition` records what a JSDL document asks for (operating system,
architecture, CPU counts with their ranges, memory, hosts) without knowing the site.
CreateActivity needs one more step: compare the request with what the execution
backend offers, lower a count to the offer where the submitter's range allows it, and
otherwise refuse with an UnsupportedFeature fault naming the JSDL element that cannot be
met (JSDL 1.0: every Resources element is a requirement, not a hint).
"""

from __future__ import annotations

import dataclasses
import math
import os
import platform
import socket
from dataclasses import dataclass
from typing import NoReturn

from backends.contracts.model import Bounds, JobSpec
from backends.contracts.platform import jsdl_architecture, jsdl_operating_system, runs
from gateway.jsdl.common import UNSUPPORTED, JSDLFault


@dataclass(frozen=True)
class ResourceOffer:
    """What an execution backend can give one job, in JSDL's words."""

    cpu_count: int  # per host
    memory_bytes: int  # per host
    operating_system: str  # JSDL OperatingSystemTypeEnumeration, e.g. LINUX
    cpu_architecture: str  # JSDL ProcessorArchitectureEnumeration, e.g. x86_64
    hostnames: tuple[str, ...] = ()
    host_count: int = 1

    @classmethod
    def of_this_host(cls) -> ResourceOffer:
        """This machine, as the local execution backend sees it."""
        try:
            memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (ValueError, OSError):  # pragma: no cover - non-POSIX
            memory = 0
        names = {socket.gethostname(), socket.getfqdn(), "localhost"}
        return cls(
            cpu_count=len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1,
            memory_bytes=memory,
            operating_system=jsdl_operating_system(platform.system()),
            cpu_architecture=jsdl_architecture(platform.machine()),
            hostnames=tuple(sorted(n for n in names if n)),
        )


def fit(spec: JobSpec, offer: ResourceOffer) -> JobSpec:
    """``spec`` with its CPU counts lowered to the offer where the submitter's range
    allows it; :class:`JSDLFault` (UnsupportedFeature) naming the first requirement
    the offer cannot meet."""
    if spec.operating_system and spec.operating_system != offer.operating_system:
        _refuse(
            "jsdl:OperatingSystemName",
            f"asks for the operating system {spec.operating_system}; this site runs "
            f"{offer.operating_system}",
        )
    if spec.cpu_architecture and not runs(spec.cpu_architecture, offer.cpu_architecture):
        _refuse(
            "jsdl:CPUArchitectureName",
            f"asks for the CPU architecture {spec.cpu_architecture}; this site's is "
            f"{offer.cpu_architecture}",
        )
    if spec.candidate_hosts and not set(spec.candidate_hosts) & set(offer.hostnames):
        _refuse(
            "jsdl:CandidateHosts",
            f"lists {', '.join(spec.candidate_hosts)}; this site runs jobs on "
            f"{', '.join(offer.hostnames) or 'hosts that are not named'}",
        )
    if spec.total_resource_count and spec.total_resource_count > offer.host_count:
        _refuse(
            "jsdl:TotalResourceCount",
            f"asks for {spec.total_resource_count} hosts; this site has {offer.host_count}",
        )
    individual = _fit_count(
        "jsdl:IndividualCPUCount",
        spec.individual_cpu_count,
        spec.individual_cpu_count_bounds,
        offer.cpu_count,
    )
    total = _fit_count(
        "jsdl:TotalCPUCount",
        spec.total_cpu_count,
        spec.total_cpu_count_bounds,
        offer.cpu_count * offer.host_count,
    )
    for element, asked, available in (
        ("jsdl:IndividualPhysicalMemory", spec.individual_physical_memory, offer.memory_bytes),
        (
            "jsdl:TotalPhysicalMemory",
            spec.total_physical_memory,
            offer.memory_bytes * offer.host_count,
        ),
    ):
        if asked and available and asked > available:
            _refuse(element, f"asks for {asked} bytes; this site has {available}")
    return dataclasses.replace(spec, individual_cpu_count=individual, total_cpu_count=total)


def _fit_count(
    element: str, asked: int | None, bounds: Bounds | None, available: int
) -> int | None:
    if asked is None or asked <= available:
        return asked
    if bounds is not None and bounds.allows(available) and available >= 1:
        return available
    least = math.ceil(bounds.lower) if bounds is not None and bounds.lower is not None else asked
    _refuse(
        element,
        f"asks for at least {least} CPUs; this site offers {available}",
    )


def _refuse(element: str, problem: str) -> NoReturn:
    raise JSDLFault(
        UNSUPPORTED,
        element,
        f"{element} {problem}. Change or remove the requirement, or submit to a site "
        "that meets it.",
    )
