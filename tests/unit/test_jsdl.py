"""JSDL → JobSpec: applications, limits, resources, SPMD, and the faults for each."""

from __future__ import annotations

import pytest

from backends.contracts.model import Bounds, JobSpec
from gateway.jsdl.reader import JSDLFault, read_job_definition
from gateway.xmlsafe import parse

NS = (
    'xmlns="http://schemas.ggf.org/jsdl/2005/11/jsdl" '
    'xmlns:posix="http://schemas.ggf.org/jsdl/2005/11/jsdl-posix" '
    'xmlns:hpcpa="http://schemas.ggf.org/jsdl/2006/07/jsdl-hpcpa" '
    'xmlns:spmd="http://schemas.ogf.org/jsdl/2007/02/jsdl-spmd"'
)


def job(description: str, extra: str = "") -> bytes:
    return f"<JobDefinition {NS}><JobDescription>{description}</JobDescription>{extra}</JobDefinition>".encode()


def posix(body: str, around: str = "") -> bytes:
    return job(
        f"<Application><posix:POSIXApplication>{body}</posix:POSIXApplication></Application>{around}"
    )


def read(document: bytes) -> JobSpec:
    (spec,) = read_job_definition(parse(document))
    return spec


def refused(document: bytes) -> JSDLFault:
    with pytest.raises(JSDLFault) as caught:
        read_job_definition(parse(document))
    return caught.value


EXE = "<posix:Executable>/bin/true</posix:Executable>"


# ---- applications ------------------------------------------------------------------------


def test_posix_application_in_full() -> None:
    spec = read(
        posix(
            "<posix:Executable> /usr/bin/env </posix:Executable>"
            "<posix:Argument>-0</posix:Argument><posix:Argument/>"
            "<posix:Argument>two words</posix:Argument>"
            "<posix:Input>in.txt</posix:Input><posix:Output>out.txt</posix:Output>"
            "<posix:Error>err.txt</posix:Error><posix:WorkingDirectory>work</posix:WorkingDirectory>"
            '<posix:Environment name="A">1</posix:Environment>'
            '<posix:Environment name="EMPTY"/>'
            "<posix:WallTimeLimit>60</posix:WallTimeLimit>"
            "<posix:FileSizeLimit>1048576</posix:FileSizeLimit>"
            "<posix:CoreDumpLimit>0</posix:CoreDumpLimit>"
            "<posix:DataSegmentLimit>1000</posix:DataSegmentLimit>"
            "<posix:LockedMemoryLimit>2000</posix:LockedMemoryLimit>"
            "<posix:MemoryLimit>268435456</posix:MemoryLimit>"
            "<posix:OpenDescriptorsLimit>64</posix:OpenDescriptorsLimit>"
            "<posix:StackSizeLimit>8388608</posix:StackSizeLimit>"
            "<posix:CPUTimeLimit>30</posix:CPUTimeLimit>"
            "<posix:ProcessCountLimit>10</posix:ProcessCountLimit>"
            "<posix:VirtualMemoryLimit>536870912</posix:VirtualMemoryLimit>"
            "<posix:ThreadCountLimit>4</posix:ThreadCountLimit>"
            "<posix:UserName>alice</posix:UserName><posix:GroupName>grid</posix:GroupName>"
        )
    )
    assert spec.executable == "/usr/bin/env"  # surrounding white space is not a file name
    assert spec.arguments == ("-0", "", "two words")
    assert (spec.stdin, spec.stdout, spec.stderr) == ("in.txt", "out.txt", "err.txt")
    assert spec.working_directory == "work"
    assert spec.environment == {"A": "1", "EMPTY": ""}
    assert (spec.wall_time_limit, spec.cpu_time_limit) == (60, 30)
    assert (spec.memory_limit, spec.virtual_memory_limit) == (268435456, 536870912)
    assert (spec.file_size_limit, spec.core_dump_limit, spec.stack_size_limit) == (
        1048576,
        0,
        8388608,
    )
    assert (spec.data_segment_limit, spec.locked_memory_limit) == (1000, 2000)
    assert (spec.open_descriptors_limit, spec.process_count_limit) == (64, 10)
    assert spec.thread_count_limit == 4
    assert (spec.user_name, spec.group_name) == ("alice", "grid")
    assert spec.stage_in == spec.stage_out == ()
    assert spec.spmd_variation == ""


@pytest.mark.parametrize(
    "namespace",
    [
        "http://schemas.ggf.org/jsdl/2006/07/jsdl-hpcpa",
        "http://schemas.ogf.org/jsdl/2006/07/jsdl-hpcpa",
    ],
)
def test_hpc_profile_application_in_either_namespace(namespace: str) -> None:
    spec = read(
        job(
            f'<Application><HPCProfileApplication xmlns="{namespace}">'
            "<Executable>/bin/hostname</Executable><Argument>-f</Argument>"
            "<Output>o</Output><Error>e</Error><WorkingDirectory>/tmp/x</WorkingDirectory>"
            '<Environment name="X">y</Environment><UserName>bob</UserName>'
            "</HPCProfileApplication></Application>"
        )
    )
    assert (spec.executable, spec.arguments, spec.stdout, spec.stderr) == (
        "/bin/hostname",
        ("-f",),
        "o",
        "e",
    )
    assert (spec.working_directory, spec.environment, spec.user_name) == (
        "/tmp/x",
        {"X": "y"},
        "bob",
    )


def test_hpc_profile_has_no_limits() -> None:
    fault = refused(
        job(
            "<Application><hpcpa:HPCProfileApplication><hpcpa:Executable>/bin/true</hpcpa:Executable>"
            "<hpcpa:WallTimeLimit>5</hpcpa:WallTimeLimit></hpcpa:HPCProfileApplication></Application>"
        )
    )
    assert (fault.fault, fault.element) == ("UnsupportedFeature", "jsdl-hpcpa:WallTimeLimit")


def test_children_in_any_order_and_unqualified_are_read() -> None:
    spec = read(
        job(
            "<Resources><TotalCPUCount><Exact>2</Exact></TotalCPUCount></Resources>"
            "<Application><posix:POSIXApplication>"
            "<posix:Argument>a</posix:Argument><Executable xmlns=''>/bin/echo</Executable>"
            "<posix:Output>o</posix:Output><Argument xmlns=''>b</Argument>"
            "</posix:POSIXApplication></Application>"
            "<JobIdentification><JobName>late</JobName></JobIdentification>"
        )
    )
    assert (spec.executable, spec.arguments, spec.stdout) == ("/bin/echo", ("a", "b"), "o")
    assert (spec.name, spec.total_cpu_count) == ("late", 2)


def test_job_identification_keeps_name_and_first_project_and_ignores_foreign() -> None:
    spec = read(
        job(
            "<JobIdentification><JobName>n</JobName><Description>d</Description>"
            "<JobAnnotation>a</JobAnnotation><JobProject></JobProject><JobProject>p1</JobProject>"
            '<JobProject>p2</JobProject><x:Tag xmlns:x="urn:client">ignored</x:Tag></JobIdentification>'
            f"<Application><posix:POSIXApplication>{EXE}</posix:POSIXApplication></Application>"
        )
    )
    assert (spec.name, spec.project) == ("n", "p1")


@pytest.mark.parametrize(
    ("body", "fault", "element", "says"),
    [
        (
            "<posix:Executable>sleep 20; date</posix:Executable>",
            "InvalidRequestMessage",
            "jsdl-posix:Executable",
            "/bin/sh with the Arguments -c",
        ),
        (
            "<posix:Executable>/bin/cat $HOME</posix:Executable>",
            "InvalidRequestMessage",
            "jsdl-posix:Executable",
            "'$'",
        ),
        ("<posix:Executable/>", "InvalidRequestMessage", "jsdl-posix:Executable", "is empty"),
        (EXE + EXE, "InvalidRequestMessage", "jsdl-posix:Executable", "appears twice"),
        (
            "<posix:Argument>x</posix:Argument>",
            "InvalidRequestMessage",
            "jsdl-posix:POSIXApplication",
            "names no program",
        ),
        (
            EXE + "<posix:Environment>v</posix:Environment>",
            "InvalidRequestMessage",
            "jsdl-posix:Environment",
            'name="VARIABLE"',
        ),
        (
            EXE
            + '<posix:Environment name="A">1</posix:Environment><posix:Environment name="A">2</posix:Environment>',
            "InvalidRequestMessage",
            "jsdl-posix:Environment",
            "sets A a second time",
        ),
        (
            EXE + "<posix:WallTimeLimit>-1</posix:WallTimeLimit>",
            "InvalidRequestMessage",
            "jsdl-posix:WallTimeLimit",
            "whole number",
        ),
        (
            EXE + "<posix:MemoryLimit>1GB</posix:MemoryLimit>",
            "InvalidRequestMessage",
            "jsdl-posix:MemoryLimit",
            "'1GB'",
        ),
        (
            EXE + "<posix:PipeSizeLimit>512</posix:PipeSizeLimit>",
            "UnsupportedFeature",
            "jsdl-posix:PipeSizeLimit",
            "pipe size",
        ),
        (
            EXE + "<posix:Frobnicate>1</posix:Frobnicate>",
            "UnsupportedFeature",
            "jsdl-posix:Frobnicate",
            "is not a child of jsdl-posix:POSIXApplication that this gateway knows",
        ),
        (
            EXE + '<x:Hook xmlns:x="urn:x">1</x:Hook>',
            "UnsupportedFeature",
            "{urn:x}Hook",
            "not ignored",
        ),
        (
            '<posix:Executable filesystemName="HOME">bin/x</posix:Executable>',
            "UnsupportedFeature",
            "jsdl-posix:Executable",
            "filesystemName",
        ),
        (
            "<posix:Executable><b>x</b></posix:Executable>",
            "InvalidRequestMessage",
            "jsdl-posix:Executable",
            "text only",
        ),
    ],
)
def test_application_faults_name_the_element(
    body: str, fault: str, element: str, says: str
) -> None:
    caught = refused(posix(body))
    assert (caught.fault, caught.element) == (fault, element)
    assert says in str(caught)
    assert "(at jsdl:JobDefinition/jsdl:JobDescription/jsdl:Application/" in str(caught)


def test_a_jsdl_namespace_child_of_the_posix_body_gets_the_fix() -> None:
    caught = refused(posix("<Executable>/bin/true</Executable>"))
    assert (caught.fault, caught.element) == ("InvalidRequestMessage", "jsdl:Executable")
    assert "Write it as jsdl-posix:Executable" in str(caught)


def test_two_application_bodies_are_refused() -> None:
    fault = refused(
        job(
            f"<Application><posix:POSIXApplication>{EXE}</posix:POSIXApplication>"
            f"<posix:POSIXApplication>{EXE}</posix:POSIXApplication></Application>"
        )
    )
    assert (fault.fault, fault.element) == ("InvalidRequestMessage", "jsdl-posix:POSIXApplication")
    assert "second application body" in str(fault)
    assert "jsdl-posix:POSIXApplication[2]" in str(fault)


def test_document_structure_faults() -> None:
    fault = refused(f"<JobDefinition {NS}/>".encode())
    assert (fault.fault, fault.element) == ("InvalidRequestMessage", "jsdl:JobDefinition")
    fault = refused(job("", extra="<JobDescription/>"))
    assert "appears twice" in str(fault)
    fault = refused(
        job(
            f"<Application><posix:POSIXApplication>{EXE}</posix:POSIXApplication></Application><Magic/>"
        )
    )
    assert (fault.fault, fault.element) == ("UnsupportedFeature", "jsdl:Magic")
    fault = refused(
        job(
            f"<Application><posix:POSIXApplication>{EXE}</posix:POSIXApplication></Application>"
            '<x:Prologue xmlns:x="urn:x"/>'
        )
    )
    assert (fault.fault, fault.element) == ("UnsupportedFeature", "{urn:x}Prologue")
    # unqualified JobDefinition is not JSDL: the root must say which language it speaks
    fault = refused(b"<JobDefinition><JobDescription/></JobDefinition>")
    assert fault.element == "JobDefinition"


def test_foreign_elements_after_the_job_description_are_ignored() -> None:
    spec = read(
        posix(EXE).replace(
            b"</JobDefinition>", b'<c:Note xmlns:c="urn:client"><c:Any/></c:Note></JobDefinition>'
        )
    )
    assert spec.executable == "/bin/true"


def test_foreign_attributes_are_ignored() -> None:
    spec = read(posix('<posix:Executable xmlns:a="urn:a" a:hint="x">/bin/true</posix:Executable>'))
    assert spec.executable == "/bin/true"


# ---- resources ---------------------------------------------------------------------------


def resources(inner: str) -> bytes:
    return posix(EXE, around=f"<Resources>{inner}</Resources>")


def test_resources_in_full() -> None:
    spec = read(
        resources(
            "<CandidateHosts><HostName>a.example</HostName><HostName>b.example</HostName></CandidateHosts>"
            "<ExclusiveExecution>true</ExclusiveExecution>"
            "<OperatingSystem><OperatingSystemType><OperatingSystemName>linux</OperatingSystemName>"
            "</OperatingSystemType><OperatingSystemVersion>6.1</OperatingSystemVersion></OperatingSystem>"
            "<CPUArchitecture><CPUArchitectureName>x86_64</CPUArchitectureName></CPUArchitecture>"
            "<IndividualCPUTime><UpperBoundedRange>3600</UpperBoundedRange></IndividualCPUTime>"
            "<IndividualCPUCount><LowerBoundedRange>2</LowerBoundedRange></IndividualCPUCount>"
            "<IndividualPhysicalMemory><Exact>1073741824</Exact></IndividualPhysicalMemory>"
            "<IndividualVirtualMemory><Exact>2147483648</Exact></IndividualVirtualMemory>"
            "<IndividualDiskSpace><Exact>1000</Exact></IndividualDiskSpace>"
            "<TotalCPUTime><Exact>7200</Exact></TotalCPUTime>"
            "<TotalCPUCount><Range><LowerBound>4</LowerBound><UpperBound>16</UpperBound></Range></TotalCPUCount>"
            "<TotalPhysicalMemory><Exact>4294967296</Exact></TotalPhysicalMemory>"
            "<TotalVirtualMemory><Exact>8589934592</Exact></TotalVirtualMemory>"
            "<TotalDiskSpace><Exact>2000</Exact></TotalDiskSpace>"
            "<TotalResourceCount><Exact>2</Exact></TotalResourceCount>"
        )
    )
    assert spec.candidate_hosts == ("a.example", "b.example")
    assert spec.exclusive is True
    assert (spec.operating_system, spec.operating_system_version) == ("LINUX", "6.1")
    assert spec.cpu_architecture == "x86_64"
    assert (spec.individual_cpu_time, spec.total_cpu_time) == (3600, 7200)
    assert spec.individual_cpu_count == 2
    assert spec.individual_cpu_count_bounds == Bounds(2.0, None)
    assert spec.total_cpu_count == 4
    assert spec.total_cpu_count_bounds == Bounds(4.0, 16.0)
    assert (spec.individual_physical_memory, spec.total_physical_memory) == (2**30, 2**32)
    assert (spec.individual_virtual_memory, spec.total_virtual_memory) == (2**31, 2**33)
    assert (spec.individual_disk_space, spec.total_disk_space) == (1000, 2000)
    assert spec.total_resource_count == 2


@pytest.mark.parametrize(
    ("inner", "wanted", "bounds"),
    [
        ("<Exact>4</Exact>", 4, None),
        ("<Exact>8</Exact><Exact>2</Exact>", 2, Bounds(2.0, 8.0)),
        ("<Exact>0</Exact><Exact>2</Exact>", 2, Bounds(0.0, 2.0)),
        (
            "<UpperBoundedRange>4</UpperBoundedRange><LowerBoundedRange>10</LowerBoundedRange>",
            4,
            Bounds(None, None),
        ),
        ('<LowerBoundedRange exclusiveBound="true">2</LowerBoundedRange>', 3, Bounds(2.0, None)),
        ('<UpperBoundedRange exclusiveBound="true">8</UpperBoundedRange>', 7, Bounds(None, 8.0)),
        (
            "<Range><LowerBound>6</LowerBound><UpperBound>9</UpperBound></Range><Exact>12</Exact>",
            6,
            Bounds(6.0, 12.0),
        ),
        (
            "<Range><LowerBound>6</LowerBound><UpperBound>9</UpperBound></Range><Range><LowerBound>2</LowerBound><UpperBound>3</UpperBound></Range>",
            2,
            Bounds(2.0, 9.0),
        ),
        (
            "<Range><LowerBound>1.5</LowerBound><UpperBound>3</UpperBound></Range>",
            2,
            Bounds(1.5, 3.0),
        ),
    ],
)
def test_cpu_count_ranges(inner: str, wanted: int, bounds: Bounds | None) -> None:
    spec = read(resources(f"<TotalCPUCount>{inner}</TotalCPUCount>"))
    assert spec.total_cpu_count == wanted
    assert spec.total_cpu_count_bounds == bounds
    if bounds is not None:
        assert bounds.allows(wanted)


@pytest.mark.parametrize(
    ("inner", "fault", "element", "says"),
    [
        ("<TotalCPUCount/>", "InvalidRequestMessage", "jsdl:TotalCPUCount", "gives no value"),
        (
            "<TotalCPUCount><Exact>2.5</Exact></TotalCPUCount>",
            "InvalidRequestMessage",
            "jsdl:TotalCPUCount",
            "not a whole number",
        ),
        (
            "<TotalCPUCount><Exact>0</Exact></TotalCPUCount>",
            "InvalidRequestMessage",
            "jsdl:TotalCPUCount",
            "fewer than 1",
        ),
        (
            "<TotalCPUCount><Exact>many</Exact></TotalCPUCount>",
            "InvalidRequestMessage",
            "jsdl:Exact",
            "'many'",
        ),
        (
            "<TotalCPUCount><Exact>-3</Exact></TotalCPUCount>",
            "InvalidRequestMessage",
            "jsdl:Exact",
            "at least 0",
        ),
        (
            "<TotalCPUCount><Range><LowerBound>9</LowerBound><UpperBound>3</UpperBound></Range></TotalCPUCount>",
            "InvalidRequestMessage",
            "jsdl:Range",
            "above its UpperBound",
        ),
        (
            "<TotalCPUCount><Range><LowerBound>9</LowerBound></Range></TotalCPUCount>",
            "InvalidRequestMessage",
            "jsdl:Range",
            "both",
        ),
        (
            "<TotalCPUCount><Roughly>3</Roughly></TotalCPUCount>",
            "InvalidRequestMessage",
            "jsdl:Roughly",
            "RangeValue",
        ),
        (
            '<TotalCPUCount><UpperBoundedRange exclusiveBound="true">1</UpperBoundedRange></TotalCPUCount>',
            "InvalidRequestMessage",
            "jsdl:TotalCPUCount",
            "fewer than 1",
        ),
        (
            "<TotalCPUCount><Exact>1</Exact></TotalCPUCount><TotalCPUCount><Exact>1</Exact></TotalCPUCount>",
            "InvalidRequestMessage",
            "jsdl:TotalCPUCount",
            "twice",
        ),
        (
            "<OperatingSystem><OperatingSystemType><OperatingSystemName>Plan9</OperatingSystemName></OperatingSystemType></OperatingSystem>",
            "InvalidRequestMessage",
            "jsdl:OperatingSystemName",
            "LINUX",
        ),
        (
            "<CPUArchitecture><CPUArchitectureName>riscv</CPUArchitectureName></CPUArchitecture>",
            "InvalidRequestMessage",
            "jsdl:CPUArchitectureName",
            "x86_64",
        ),
        ("<CPUArchitecture/>", "InvalidRequestMessage", "jsdl:CPUArchitecture", "exactly one"),
        (
            "<ExclusiveExecution>yes</ExclusiveExecution>",
            "InvalidRequestMessage",
            "jsdl:ExclusiveExecution",
            "true or false",
        ),
        ("<CandidateHosts/>", "InvalidRequestMessage", "jsdl:CandidateHosts", "no jsdl:HostName"),
        (
            "<FileSystem name='scratch'><MountPoint>/scratch</MountPoint></FileSystem>",
            "UnsupportedFeature",
            "jsdl:FileSystem",
            "cannot check",
        ),
        (
            "<IndividualCPUSpeed><Exact>3e9</Exact></IndividualCPUSpeed>",
            "UnsupportedFeature",
            "jsdl:IndividualCPUSpeed",
            "cannot check",
        ),
        (
            "<IndividualNetworkBandwidth><Exact>1</Exact></IndividualNetworkBandwidth>",
            "UnsupportedFeature",
            "jsdl:IndividualNetworkBandwidth",
            "guarantee",
        ),
        (
            '<g:GPU xmlns:g="urn:gpu">1</g:GPU>',
            "UnsupportedFeature",
            "{urn:gpu}GPU",
            "cannot be ignored",
        ),
    ],
)
def test_resource_faults(inner: str, fault: str, element: str, says: str) -> None:
    caught = refused(resources(inner))
    assert (caught.fault, caught.element) == (fault, element)
    assert says in str(caught)


# ---- SPMD --------------------------------------------------------------------------------

VARIATION = (
    "<spmd:SPMDVariation>http://www.ogf.org/jsdl/2007/02/jsdl-spmd/MPICH2</spmd:SPMDVariation>"
)


def spmd(inner: str, resources_xml: str = "") -> bytes:
    return job(
        f"<Application><spmd:SPMDApplication>{EXE}{inner}</spmd:SPMDApplication></Application>"
        + (f"<Resources>{resources_xml}</Resources>" if resources_xml else "")
    )


def test_spmd_counts() -> None:
    spec = read(
        spmd(
            "<spmd:NumberOfProcesses>16</spmd:NumberOfProcesses>"
            "<spmd:ProcessesPerHost>8</spmd:ProcessesPerHost>"
            "<spmd:ThreadsPerProcess>2</spmd:ThreadsPerProcess>" + VARIATION
        )
    )
    assert (spec.spmd_variation, spec.spmd_processes) == ("MPICH2", 16)
    assert (spec.processes_per_host, spec.threads_per_process) == (8, 2)


@pytest.mark.parametrize("attribute", ["actualtotalcpucount", "actualTotalCPUCount"])
def test_spmd_counts_taken_from_resources(attribute: str) -> None:
    spec = read(
        spmd(
            f'<spmd:NumberOfProcesses {attribute}="true"/>'
            '<spmd:ThreadsPerProcess actualindividualcpucount="true"/>' + VARIATION,
            "<IndividualCPUCount><Exact>4</Exact></IndividualCPUCount>"
            "<TotalCPUCount><Exact>32</Exact></TotalCPUCount>",
        )
    )
    assert (spec.spmd_processes, spec.threads_per_process) == (32, 4)
    assert (spec.total_cpu_count, spec.individual_cpu_count) == (32, 4)


@pytest.mark.parametrize(
    ("inner", "fault", "element", "says"),
    [
        ("", "InvalidRequestMessage", "jsdl-spmd:SPMDApplication", "no jsdl-spmd:SPMDVariation"),
        (
            "<spmd:SPMDVariation>http://www.ogf.org/jsdl/2007/02/jsdl-spmd/FancyMPI</spmd:SPMDVariation>",
            "UnsupportedFeature",
            "jsdl-spmd:SPMDVariation",
            "OpenMPI",
        ),
        (
            "<spmd:NumberOfProcesses>0</spmd:NumberOfProcesses>" + VARIATION,
            "InvalidRequestMessage",
            "jsdl-spmd:NumberOfProcesses",
            "at least 1",
        ),
        (
            "<spmd:NumberOfProcesses/>" + VARIATION,
            "InvalidRequestMessage",
            "jsdl-spmd:NumberOfProcesses",
            "is empty",
        ),
        (
            '<spmd:NumberOfProcesses actualtotalcpucount="maybe"/>' + VARIATION,
            "InvalidRequestMessage",
            "jsdl-spmd:NumberOfProcesses",
            "true or false",
        ),
        (
            "<spmd:ProcessesPerHost>2</spmd:ProcessesPerHost><spmd:ProcessesPerHost>2</spmd:ProcessesPerHost>"
            + VARIATION,
            "InvalidRequestMessage",
            "jsdl-spmd:ProcessesPerHost",
            "twice",
        ),
        (
            "<spmd:Topology>ring</spmd:Topology>" + VARIATION,
            "UnsupportedFeature",
            "jsdl-spmd:Topology",
            "not a child of jsdl-spmd:SPMDApplication",
        ),
    ],
)
def test_spmd_faults(inner: str, fault: str, element: str, says: str) -> None:
    caught = refused(spmd(inner))
    assert (caught.fault, caught.element) == (fault, element)
    assert says in str(caught)


def test_spmd_count_and_actual_flag_must_agree() -> None:
    caught = refused(
        spmd(
            '<spmd:NumberOfProcesses actualTotalCPUCount="true">8</spmd:NumberOfProcesses>'
            + VARIATION,
            "<TotalCPUCount><Exact>4</Exact></TotalCPUCount>",
        )
    )
    assert caught.element == "jsdl-spmd:NumberOfProcesses"
    assert "Give one of them" in str(caught)


def test_fault_renders_for_people_and_programs() -> None:
    caught = refused(posix("<posix:Executable>a|b</posix:Executable>"))
    assert str(caught) == caught.message
    assert caught.message.startswith("jsdl-posix:Executable 'a|b' is a shell command line")
    assert repr(caught).startswith("JSDLFault('InvalidRequestMessage', 'jsdl-posix:Executable'")


@pytest.mark.parametrize(
    "body",
    [
        "<POSIXApplication><Executable>/bin/true</Executable></POSIXApplication>",
        '<POSIXApplication xmlns=""><Executable>/bin/true</Executable></POSIXApplication>',
    ],
    ids=["jsdl-namespace", "unqualified"],
)
def test_an_application_body_in_the_wrong_namespace_gets_the_fix(body: str) -> None:
    caught = refused(job(f"<Application>{body}</Application>"))
    assert caught.fault == "InvalidRequestMessage"
    assert (
        "Write it as jsdl-posix:POSIXApplication (namespace http://schemas.ggf.org/jsdl/2005/11/jsdl-posix)"
        in str(caught)
    )


def test_posix_arguments_are_normalized_strings() -> None:
    spec = read(posix(EXE + "<posix:Argument>\n  a\tb\n</posix:Argument>"))
    assert spec.arguments == ("a b",)


def test_application_name_twice_is_refused() -> None:
    caught = refused(
        job(
            "<Application><ApplicationName>a</ApplicationName><ApplicationName>b</ApplicationName></Application>"
        )
    )
    assert (caught.fault, caught.element) == ("InvalidRequestMessage", "jsdl:ApplicationName")


def test_limits_larger_than_a_system_can_set_are_refused() -> None:
    caught = refused(posix(EXE + f"<posix:WallTimeLimit>{2**63}</posix:WallTimeLimit>"))
    assert caught.element == "jsdl-posix:WallTimeLimit"
    assert "more than any limit" in str(caught)
    caught = refused(posix(EXE + f"<posix:CPUTimeLimit>{'9' * 5000}</posix:CPUTimeLimit>"))
    assert "more than any limit" in str(caught)
    caught = refused(posix(EXE + "<posix:CPUTimeLimit>\u0663</posix:CPUTimeLimit>"))  # Arabic 3
    assert "whole number" in str(caught)


def test_a_job_definition_inside_a_create_activity_message() -> None:
    """The SOAP front end hands over the JobDefinition element of its request."""
    envelope = parse(
        b'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>'
        b'<bes:CreateActivity xmlns:bes="http://schemas.ggf.org/bes/2006/08/bes-factory">'
        b"<bes:ActivityDocument>"
        + posix("<posix:Executable>a;b</posix:Executable>")
        + b"</bes:ActivityDocument></bes:CreateActivity></s:Body></s:Envelope>"
    )
    (definition,) = envelope.iter("{http://schemas.ggf.org/jsdl/2005/11/jsdl}JobDefinition")
    caught = refused_element(definition)
    assert "(at jsdl:JobDefinition/jsdl:JobDescription/jsdl:Application/" in str(caught)
    assert "Envelope" not in str(caught)
    sweep = (
        '<sweep:Sweep xmlns:sweep="http://schemas.ogf.org/jsdl/2009/03/sweep" '
        'xmlns:fn="http://schemas.ogf.org/jsdl/2009/03/sweep/functions"><sweep:Assignment>'
        "<sweep:DocumentNode><sweep:Match>//posix:Executable</sweep:Match></sweep:DocumentNode>"
        "<fn:Values><fn:Value>/bin/true</fn:Value><fn:Value>/bin/false</fn:Value></fn:Values>"
        "</sweep:Assignment></sweep:Sweep>"
    )
    definition.append(parse(sweep.encode()))
    specs = read_job_definition(definition)
    assert [s.executable for s in specs] == ["/bin/true", "/bin/false"]
    # the request itself is left as it came (GetActivityDocuments returns it)
    assert definition.find(".//{*}Executable").text == "a;b"


def refused_element(element: object) -> JSDLFault:
    with pytest.raises(JSDLFault) as caught:
        read_job_definition(element)  # type: ignore[arg-type]
    return caught.value


@pytest.mark.parametrize(
    ("document", "element", "fix"),
    [
        (job("<posix:Application/>"), "jsdl-posix:Application", "Write it as jsdl:Application"),
        (
            job("<JobIdentification><posix:JobName>x</posix:JobName></JobIdentification>"),
            "jsdl-posix:JobName",
            "Write it as jsdl:JobName",
        ),
        (
            job("<DataStaging><posix:FileName>f</posix:FileName></DataStaging>"),
            "jsdl-posix:FileName",
            "Write it as jsdl:FileName",
        ),
        (
            resources("<TotalCPUCount><posix:Exact>1</posix:Exact></TotalCPUCount>"),
            "jsdl-posix:Exact",
            "Write it as jsdl:Exact",
        ),
        (
            resources("<posix:TotalCPUCount><Exact>1</Exact></posix:TotalCPUCount>"),
            "jsdl-posix:TotalCPUCount",
            "Write it as jsdl:TotalCPUCount",
        ),
        (
            spmd("<posix:NumberOfProcesses>2</posix:NumberOfProcesses>" + VARIATION),
            "jsdl-posix:NumberOfProcesses",
            "Write it as jsdl-spmd:NumberOfProcesses",
        ),
    ],
)
def test_the_right_name_in_the_wrong_namespace_gets_the_fix(
    document: bytes, element: str, fix: str
) -> None:
    caught = refused(document)
    assert (caught.fault, caught.element) == ("InvalidRequestMessage", element)
    assert fix in str(caught)


def test_spmd_count_with_the_actual_flag_and_a_bad_value() -> None:
    caught = refused(
        spmd(
            '<spmd:NumberOfProcesses actualTotalCPUCount="true">many</spmd:NumberOfProcesses>'
            + VARIATION,
            "<TotalCPUCount><Exact>4</Exact></TotalCPUCount>",
        )
    )
    assert (caught.fault, caught.element) == (
        "InvalidRequestMessage",
        "jsdl-spmd:NumberOfProcesses",
    )
    assert "'many'" in str(caught)
    spec = read(
        spmd(
            '<spmd:NumberOfProcesses actualTotalCPUCount="true">4</spmd:NumberOfProcesses>'
            + VARIATION,
            "<TotalCPUCount><Exact>4</Exact></TotalCPUCount>",
        )
    )
    assert spec.spmd_processes == 4


def test_long_values_are_cut_short_in_messages() -> None:
    caught = refused(posix(f"<posix:Executable>/bin/x;{'y' * 5000}</posix:Executable>"))
    assert "... (5007 characters)" in str(caught)
    assert len(str(caught)) < 600
