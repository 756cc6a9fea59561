"""Fitting a job's resource requirements to what the site offers."""

from __future__ import annotations

import os

import pytest

from backends.contracts.model import Bounds, JobSpec
from gateway.jsdl.match import ResourceOffer, fit
from gateway.jsdl.reader import JSDLFault

OFFER = ResourceOffer(
    cpu_count=2,
    memory_bytes=4 * 2**30,
    operating_system="LINUX",
    cpu_architecture="x86_64",
    hostnames=("node1.example", "node1"),
)


def spec(**fields: object) -> JobSpec:
    return JobSpec(executable="/bin/true", **fields)  # type: ignore[arg-type]


def test_a_job_without_requirements_fits_unchanged() -> None:
    job = spec()
    assert fit(job, OFFER) == job


def test_matching_requirements_fit() -> None:
    job = spec(
        operating_system="LINUX",
        cpu_architecture="x86",  # the x86 family runs on x86_64
        candidate_hosts=("elsewhere", "node1"),
        total_cpu_count=2,
        individual_physical_memory=2**30,
    )
    assert fit(job, OFFER) == job


def test_a_range_is_lowered_to_the_offer() -> None:
    job = spec(total_cpu_count=10, total_cpu_count_bounds=Bounds(None, 10.0))
    fitted = fit(job, OFFER)
    assert fitted.total_cpu_count == 2
    assert fitted.total_cpu_count_bounds == Bounds(None, 10.0)


@pytest.mark.parametrize(
    ("fields", "element", "says"),
    [
        ({"operating_system": "WINNT"}, "jsdl:OperatingSystemName", "this site runs LINUX"),
        ({"cpu_architecture": "sparc"}, "jsdl:CPUArchitectureName", "x86_64"),
        ({"candidate_hosts": ("other.example",)}, "jsdl:CandidateHosts", "node1.example"),
        ({"total_resource_count": 3}, "jsdl:TotalResourceCount", "3 hosts"),
        ({"total_cpu_count": 4}, "jsdl:TotalCPUCount", "at least 4 CPUs; this site offers 2"),
        (
            {"individual_cpu_count": 8, "individual_cpu_count_bounds": Bounds(4.0, 16.0)},
            "jsdl:IndividualCPUCount",
            "at least 4 CPUs",
        ),
        ({"individual_physical_memory": 2**40}, "jsdl:IndividualPhysicalMemory", "bytes"),
        ({"total_physical_memory": 2**40}, "jsdl:TotalPhysicalMemory", "bytes"),
    ],
)
def test_unmet_requirements_are_unsupported_features(
    fields: dict[str, object], element: str, says: str
) -> None:
    with pytest.raises(JSDLFault) as caught:
        fit(spec(**fields), OFFER)
    assert (caught.value.fault, caught.value.element) == ("UnsupportedFeature", element)
    assert says in str(caught.value)


def test_this_host_is_described_in_jsdl_words() -> None:
    offer = ResourceOffer.of_this_host()
    assert 1 <= offer.cpu_count <= (os.cpu_count() or 1)
    assert offer.memory_bytes > 0
    assert offer.operating_system == "LINUX"
    assert offer.cpu_architecture in ("x86_64", "arm", "powerpc", "other")
    assert "localhost" in offer.hostnames
