"""zeep, built from the OFFICIAL bes-factory.wsdl, drives a real ``xtreemgate serve``
process through the classic OGSA-BES interop sequence, authenticating with a WS-Security
PasswordDigest UsernameToken and sending WS-Addressing headers.

The official WSDL's schemas import the SOAP envelope and WS-Addressing schemas from the
network; the transport below serves them from local copies (loopback only here).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest
import zeep
from lxml import etree
from zeep.transports import Transport
from zeep.wsa import WsAddressingPlugin
from zeep.wsse.username import UsernameToken

from tests.bes_schemas import INTEROP, NETWORK
from tests.conftest import PASSWORD
from tests.services import prepare_state

OFFICIAL_WSDL = INTEROP / "schemas" / "bes-factory.wsdl"
BES = "http://schemas.ggf.org/bes/2006/08/bes-factory"
POSIX = "http://schemas.ggf.org/jsdl/2005/11/jsdl-posix"


class LocalSchemas(Transport):
    """Documents the official schemas would fetch from the network, served from disk."""

    def load(self, url: str) -> bytes:
        if url in NETWORK:
            return NETWORK[url].read_bytes()
        return super().load(url)


def posix_application(executable: str, *arguments: str, output: str = "") -> etree._Element:
    app = etree.Element(f"{{{POSIX}}}POSIXApplication", nsmap={"posix": POSIX})
    etree.SubElement(app, f"{{{POSIX}}}Executable").text = executable
    for argument in arguments:
        etree.SubElement(app, f"{{{POSIX}}}Argument").text = argument
    if output:
        etree.SubElement(app, f"{{{POSIX}}}Output").text = output
    return app


@pytest.fixture
def staging_root():
    """Where file:// stage-out may write: a folder the job's account (nobody, when the
    tests run as root) can reach, unlike pytest's private temp folders."""
    import shutil
    import tempfile

    root = Path(tempfile.mkdtemp(prefix="xg-zeep-staging-"))
    root.chmod(0o777)  # the job runs as another account
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def gateway(gateway_server, tmp_path, staging_root):
    return start_gateway(gateway_server, tmp_path, staging_root)


def start_gateway(gateway_server, tmp_path, staging_root, **extra: str):
    env = {k: v for k, v in os.environ.items() if not k.startswith("XTREEMGATE_")}
    env.update(
        **extra,
        XTREEMGATE_STATE_DIR=str(tmp_path / "state"),
        XTREEMGATE_LOGGING__FORMAT="text",
        XTREEMGATE_LOGGING__ACCESS_LOG="false",
        XTREEMGATE_EXECUTION__FILE_STAGING_ROOTS=json.dumps([str(staging_root)]),
    )
    xtreemgate = prepare_state(env, {"alice": PASSWORD})
    key = subprocess.run(
        [xtreemgate, "user", "wss-key", "alice"],
        env=env,
        text=True,
        check=True,
        capture_output=True,
    ).stdout.strip()
    return gateway_server(env), key


def bes_client(url: str, key: str):
    if not OFFICIAL_WSDL.exists():
        pytest.fail(f"the official WSDL is missing: {OFFICIAL_WSDL} (root/../shared/interop)")
    client = zeep.Client(
        str(OFFICIAL_WSDL),
        transport=LocalSchemas(),
        wsse=UsernameToken("alice", key, use_digest=True),
        plugins=[WsAddressingPlugin()],
    )
    return client, client.create_service(f"{{{BES}}}BESFactoryBinding", f"{url}/bes")


def job_definition(client, app: etree._Element, staging: list | None = None):
    jsdl = "{http://schemas.ggf.org/jsdl/2005/11/jsdl}"
    definition = client.get_element(f"{jsdl}JobDefinition")
    return definition(
        JobDescription={
            "JobIdentification": {"JobName": "zeep interop"},
            "Application": {"_value_1": [app]},
            "DataStaging": staging or [],
        }
    )


def wait_for(service, epr, *states: str, timeout: float = 20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        (response,) = service.GetActivityStatuses(ActivityIdentifier=[epr]).Response
        assert response.Fault is None, response.Fault
        if response.ActivityStatus.state in states:
            return response.ActivityStatus
        time.sleep(0.1)
    reasons = [e.text for e in response.ActivityStatus._value_1 or []]
    raise AssertionError(f"never reached {states}: {response.ActivityStatus.state} {reasons}")


def test_classic_interop_sequence(gateway, staging_root):
    url, key = gateway
    interop_sequence(url, key, staging_root, os.cpu_count())


@pytest.fixture
def slurm_gateway(gateway_server, tmp_path, staging_root, slurm_cluster):
    """The same gateway process with the Slurm backend, on the session's real cluster."""
    import shutil
    import uuid

    work = slurm_cluster.directory / f"bes-{uuid.uuid4().hex[:8]}"
    work.mkdir(mode=0o755)
    python = shutil.which("python3", path="/usr/bin:/bin")
    if python is None:
        pytest.fail("a system python3 is needed: the job's account stages data with it")
    return start_gateway(
        gateway_server,
        tmp_path,
        staging_root,
        XTREEMGATE_BACKENDS__EXECUTION="slurm",
        XTREEMGATE_EXECUTION__SLURM__WORK_DIR=str(work),
        XTREEMGATE_EXECUTION__SLURM__SLURM_CONF=str(slurm_cluster.conf),
        XTREEMGATE_EXECUTION__SLURM__POLL_INTERVAL_SECONDS="0.2",
        # the job's account (nobody) cannot enter the gateway's venv; staging is stdlib
        XTREEMGATE_EXECUTION__SLURM__PYTHON=python,
    )


def test_classic_interop_sequence_on_slurm(slurm_gateway, slurm_cluster, staging_root):
    url, key = slurm_gateway
    from tests.slurm_cluster import NODE_CPUS

    interop_sequence(url, key, staging_root, NODE_CPUS)
    from tests.slurm_cluster import wait_for as until

    def states():
        names = slurm_cluster.run("squeue", "-h", "-t", "all", "-o", "%j|%T").stdout
        return {line.split("|")[1] for line in names.splitlines() if line.startswith("xg-")}

    # terminate cancelled the Slurm job itself (COMPLETING while its processes end)
    assert until(lambda: "CANCELLED" in states(), 15), states()


def interop_sequence(url: str, key: str, staging_root: Path, cpus: int | None) -> None:
    client, service = bes_client(url, key)

    attributes = service.GetFactoryAttributesDocument()
    document = attributes.FactoryResourceAttributesDocument
    assert document.IsAcceptingNewActivities is True
    assert document.BasicResourceAttributesDocument.CPUCount == cpus
    assert document.TotalNumberOfActivities == 0

    staged = staging_root / "greeting.txt"
    created = service.CreateActivity(
        ActivityDocument={
            "JobDefinition": job_definition(
                client,
                posix_application("/bin/echo", "hello", "from", "zeep", output="out.txt"),
                [
                    {
                        "FileName": "out.txt",
                        "CreationFlag": "overwrite",
                        "Target": {"URI": staged.as_uri()},
                    }
                ],
            )
        }
    )
    epr = created.ActivityIdentifier
    assert epr.Address._value_1.startswith(f"{url}/bes/activities/")  # xsd:anyURI + attrs
    status = wait_for(service, epr, "Finished", "Failed")
    assert status.state == "Finished", getattr(status, "_value_1", status)
    assert staged.read_text() == "hello from zeep\n"

    sleeper = service.CreateActivity(
        ActivityDocument={
            "JobDefinition": job_definition(client, posix_application("/bin/sleep", "60"))
        }
    ).ActivityIdentifier
    (documents,) = service.GetActivityDocuments(ActivityIdentifier=[sleeper]).Response
    assert documents.Fault is None
    assert documents.JobDefinition.JobDescription.JobIdentification.JobName == "zeep interop"
    wait_for(service, sleeper, "Running")
    (terminated,) = service.TerminateActivities(ActivityIdentifier=[sleeper]).Response
    assert terminated.Cancelled is True
    assert wait_for(service, sleeper, "Cancelled").state == "Cancelled"

    # One batch, two answers: the finished one and the cancelled one, in order.
    both = service.GetActivityStatuses(ActivityIdentifier=[epr, sleeper]).Response
    assert [r.ActivityStatus.state for r in both] == ["Finished", "Cancelled"]


def test_zeep_sees_the_standard_faults(gateway):
    url, key = gateway
    client, service = bes_client(url, key)
    # From loopback a PasswordText token with the login password is accepted too.
    text_client = zeep.Client(
        str(OFFICIAL_WSDL), transport=LocalSchemas(), wsse=UsernameToken("alice", PASSWORD)
    )
    text_service = text_client.create_service(f"{{{BES}}}BESFactoryBinding", f"{url}/bes")
    assert text_service.GetFactoryAttributesDocument().FactoryResourceAttributesDocument
    no_executable = etree.Element(f"{{{POSIX}}}POSIXApplication", nsmap={"posix": POSIX})
    with pytest.raises(zeep.exceptions.Fault) as caught:
        service.CreateActivity(
            ActivityDocument={"JobDefinition": job_definition(client, no_executable)}
        )
    assert "Executable" in caught.value.message
    detail = caught.value.detail
    assert etree.QName(detail[0]).localname == "InvalidRequestMessageFault"

    epr_type = client.get_type("{http://www.w3.org/2005/08/addressing}EndpointReferenceType")
    unknown = epr_type(
        Address={"_value_1": f"{url}/bes/activities/0d4a8a39-0000-4000-8000-000000000000"}
    )
    (response,) = service.GetActivityStatuses(ActivityIdentifier=[unknown]).Response
    assert response.ActivityStatus is None
    assert "no activity" in response.Fault.faultstring


def test_zeep_reads_the_served_wsdl(client):
    """The WSDL at /bes?wsdl and the schemas it links are complete and local: zeep builds
    a client from them alone, pointed at the gateway's own address."""
    served = zeep.Client("http://testserver/bes?wsdl", transport=AppTransport(client))
    port = served.wsdl.services["BesFactoryService"].ports["BESFactoryPortType"]
    assert port.binding_options["address"] == "http://testserver/bes"
    assert "CreateActivity" in port.binding._operations


class AppTransport(Transport):
    """zeep talking to the app in process: GETs and POSTs through the test client."""

    def __init__(self, client, headers=None):
        super().__init__()
        self.client = client
        self.extra = headers or {}

    def load(self, url: str) -> bytes:
        assert url.startswith("http://testserver/"), f"tried to fetch {url}"
        response = self.client.get(url.removeprefix("http://testserver"))
        assert response.status_code == 200, url
        return response.content

    def post(self, address, message, headers):
        return self.client.post(
            address.removeprefix("http://testserver"),
            content=message,
            headers={**headers, **self.extra},
        )


def test_zeep_drives_management_from_the_served_wsdl(client, runtime):
    """The hand-written management WSDL is usable by a WSDL-driven client."""
    from gateway.auth.users import add_user
    from tests.conftest import basic

    add_user(runtime.db, "root", PASSWORD, site_admin=True)
    add_user(runtime.db, "alice", PASSWORD)
    admin = zeep.Client(
        "http://testserver/bes?wsdl=management", transport=AppTransport(client, basic("root"))
    )
    admin.service.StopAcceptingNewActivities()
    user = zeep.Client(
        "http://testserver/bes?wsdl=management", transport=AppTransport(client, basic("alice"))
    )
    with pytest.raises(zeep.exceptions.Fault) as caught:
        user.service.StartAcceptingNewActivities()
    assert "site administrators" in caught.value.message
    assert etree.QName(caught.value.detail[0]).localname == "NotAuthorizedFault"
    admin.service.StartAcceptingNewActivities()
