"""Every real JSDL document from UNICORE and GridSAM gets a definite outcome.

The documents are in ``../shared/interop/jsdl/`` (relative to the project root): 30 from
UNICORE's XNJS test suite, 27 from GridSAM's examples. Each one is either accepted with
the job spec asserted field by field, or refused with the BES fault and the element it
names. The table must cover exactly the files in the folder, so a new sample cannot slip
through without an outcome.

GridSAM's ``invalid-*`` and ``jsdl_error_*`` documents are refused here, or, where the
document is valid JSDL whose error can only show when the job runs, accepted with a
comment naming the stage at which it fails (process start, stage-in, stage-out). The
errors those ``jsdl_error_*`` documents were written to provoke are exercised below on
repaired copies, since their Executable is refused first.
"""

from __future__ import annotations

import copy
import os
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from backends.contracts.model import Bounds, JobSpec, StagingSpec
from gateway.jsdl.ranges import read_range_value
from gateway.jsdl.reader import JSDLFault, read_job_definition
from gateway.xmlsafe import parse

INTEROP = Path(__file__).resolve().parents[2] / ".." / "shared" / "interop"
JSDL_DIR = INTEROP / "jsdl"
POSIX = "{http://schemas.ggf.org/jsdl/2005/11/jsdl-posix}"
JSDL_NS = "http://schemas.ggf.org/jsdl/2005/11/jsdl"


def interop_folder(path: Path) -> Path:
    """``path`` if it is there; else skip locally, and fail under CI=true where the
    interop data is always present."""
    if not path.is_dir():
        message = f"the interop JSDL samples are not at {path} (always present under CI=true)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message + "; run under CI or check out ../shared/interop")
    return path


@pytest.fixture(scope="module")
def jsdl_dir() -> Path:
    return interop_folder(JSDL_DIR)


def test_missing_samples_skip_locally_and_fail_under_ci(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "no-interop"
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="CI=true"):
        interop_folder(missing)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="always present under CI=true"):
        interop_folder(missing)


def load(jsdl_dir: Path, name: str) -> etree._Element:
    return parse((jsdl_dir / name).read_bytes())


@dataclass(frozen=True)
class Accept:
    """Accepted: ``count`` job specs; ``fields`` must match the first one exactly."""

    fields: dict[str, Any]
    stage_in: tuple[StagingSpec, ...] = ()
    stage_out: tuple[StagingSpec, ...] = ()
    count: int = 1
    check: Callable[[list[JobSpec]], None] | None = None
    fails_at: str = ""  # for documents whose error shows only when the job runs


@dataclass(frozen=True)
class Refuse:
    fault: str
    element: str
    says: str  # a phrase the message must contain


def into(filename: str, url: str, **kw: Any) -> StagingSpec:
    return StagingSpec(filename=filename, source=url, **kw)


def out(filename: str, url: str, **kw: Any) -> StagingSpec:
    return StagingSpec(filename=filename, target=url, **kw)


GRIDSAM_FTP = "ftp://gridsam.lesc.doc.ic.ac.uk:45521/public"
# logins written into URLs are moved into the spec's username/password (kept out of repr)
ANON = {"username": "anonymous", "password": "anonymous"}
HELLO = "http://gridsam.sourceforge.net/test_data/download/helloworld.txt"
OMII = "ftp://orion.omii.ac.uk/home/ftpuser/testfile"
FTPUSER = {"username": "ftpuser", "password": "ftpuser"}
URN = "urn:unknown-urn:iamfeelinglucky"
SHELL = "is a shell command line"
REGISTRY = "no application registry"
IRM, UF = "InvalidRequestMessage", "UnsupportedFeature"


def _sweep_arguments(specs: list[JobSpec]) -> None:
    assert [s.arguments[3] for s in specs] == ["cat", "dog", "bird"]
    for spec in specs:
        assert spec.arguments[:3] == ("The", "quick", "brown")
        assert spec.arguments[4:] == ("jumps", "over", "the", "lazy", "dog")


def _staging_credentials(specs: list[JobSpec]) -> None:
    foo, bar, spam = specs[0].stage_in
    assert (foo.username, foo.password, foo.bearer_token) == ("user", "pass", "")
    assert (bar.username, bar.password, bar.bearer_token) == ("", "", "123")
    assert (spam.username, spam.password, spam.bearer_token) == ("", "", "")
    assert "pass" not in repr(foo) and "123" not in repr(bar)


def _hpc_ext_credentials(password: str) -> Callable[[list[JobSpec]], None]:
    def check(specs: list[JobSpec]) -> None:
        for staging in (*specs[0].stage_in, *specs[0].stage_out):
            assert staging.password == password
            assert staging.username == ("sc07demo" if password else "")

    return check


def _wsse_credentials(specs: list[JobSpec]) -> None:
    for staging in (*specs[0].stage_in, *specs[0].stage_out):
        assert (staging.username, staging.password) == ("interop", "IshQ")


OUTCOMES: dict[str, Accept | Refuse] = {
    # ---- GridSAM -----------------------------------------------------------------------
    "gridsam/bes-netstat.jsdl": Accept(
        {
            "executable": "/bin/netstat",
            "arguments": ("-rn",),
            "stdout": "netstat.out",
            "stderr": "netstat.err",
            "working_directory": "/tmp/bes_netstat_output",
            "total_cpu_count": 1,
            "total_cpu_count_bounds": None,
            "name": "netstat",
            "project": "GridSAM(BES)",
        }
    ),
    "gridsam/cat-staging.jsdl": Accept(
        {
            "executable": "/bin/cat",
            # one argument with a space in it, exactly as written
            "arguments": ("dir1/file1.txt dir2/subdir1/file2.txt",),
            "stdout": "stdout.txt",
            "stderr": "stderr.txt",
            "name": "cat job",
            "project": "gridsam project",
        },
        stage_in=(
            into("dir1/file1.txt", HELLO),
            into("dir2/subdir1/file2.txt", f"{GRIDSAM_FTP}/input-file.txt", **ANON),
        ),
        stage_out=(out("stdout.txt", f"{GRIDSAM_FTP}/output/stdout.txt", **ANON),),
    ),
    "gridsam/cat.jsdl": Accept(
        {
            "executable": "/bin/cat",
            "arguments": ("dir1/file1.txt", "dir2/subdir1/file2.txt"),
            "environment": {"ENV1": "dir1/file1.txt", "ENV2": "dir2/subdir1/file2.txt"},
            "stdout": "stdout.txt",
            "stderr": "stderr.txt",
        },
        stage_in=(
            into("dir1/file1.txt", HELLO),
            into("dir2/subdir1/file2.txt", f"{GRIDSAM_FTP}/input/file.txt", **ANON),
        ),
        stage_out=(out("stdout.txt", f"{GRIDSAM_FTP}/output/file.txt", **ANON),),
    ),
    "gridsam/date.jsdl": Accept(
        {"executable": "/bin/date", "arguments": ("-u",), "stdout": "stdout.txt"},
        stage_out=(out("stdout.txt", "ftp://gridsam.lesc.doc.ic.ac.uk:45521/public/test.txt"),),
    ),
    "gridsam/echoenv.jsdl": Accept(
        {
            "executable": "bin/echo-env",  # relative: the staged-in file below
            "arguments": (),
            "environment": {"ENV1": "hello", "ENV2": "world"},
        },
        stage_in=(into("bin/echo-env", "http://gridsam.sourceforge.net/test_data/bin/echo-env"),),
        stage_out=(
            out(
                "stdout.txt",
                "ftp://example-ftp-server.com/public/output/echo-env.txt",
                **ANON,
            ),
            out(
                "stderr.txt",
                "ftp://example-ftp-server.com/public/output/stderr.txt",
                **ANON,
            ),
        ),
    ),
    "gridsam/helloworld.jsdl": Accept(
        {"executable": "/bin/echo", "arguments": ("hello world",), "stdout": ""}
    ),
    "gridsam/invalid-application.jsdl": Accept(
        {"executable": "some-unknown-executable", "name": "invalid job"},
        fails_at="process start: no program of that name is staged in or on the PATH, "
        "so the execution backend reports the activity Failed with the exec error",
    ),
    "gridsam/invalid-input-staging.jsdl": Refuse(UF, "jsdl:URI", "scheme 'urn'"),
    "gridsam/invalid-output-staging.jsdl": Accept(
        {"executable": "/bin/echo", "stdout": "stdout.txt"},
        stage_out=(out("stdout.txt", "http://www.doc.ic.ac.uk/readonly.txt"),),
        fails_at="stage-out: the HTTP server refuses the upload; the activity ends Failed",
    ),
    "gridsam/invalid-staging.jsdl": Refuse(UF, "jsdl:URI", "scheme 'urn'"),
    "gridsam/invalid.jsdl": Refuse(IRM, "{urn:wrongnamespace}JobDefinition", "not a JSDL job"),
    "gridsam/jsdl_error_deleteFailedFileJob-stagein.jsdl": Refuse(
        IRM, "jsdl-posix:Executable", SHELL
    ),
    "gridsam/jsdl_error_wrong-creationFlag.jsdl": Refuse(IRM, "jsdl-posix:Executable", SHELL),
    "gridsam/jsdl_error_wrong-executable.jsdl": Refuse(IRM, "jsdl-posix:Executable", SHELL),
    "gridsam/jsdl_error_wrong-stagein-url.jsdl": Refuse(IRM, "jsdl-posix:Executable", SHELL),
    "gridsam/jsdl_error_wrong-stageout-url.jsdl": Refuse(IRM, "jsdl-posix:Executable", SHELL),
    "gridsam/jsdl_ok_onlystagein.jsdl": Accept(
        {"executable": "", "name": "cat job"},  # staging only: nothing runs
        stage_in=(
            into("dir1/file1.txt", f"{OMII}/file1.txt", **FTPUSER),
            into("dir2/subdir1/file2.txt", f"{OMII}/file2.txt", **FTPUSER),
        ),
    ),
    # GridSAM ran this "ok" document through a shell; JSDL names one program here
    "gridsam/jsdl_ok_sleep-onlyexec.jsdl": Refuse(IRM, "jsdl-posix:Executable", SHELL),
    "gridsam/mpi-sample.jsdl": Refuse(
        UF, "{urn:gridsam:mpi}MPIApplication", "jsdl-spmd:SPMDApplication"
    ),
    "gridsam/purestaging.jsdl": Accept(
        {"executable": ""},
        stage_in=(into("dir1/file1.txt", HELLO),),
        stage_out=(out("dir1/file1.txt", "file:///tmp/purestaging.txt"),),
    ),
    "gridsam/remotecat-staging.jsdl": Accept(
        {
            "executable": "bin/concat",
            "arguments": ("dir2/subdir1/file2.txt",),
            "environment": {"FIRST_INPUT": "dir1/file1.txt"},
        },
        stage_in=(
            into("bin/concat", "http://gridsam.sourceforge.net/test_data/download/concat.sh"),
            into("dir1/file1.txt", HELLO),
            into("dir2/subdir1/file2.txt", f"{GRIDSAM_FTP}/input-file.txt", **ANON),
        ),
        stage_out=(out("stdout.txt", f"{GRIDSAM_FTP}/output/stdout.txt", **ANON),),
    ),
    "gridsam/sleep.jsdl": Accept(
        {"executable": "/bin/sleep", "arguments": ("5",), "project": "gridsam", "name": ""}
    ),
    "gridsam/staging-gridftp.jsdl": Refuse(UF, "jsdl:URI", "scheme 'gsiftp'"),
    # both Source and Target in one DataStaging: fetched before, sent on after
    "gridsam/staging.jsdl": Accept(
        {"executable": ""},
        stage_in=(
            into("dir1/file1.txt", HELLO),
            into("dir2/subdir1/file2.txt", f"{GRIDSAM_FTP}/input/file.txt", **ANON),
        ),
        stage_out=(
            out("dir1/file1.txt", f"{GRIDSAM_FTP}/output/file-purestaging-1.txt", **ANON),
            out("dir2/subdir1/file2.txt", f"{GRIDSAM_FTP}/output/file-purestaging-2.txt", **ANON),
        ),
    ),
    # the MyProxy element is foreign client bookkeeping under JobDefinition: ignored
    "gridsam/test-globus-myproxy.jsdl": Accept(
        {"executable": "/bin/sleep", "arguments": ("120",), "stdout": "stdout.txt"},
        stage_out=(out("stdout.txt", f"{GRIDSAM_FTP}/output/stdout.txt", **ANON),),
    ),
    "gridsam/uname.jsdl": Accept(
        {"executable": "/usr/bin/uname", "arguments": ("-a",)},
        stage_out=(out("stdout.txt", "ftp://gridsam.lesc.doc.ic.ac.uk:45521/public/test.txt"),),
    ),
    "gridsam/unknown-output-staging.jsdl": Accept(
        {"executable": "/bin/echo", "stdout": "stdout.txt"},
        stage_out=(out("unknown-file.txt", f"{GRIDSAM_FTP}/subdir/output-file.txt", **ANON),),
        fails_at="stage-out: the job never writes unknown-file.txt, so there is nothing "
        "to send; the activity ends Failed naming the file",
    ),
    # ---- UNICORE -----------------------------------------------------------------------
    "unicore/date.jsdl": Refuse(UF, "jsdl:ApplicationName", "'Date' version 1.0"),
    "unicore/date2.jsdl": Accept({"executable": "/bin/mydate", "arguments": ("TESTARGUMENT1",)}),
    "unicore/date_simple.jsdl": Refuse(UF, "jsdl:ApplicationName", REGISTRY),
    "unicore/empty.jsdl": Refuse(IRM, "jsdl:JobDescription", "asks for nothing"),
    "unicore/ex_posix.jsdl": Accept(
        {
            "executable": "/bin/date",
            "environment": {"foo": "bar"},
            "user_name": "nobody",  # the front end checks the caller may be this account
            "group_name": "agroup",
            "name": "Testing job",
            "project": "",
        }
    ),
    "unicore/ftp_with_wsse_ext.jsdl": Accept(
        {"executable": "/bin/cat", "arguments": ("unicore_input.txt",)},
        stage_in=(
            into(
                "unicore_input.txt",
                "ftp://zam935:21/sampledata/sample1.txt",
                username="interop",
                password="IshQ",
            ),
        ),
        stage_out=(
            out(
                "stdout.txt",
                "ftp://zam935:21/sampledata/fzj_unicore.txt",
                username="interop",
                password="IshQ",
            ),
        ),
        check=_wsse_credentials,
    ),
    "unicore/hpcp_sleep.jsdl": Refuse(UF, "jsdl:ApplicationName", "jsdl-hpcpa:Executable"),
    "unicore/hpcp_sleep_other_namespace.jsdl": Refuse(
        UF, "jsdl:ApplicationName", "jsdl-hpcpa:Executable"
    ),
    "unicore/inline_data_staging.jsdl": Refuse(UF, "jsdl:ApplicationName", "'Date'"),
    "unicore/interactive.jsdl": Refuse(UF, "jsdl:ApplicationName", REGISTRY),
    "unicore/jsdl_sample_with_hpc_ext.jsdl": Accept(
        {
            "executable": "bin/stdin.txt",
            "arguments": ("-rn",),
            "exclusive": True,
            # recorded as asked; matching them against the backend is the front end's
            # job (a Linux site answers UnsupportedFeature for WINNT)
            "operating_system": "WINNT",
            "cpu_architecture": "x86",
            "total_cpu_count": 1,
        },
        stage_in=(
            into(
                "bin/stdin.txt",
                "ftp://sunfire2.cs.virginia.edu:5213/gridsam.sh",
                username="sc07demo",
                password="hpcpsc07",
            ),
        ),
        stage_out=(
            out(
                "stdout.txt",
                "ftp://sunfire2.cs.virginia.edu:5213/enter_file_name_here.out",
                username="sc07demo",
                password="hpcpsc07",
            ),
        ),
        check=_hpc_ext_credentials("hpcpsc07"),
    ),
    # the same with an empty UsernameToken: no credential at all
    "unicore/jsdl_sample_with_hpc_ext_nouser.jsdl": Accept(
        {"executable": "bin/stdin.txt", "operating_system": "WINNT", "exclusive": True},
        stage_in=(into("bin/stdin.txt", "ftp://sunfire2.cs.virginia.edu:5213/gridsam.sh"),),
        stage_out=(
            out("stdout.txt", "ftp://sunfire2.cs.virginia.edu:5213/enter_file_name_here.out"),
        ),
        check=_hpc_ext_credentials(""),
    ),
    # POSIX children out of schema order (Argument after Error): read anyway
    "unicore/posix.jsdl": Accept(
        {
            "executable": "/bin/date",
            "arguments": ("-v",),
            "stdin": "stdin",
            "stdout": "stdout",
            "stderr": "stderr",
            "environment": {"test": "test_value", "foo": "bar"},
        }
    ),
    "unicore/prepost.jsdl": Refuse(UF, "unicore:UserPreCommand", "not ignored"),
    # range*.jsdl are RangeValue fragments, not job definitions (see test_range_fragments)
    "unicore/range1.jsdl": Refuse(IRM, "jsdl:IndividualCPUCount", "not a JSDL job definition"),
    "unicore/range2.jsdl": Refuse(IRM, "jsdl:IndividualCPUCount", "not a JSDL job definition"),
    "unicore/range3.jsdl": Refuse(IRM, "jsdl:IndividualCPUCount", "not a JSDL job definition"),
    "unicore/sleep.jsdl": Refuse(UF, "jsdl:ApplicationName", "'Sleep' version 1.0"),
    "unicore/spmd.jsdl": Accept(
        {
            "executable": "/bin/date",
            "arguments": ("-v",),
            "spmd_variation": "OpenMPI",
            "spmd_processes": 8,
            "processes_per_host": 4,
            # actualIndividualCPUCount with no IndividualCPUCount: one thread per CPU
            "threads_per_process": None,
            "stdin": "stdin",
        }
    ),
    "unicore/spmd2.jsdl": Accept(
        {
            "executable": "/bin/date",
            "spmd_variation": "OpenMPI",
            # actualTotalCPUCount with no TotalCPUCount: one process per granted CPU
            "spmd_processes": None,
            "processes_per_host": 4,
            "threads_per_process": 2,
        }
    ),
    "unicore/staging_1.jsdl": Refuse(IRM, "jsdl:DataStaging", "<jsdl:FileName>myfile</"),
    "unicore/staging_2.jsdl": Refuse(IRM, "jsdl:DataStaging", "has no jsdl:FileName"),
    "unicore/staging_3.jsdl": Refuse(IRM, "jsdl:DataStaging", "has no jsdl:FileName"),
    "unicore/staging_4.jsdl": Refuse(IRM, "jsdl:DataStaging", "has no jsdl:FileName"),
    "unicore/staging_credentials.jsdl": Accept(
        {"executable": ""},
        stage_in=(
            into("foo.txt", "http://some.where/foo.txt", username="user", password="pass"),
            into("bar.txt", "http://some.where/bar.txt", bearer_token="123"),
            into("spam.txt", "http://some.where/spam.txt"),
        ),
        check=_staging_credentials,
    ),
    # UNICORE's test:// scheme is a fixture of its own test suite
    "unicore/sweep-example-with-stage-ins.xml": Refuse(UF, "jsdl:URI", "sweep point 1 of 3"),
    "unicore/sweep-example1.xml": Accept(
        {"executable": "/bin/echo"}, count=3, check=_sweep_arguments
    ),
    "unicore/sweep-stage-ins.xml": Refuse(UF, "jsdl:URI", "scheme 'test' in 'test://foo1'"),
    "unicore/testConditional.jsdl": Refuse(UF, "jsdl:ApplicationName", "'TestConditionalArgs'"),
    "unicore/testConditional2.jsdl": Refuse(UF, "jsdl:ApplicationName", REGISTRY),
}


def test_every_sample_has_an_outcome(jsdl_dir: Path) -> None:
    present = {
        f"{p.parent.name}/{p.name}" for p in jsdl_dir.glob("*/*") if p.suffix in (".jsdl", ".xml")
    }
    assert len(present) == 57
    assert present == set(OUTCOMES)


@pytest.mark.parametrize("name", sorted(OUTCOMES))
def test_sample(jsdl_dir: Path, name: str) -> None:
    outcome = OUTCOMES[name]
    root = load(jsdl_dir, name)
    if isinstance(outcome, Refuse):
        with pytest.raises(JSDLFault) as caught:
            read_job_definition(root)
        fault = caught.value
        assert (fault.fault, fault.element) == (outcome.fault, outcome.element)
        assert outcome.says in str(fault)
        assert str(fault).startswith(outcome.element)  # the message names the element first
        return
    specs = read_job_definition(root)
    assert len(specs) == outcome.count
    spec = specs[0]
    for key, expected in outcome.fields.items():
        assert getattr(spec, key) == expected, key
    assert spec.stage_in == outcome.stage_in
    assert spec.stage_out == outcome.stage_out
    if outcome.check:
        outcome.check(specs)


RANGES = {
    # exact 1.0 → 1 CPU, no range to keep
    "unicore/range1.jsdl": (1, None, Bounds(1.0, 1.0)),
    # "up to 10": asks for 10, and says fewer will do
    "unicore/range2.jsdl": (10, Bounds(None, 10.0), Bounds(None, 10.0)),
    # 1..10: asks for the least it needs, 1, and keeps the range
    "unicore/range3.jsdl": (1, Bounds(1.0, 10.0), Bounds(1.0, 10.0)),
}


@pytest.mark.parametrize("name", sorted(RANGES))
def test_range_fragments(jsdl_dir: Path, name: str) -> None:
    """The range*.jsdl fragments read as RangeValues, alone and inside a job."""
    fragment = load(jsdl_dir, name)
    request, kept, bounds = RANGES[name]
    value = read_range_value(fragment)
    assert value.request(fragment, integral=True) == request
    assert value.bounds() == bounds
    job = parse(
        b'<JobDefinition xmlns="http://schemas.ggf.org/jsdl/2005/11/jsdl"><JobDescription>'
        b"<Application><POSIXApplication "
        b'xmlns="http://schemas.ggf.org/jsdl/2005/11/jsdl-posix">'
        b"<Executable>/bin/true</Executable></POSIXApplication></Application>"
        b"<Resources/></JobDescription></JobDefinition>"
    )
    job[0][1].append(fragment)
    (spec,) = read_job_definition(job)
    assert spec.individual_cpu_count == request
    assert spec.individual_cpu_count_bounds == kept


def _repaired(jsdl_dir: Path, name: str) -> JobSpec:
    """The document with its shell-line Executable replaced by a program."""
    root = load(jsdl_dir, name)
    (executable,) = root.iter(f"{POSIX}Executable")
    executable.text = "/bin/cat"
    (spec,) = read_job_definition(root)
    return spec


def test_jsdl_error_documents_fail_where_gridsam_meant_them_to(jsdl_dir: Path) -> None:
    """What each jsdl_error_* document was written to provoke, once its Executable (a
    shell command line, refused first) is repaired: all are valid staging requests whose
    failure shows only when the job runs, at the stage named in each comment."""
    # an unknown program: accepted, fails at process start
    root = load(jsdl_dir, "gridsam/jsdl_error_wrong-executable.jsdl")
    (executable,) = root.iter(f"{POSIX}Executable")
    executable.text = "/bin/catxx"
    (spec,) = read_job_definition(root)
    assert spec.executable == "/bin/catxx"
    # append on a stage-in is valid JSDL: the first file is created, later ones appended
    spec = _repaired(jsdl_dir, "gridsam/jsdl_error_wrong-creationFlag.jsdl")
    assert [s.creation_flag for s in spec.stage_in] == ["append", "overwrite"]
    # a source that does not exist on the server: fails at stage-in
    spec = _repaired(jsdl_dir, "gridsam/jsdl_error_wrong-stagein-url.jsdl")
    assert spec.stage_in[0].source == f"{OMII}/file1-not-exist.txt"
    # a login with an empty password: fails at stage-out when the server refuses it
    spec = _repaired(jsdl_dir, "gridsam/jsdl_error_wrong-stageout-url.jsdl")
    assert spec.stage_out[0].target == f"{OMII}/cat_env_result.txt"
    assert (spec.stage_out[0].username, spec.stage_out[0].password) == ("ftpuser", "")
    # a 1 GB stage-in, a missing file and a target without write permission: fails at
    # stage-in (the missing file), and would at stage-out (no permission)
    spec = _repaired(jsdl_dir, "gridsam/jsdl_error_deleteFailedFileJob-stagein.jsdl")
    assert [s.filename for s in spec.stage_in] == [
        "1G_http_stage_in",
        "1G_ftp_stage_in",
        "localstage_in",
    ]
    assert spec.stage_out[0].target == "file:///home/gos/stage-out/no-permission-stagein.txt"


def test_inline_data_is_refused_naming_it_once_the_application_is_given(
    jsdl_dir: Path,
) -> None:
    root = load(jsdl_dir, "unicore/inline_data_staging.jsdl")
    application = root[0][0]
    for child in list(application):
        application.remove(child)
    body = etree.SubElement(application, f"{POSIX}POSIXApplication")
    etree.SubElement(body, f"{POSIX}Executable").text = "/bin/sh"
    with pytest.raises(JSDLFault) as caught:
        read_job_definition(root)
    assert (caught.value.fault, caught.value.element) == (UF, "unicore:InlineData")


def test_resource_requirements_of_the_samples_against_a_linux_site(jsdl_dir: Path) -> None:
    """What CreateActivity answers on a Linux x86_64 site after reading (gateway.jsdl.match.fit)."""
    from gateway.jsdl.match import ResourceOffer, fit

    offer = ResourceOffer(2, 2**32, "LINUX", "x86_64", ("node1",))
    (windows,) = read_job_definition(load(jsdl_dir, "unicore/jsdl_sample_with_hpc_ext.jsdl"))
    with pytest.raises(JSDLFault) as caught:
        fit(windows, offer)
    assert (caught.value.fault, caught.value.element) == (UF, "jsdl:OperatingSystemName")
    assert "WINNT" in str(caught.value) and "LINUX" in str(caught.value)
    (netstat,) = read_job_definition(load(jsdl_dir, "gridsam/bes-netstat.jsdl"))
    assert fit(netstat, offer).total_cpu_count == 1


WEIRD = ("", "-1", "0", "1e309", "nan", "x" * 300, "http://", "ftp://h:0/x", "../x", "2.5",
         "a;b", "99999999999999999999999", "http://[::1/", "true")  # fmt: skip


def _mutate(root: etree._Element, rnd: random.Random) -> None:
    """One random, schema-breaking change: remove, duplicate, retext, unqualify, move,
    add a foreign child, set an odd attribute, or rename into another JSDL namespace."""
    nodes = [e for e in root.iter() if isinstance(e.tag, str)]
    node = rnd.choice(nodes)
    parent = node.getparent()
    op = rnd.randrange(8)
    if op == 0 and parent is not None:
        parent.remove(node)
    elif op == 1 and parent is not None:
        node.addnext(copy.deepcopy(node))
    elif op == 2:
        for child in list(node):
            node.remove(child)
        node.text = rnd.choice(WEIRD)
    elif op == 3:
        node.tag = etree.QName(node).localname
    elif op == 4:
        other = rnd.choice(nodes)
        if parent is not None and other is not node and node not in other.iterancestors():
            other.append(node)
    elif op == 5:
        etree.SubElement(node, "{urn:foreign}X").text = "y"
    elif op == 6:
        attribute = rnd.choice(["name", "filesystemName", "actualTotalCPUCount", "start", "step"])
        node.set(attribute, rnd.choice(WEIRD))
    else:
        namespace = rnd.choice([JSDL_NS, POSIX[1:-1], "http://schemas.ogf.org/jsdl/2009/03/sweep"])
        node.tag = f"{{{namespace}}}{etree.QName(node).localname}"


def test_mutated_samples_give_job_specs_or_faults_and_nothing_else(jsdl_dir: Path) -> None:
    """Broken documents must never escape as anything but a JSDLFault (no 500s)."""
    files = sorted(OUTCOMES)
    originals = {name: (jsdl_dir / name).read_bytes() for name in files}
    outcomes = {"accepted": 0, "refused": 0}
    for seed in range(1500):
        rnd = random.Random(seed)
        root = parse(originals[rnd.choice(files)])
        for _ in range(rnd.randint(1, 3)):
            _mutate(root, rnd)
        try:
            specs = read_job_definition(root)
        except JSDLFault as fault:
            assert fault.fault in (IRM, UF)
            assert fault.element and str(fault).startswith(fault.element), seed
            outcomes["refused"] += 1
        else:
            assert specs and all(isinstance(s, JobSpec) for s in specs), seed
            outcomes["accepted"] += 1
    assert outcomes["accepted"] > 100 and outcomes["refused"] > 100
