"""The JSDL queue hint (ARC's jsdl-arc:CandidateTarget/QueueName) and what backends do
with it, without a cluster: the reader, sbatch's --partition, the check against the
partitions there are, and the refusal of backends without queues."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from backends.contracts.interfaces import (
    BackendContext,
    BackendUnavailable,
    ExecutionBackend,
    InvalidSpec,
)
from backends.contracts.model import HealthReport, JobSpec
from backends.execution.slurm.backend import SlurmExecutionBackend
from backends.execution.slurm.job import MPI_PLUGINS, sbatch_options, script
from backends.execution.slurm.settings import SlurmSettings
from gateway.jsdl.reader import JSDLFault, read_job_definition
from gateway.xmlsafe import parse

NS = (
    'xmlns="http://schemas.ggf.org/jsdl/2005/11/jsdl" '
    'xmlns:posix="http://schemas.ggf.org/jsdl/2005/11/jsdl-posix" '
    'xmlns:arc="http://www.nordugrid.org/ws/schemas/jsdl-arc"'
)
APP = "<Application><posix:POSIXApplication><posix:Executable>/bin/true</posix:Executable></posix:POSIXApplication></Application>"


def document(resources: str) -> bytes:
    return (
        f"<JobDefinition {NS}><JobDescription>{APP}<Resources>{resources}</Resources>"
        "</JobDescription></JobDefinition>"
    ).encode()


def read(resources: str) -> JobSpec:
    (spec,) = read_job_definition(parse(document(resources)))
    return spec


def refused(resources: str) -> JSDLFault:
    with pytest.raises(JSDLFault) as caught:
        read_job_definition(parse(document(resources)))
    return caught.value


def test_arc_queue_name_is_the_jobs_queue():
    spec = read("<arc:CandidateTarget><arc:QueueName> gpu </arc:QueueName></arc:CandidateTarget>")
    assert spec.queue == "gpu"


def test_queue_beside_other_requirements_and_the_ce_host():
    spec = read(
        "<TotalCPUCount><Exact>2</Exact></TotalCPUCount>"
        "<arc:CandidateTarget><arc:HostName>https://ce.example.org:443/arex</arc:HostName>"
        "<arc:QueueName>long</arc:QueueName></arc:CandidateTarget>"
    )
    assert spec.queue == "long" and spec.total_cpu_count == 2


def test_no_hint_no_queue():
    assert read("<ExclusiveExecution>true</ExclusiveExecution>").queue == ""
    assert read("<arc:CandidateTarget/>").queue == ""


@pytest.mark.parametrize(
    ("resources", "fault", "words"),
    [
        (
            "<arc:CandidateTarget><arc:QueueName>a,b</arc:QueueName></arc:CandidateTarget>",
            "InvalidRequestMessage",
            "is not a queue name",
        ),
        (
            "<arc:CandidateTarget><arc:QueueName/></arc:CandidateTarget>",
            "InvalidRequestMessage",
            "is empty",
        ),
        (
            "<arc:CandidateTarget><arc:QueueName>a</arc:QueueName>"
            "<arc:QueueName>b</arc:QueueName></arc:CandidateTarget>",
            "InvalidRequestMessage",
            "appears twice",
        ),
        (
            "<arc:CandidateTarget><arc:QueueName>a</arc:QueueName></arc:CandidateTarget>"
            "<arc:CandidateTarget><arc:QueueName>b</arc:QueueName></arc:CandidateTarget>",
            "InvalidRequestMessage",
            "appears twice",
        ),
        (
            "<arc:CandidateTarget><arc:Priority>9</arc:Priority></arc:CandidateTarget>",
            "UnsupportedFeature",
            "not understood",
        ),
        (
            "<arc:QueueName>gpu</arc:QueueName>",  # outside CandidateTarget: not ARC's form
            "UnsupportedFeature",
            "extension",
        ),
    ],
)
def test_bad_hints_are_refused_naming_the_element(resources, fault, words):
    caught = refused(resources)
    assert caught.fault == fault
    assert words in str(caught)


def test_queue_becomes_the_partition_and_beats_the_configured_one():
    assert "--partition=gpu" in sbatch_options(JobSpec("/bin/true", queue="gpu"), "batch", {})
    assert "--partition=batch" in sbatch_options(JobSpec("/bin/true"), "batch", {})
    assert not any(o.startswith("--partition") for o in sbatch_options(JobSpec("x"), "", {}))
    # nodes fail: no rerun unasked
    assert "--no-requeue" in sbatch_options(JobSpec("/bin/true"), "", {})


def test_the_script_lets_slurm_requeue_it_once_it_ended_by_itself():
    text = script(JobSpec("/bin/true"), Path("/shared/a"), "python3", MPI_PLUGINS, "srun", "/sc")
    lines = text.splitlines()
    trap = next(i for i, line in enumerate(lines) if line.startswith("trap "))
    assert "/sc update JobId=" in lines[trap] and "Requeue=1" in lines[trap]
    assert "EXIT" in lines[trap]
    assert trap < next(i for i, line in enumerate(lines) if line.startswith("mkdir"))


class NoQueues(ExecutionBackend):
    name = "plain"

    def health(self) -> HealthReport:
        return HealthReport(True, "ok")


def test_backends_without_queues_refuse_a_hint():
    backend = NoQueues(BackendContext(None, Path("/nonexistent"), None))
    backend.admit(JobSpec("/bin/true"))  # no hint: fine
    with pytest.raises(InvalidSpec, match="has no queues"):
        backend.admit(JobSpec("/bin/true", queue="gpu"))


def slurm(tmp_path, partitions_out: str | Exception, allowed=()):
    settings = SlurmSettings(work_dir=str(tmp_path), partitions=list(allowed))
    backend = SlurmExecutionBackend(
        BackendContext(None, tmp_path, SimpleNamespace(slurm=settings, default_account="nobody"))
    )
    calls = []

    def run(tool, args, **_kw):
        calls.append((tool, *args))
        if isinstance(partitions_out, Exception):
            raise partitions_out
        return partitions_out

    backend.cli.run = run  # the sinfo answer, as the CLI would give it
    return backend, calls


def test_slurm_checks_the_hint_against_sinfo_once_in_a_while(tmp_path):
    backend, calls = slurm(tmp_path, "debug\ngpu\n")
    backend.admit(JobSpec("/bin/true", queue="gpu"))
    with pytest.raises(InvalidSpec) as caught:
        backend.admit(JobSpec("/bin/true", queue="long"))
    assert "'long'" in str(caught.value) and "debug, gpu" in str(caught.value)
    assert calls == [("sinfo", "-h", "-o", "%R")]  # one sinfo for both


def test_slurm_allow_list_names_only_the_open_queues(tmp_path):
    backend, calls = slurm(tmp_path, "debug\ngpu\nadmin\n", allowed=["debug", "gpu", "gone"])
    with pytest.raises(InvalidSpec, match=r"not open to grid jobs.*debug, gpu, gone"):
        backend.admit(JobSpec("/bin/true", queue="admin"))
    assert calls == []  # refused by the list alone
    with pytest.raises(InvalidSpec) as caught:
        backend.admit(JobSpec("/bin/true", queue="gone"))
    assert "partitions are: debug, gpu" in str(caught.value)


def test_slurm_controller_down_leaves_the_decision_to_sbatch(tmp_path):
    backend, _calls = slurm(tmp_path, BackendUnavailable("controller down"))
    backend.admit(JobSpec("/bin/true", queue="anything"))
