"""The OGSA-BES endpoint through the app's HTTP, with real SOAP bytes and real processes.

Every document the gateway answers with is validated against the official OGF schemas
(tests/bes_schemas.py) by the ``soap`` fixture, faults included.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from lxml import etree

from tests import bes_messages as m
from tests.bes_schemas import assert_valid
from tests.conftest import PASSWORD, basic


class SOAPClient:
    def __init__(self, client, headers):
        self.client = client
        self.headers = headers

    def post(self, body: str, header: str = "", *, headers=None, raw: bytes | None = None):
        response = self.client.post(
            "/bes",
            content=raw if raw is not None else m.envelope(body, header),
            headers={"Content-Type": "text/xml; charset=utf-8", **(headers or self.headers)},
        )
        assert response.headers["content-type"].startswith("text/xml")
        assert_valid(response.content)
        return response

    def call(self, body: str, header: str = "", **kw) -> etree._Element:
        response = self.post(body, header, **kw)
        assert response.status_code == 200, response.text
        return m.body_of(response.content)

    def fault(self, body: str, header: str = "", status: int = 500, **kw) -> etree._Element:
        response = self.post(body, header, **kw)
        assert response.status_code == status, response.text
        fault = m.body_of(response.content)
        assert fault.tag == f"{{{m.SOAP}}}Fault"
        return fault

    def create(self, job_definition: str) -> str:
        answer = self.call(m.create(job_definition))
        assert answer.tag == f"{{{m.BES}}}CreateActivityResponse"
        return answer.findtext(
            "bes:ActivityIdentifier/wsa:ReferenceParameters/xg:ActivityIdentifier", namespaces=m.NS
        )

    def statuses(self, *ids: str) -> list[etree._Element]:
        answer = self.call(m.batch("GetActivityStatuses", [m.epr_xml(activity_id=i) for i in ids]))
        return answer.findall("bes:Response", m.NS)

    def state(self, activity_id: str) -> etree._Element:
        (response,) = self.statuses(activity_id)
        return response.find("bes:ActivityStatus", m.NS)

    def wait(self, activity_id: str, *states: str, timeout: float = 15) -> etree._Element:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = self.state(activity_id)
            if status.get("state") in states:
                return status
            time.sleep(0.05)
        raise AssertionError(f"{activity_id} never reached {states}: {status.get('state')}")


@pytest.fixture
def users(runtime, alice):
    from gateway.auth.users import add_user

    add_user(runtime.db, "bob", PASSWORD)
    add_user(runtime.db, "root", PASSWORD, site_admin=True)
    return runtime


@pytest.fixture
def soap(client, users):
    return SOAPClient(client, basic("alice"))


@pytest.fixture
def as_bob(client, users):
    return SOAPClient(client, basic("bob"))


@pytest.fixture
def as_admin(client, users):
    return SOAPClient(client, basic("root"))


def work_dir(runtime) -> Path:
    return runtime.backends["execution"].work_dir


def processes_in(folder: Path) -> list[int]:
    """Live (non-zombie) processes whose working directory is inside ``folder``."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cwd = (proc / "cwd").resolve()
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z" and (cwd == folder.resolve() or folder.resolve() in cwd.parents):
            found.append(int(proc.name))
    return found


# -- the WSDL ---------------------------------------------------------------------------
def test_wsdl_carries_the_real_address_and_the_right_wsa_namespace(client):
    response = client.get("/bes?wsdl")
    assert response.status_code == 200
    wsdl = etree.fromstring(response.content)
    address = wsdl.find(".//{http://schemas.xmlsoap.org/wsdl/soap/}address")
    assert address.get("location") == "http://testserver/bes"
    assert wsdl.nsmap["wsa"] == "http://www.w3.org/2005/08/addressing"
    include = wsdl.find(".//{http://www.w3.org/2001/XMLSchema}include")
    xsd = client.get(include.get("schemaLocation").replace("http://testserver", ""))
    assert xsd.status_code == 200
    imports = etree.fromstring(xsd.content).findall("{http://www.w3.org/2001/XMLSchema}import")
    locations = {i.get("namespace"): i.get("schemaLocation") for i in imports}
    assert locations["http://www.w3.org/2005/08/addressing"] == (
        "http://testserver/bes/schemas/ws-addr.xsd"
    )
    assert client.get("/bes/schemas/soap-envelope.xsd").status_code == 200
    management = etree.fromstring(client.get("/bes?wsdl=management").content)
    assert management.get("name") == "BESManagement"
    assert client.get("/bes/schemas/..%2Fpyproject.toml").status_code == 404
    assert client.get("/bes?wsdl=nonsense").status_code == 404


# -- factory attributes -----------------------------------------------------------------
def test_factory_attributes_carry_real_figures(soap, runtime):
    import os

    answer = soap.call("<bes:GetFactoryAttributesDocument/>")
    doc = answer.find("bes:FactoryResourceAttributesDocument", m.NS)
    basic_doc = doc.find("bes:BasicResourceAttributesDocument", m.NS)
    assert float(basic_doc.findtext("bes:CPUCount", namespaces=m.NS)) == os.cpu_count()
    memory = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    assert float(basic_doc.findtext("bes:PhysicalMemory", namespaces=m.NS)) == memory
    assert (
        basic_doc.findtext(
            "bes:OperatingSystem/jsdl:OperatingSystemType/jsdl:OperatingSystemName", namespaces=m.NS
        )
        == "LINUX"
    )
    assert doc.findtext("bes:IsAcceptingNewActivities", namespaces=m.NS) == "true"
    assert doc.findtext("bes:TotalNumberOfActivities", namespaces=m.NS) == "0"
    assert doc.findtext("bes:NamingProfile", namespaces=m.NS).endswith("BasicWSAddressing")


def test_factory_attributes_list_only_the_callers_activities_up_to_the_bound(
    make_settings, client, users
):
    alice, bob = SOAPClient(client, basic("alice")), SOAPClient(client, basic("bob"))
    mine = {alice.create(m.job("/bin/true")) for _ in range(3)}
    bob.create(m.job("/bin/true"))
    doc = alice.call("<bes:GetFactoryAttributesDocument/>")[0]
    refs = doc.findall("bes:ActivityReference", m.NS)
    assert {
        r.findtext("wsa:ReferenceParameters/xg:ActivityIdentifier", namespaces=m.NS) for r in refs
    } == mine
    assert doc.findtext("bes:TotalNumberOfActivities", namespaces=m.NS) == "4"


def test_activity_references_are_bounded(make_settings):
    from backends.store import migrate
    from gateway.app import create_app
    from gateway.auth.users import add_user

    s = make_settings(bes={"max_activity_references": 2})
    migrate.upgrade(s.database_url)
    app = create_app(s, configure_logs=False)
    try:
        add_user(app.app.extensions["xtreemgate"].db, "alice", PASSWORD)
        with app.test_client() as c:
            soap = SOAPClient(c, basic("alice"))
            for _ in range(3):
                soap.create(m.job("/bin/true"))
            doc = soap.call("<bes:GetFactoryAttributesDocument/>")[0]
            assert len(doc.findall("bes:ActivityReference", m.NS)) == 2
            assert doc.findtext("bes:TotalNumberOfActivities", namespaces=m.NS) == "3"
    finally:
        app.app.extensions["xtreemgate"].close()


# -- lifecycle --------------------------------------------------------------------------
def test_create_run_finish_and_read_the_output(soap, runtime):
    answer = soap.call(m.create(m.job("/bin/echo", "hello", "grid")))
    epr = answer.find("bes:ActivityIdentifier", m.NS)
    activity_id = epr.findtext("wsa:ReferenceParameters/xg:ActivityIdentifier", namespaces=m.NS)
    assert epr.findtext("wsa:Address", namespaces=m.NS) == (
        f"http://testserver/bes/activities/{activity_id}"
    )
    status = soap.wait(activity_id, "Finished", "Failed")
    assert status.get("state") == "Finished"
    assert status.findtext("xg:ExitCode", namespaces=m.NS) == "0"
    output = work_dir(runtime) / activity_id / "work" / "stdout.txt"  # the job's own folder
    assert output.read_text() == "hello grid\n"


def test_failed_job_keeps_exit_code_and_reason(soap):
    activity_id = soap.create(m.job("/bin/sh", "-c", "exit 3"))
    status = soap.wait(activity_id, "Finished", "Failed")
    assert status.get("state") == "Failed"
    assert status.findtext("xg:ExitCode", namespaces=m.NS) == "3"
    assert "3" in status.findtext("xg:Reason", namespaces=m.NS)


def test_either_epr_form_is_accepted_and_contradictions_are_refused(soap):
    activity_id = soap.create(m.job("/bin/true"))
    address = f"http://testserver/bes/activities/{activity_id}"
    forms = [m.epr_xml(address=address), m.epr_xml(activity_id=activity_id)]
    forms.append(m.epr_xml(address=address, activity_id="someone-else"))
    answer = soap.call(m.batch("GetActivityStatuses", forms))
    first, second, third = answer.findall("bes:Response", m.NS)
    assert first.find("bes:ActivityStatus", m.NS) is not None
    assert second.find("bes:ActivityStatus", m.NS) is not None
    fault = third.find("bes:Fault", m.NS)
    assert m.fault_detail_names(fault) == ["InvalidRequestMessageFault"]
    assert "someone-else" in fault.findtext("faultstring")


def test_batch_answers_one_response_per_epr_each_with_its_own_fault(soap, as_bob):
    mine = soap.create(m.job("/bin/true"))
    bobs = as_bob.create(m.job("/bin/true"))
    eprs = [
        m.epr_xml(activity_id=mine),
        m.epr_xml(activity_id="0d4a8a39-0000-4000-8000-000000000000"),
        m.epr_xml(activity_id=bobs),
        "<bes:ActivityIdentifier><wsa:Address>http://testserver/bes</wsa:Address></bes:ActivityIdentifier>",
    ]
    answer = soap.call(m.batch("GetActivityStatuses", eprs))
    responses = answer.findall("bes:Response", m.NS)
    assert len(responses) == 4
    assert responses[0].find("bes:ActivityStatus", m.NS) is not None
    unknown = responses[1].find("bes:Fault", m.NS)
    assert m.fault_detail_names(unknown) == [
        "InvalidActivityIdentifierFault",
        "UnknownActivityIdentifierFault",
    ]
    # bob's activity answers as an unknown id (#16.16): a refusal would name its owner
    hidden = responses[2].find("bes:Fault", m.NS)
    assert m.fault_detail_names(hidden) == m.fault_detail_names(unknown)
    assert "bob" not in etree.tostring(hidden).decode()
    assert responses[2].find("bes:ActivityStatus", m.NS) is None
    malformed = responses[3].find("bes:Fault", m.NS)
    assert m.fault_detail_names(malformed) == ["InvalidRequestMessageFault"]
    # the same answers for documents and termination: bob's activity is untouched
    docs = soap.call(m.batch("GetActivityDocuments", eprs[2:3])).find("bes:Response", m.NS)
    assert docs.find("bes:JobDefinition", m.NS) is None
    terminated = soap.call(m.batch("TerminateActivities", eprs[2:3])).find("bes:Response", m.NS)
    assert terminated.findtext("bes:Cancelled", namespaces=m.NS) == "false"
    assert m.fault_detail_names(terminated.find("bes:Fault", m.NS)) == [
        "InvalidActivityIdentifierFault",
        "UnknownActivityIdentifierFault",
    ]


@pytest.mark.parametrize(
    "operation", ["GetActivityStatuses", "TerminateActivities", "GetActivityDocuments"]
)
def test_an_element_that_is_not_an_activity_identifier_is_a_fault_naming_it(soap, operation):
    mine = soap.create(m.job("/bin/sleep", "30"))
    # a bare wsa:EndpointReference beside a good EPR: before, the EPR was silently dropped
    eprs = [m.epr_xml(activity_id=mine), m.epr_xml(activity_id=mine, tag="wsa:EndpointReference")]
    fault = soap.fault(m.batch(operation, eprs))
    assert m.fault_detail_names(fault) == ["InvalidRequestMessageFault"]
    found = "{http://www.w3.org/2005/08/addressing}EndpointReference"
    detail = fault.find("detail/bes:InvalidRequestMessageFault", m.NS)
    assert detail.findtext("bes:InvalidElement", namespaces=m.NS) == found
    message = fault.findtext("faultstring")
    assert found in message
    assert "bes-factory:ActivityIdentifier" in message
    assert f"bes-factory:{operation}" in message
    # nothing was done: the activity was not terminated
    status = soap.call(m.batch("GetActivityStatuses", eprs[:1])).find("bes:Response", m.NS)
    assert status.find("bes:ActivityStatus", m.NS).get("state") != "Cancelled"
    soap.call(m.batch("TerminateActivities", eprs[:1]))


def test_an_unqualified_activity_identifier_is_still_accepted(soap):
    mine = soap.create(m.job("/bin/true"))
    unqualified = m.epr_xml(activity_id=mine, tag="ActivityIdentifier")
    answer = soap.call(m.batch("GetActivityStatuses", [unqualified]))
    (response,) = answer.findall("bes:Response", m.NS)
    assert response.find("bes:ActivityStatus", m.NS) is not None


def test_site_admin_sees_other_users_activities(soap, as_admin):
    activity_id = soap.create(m.job("/bin/true"))
    assert as_admin.state(activity_id) is not None


def test_terminate_cancels_a_running_job_once(soap, runtime):
    activity_id = soap.create(m.job("/bin/sleep", "30"))
    soap.wait(activity_id, "Running")
    assert processes_in(work_dir(runtime) / activity_id), "the job should be running"
    answer = soap.call(m.batch("TerminateActivities", [m.epr_xml(activity_id=activity_id)]))
    response = answer.find("bes:Response", m.NS)
    assert response.findtext("bes:Cancelled", namespaces=m.NS) == "true"
    assert soap.wait(activity_id, "Cancelled").get("state") == "Cancelled"
    folder = work_dir(runtime) / activity_id
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and processes_in(folder):
        runtime.backends["execution"].status([activity_id])  # lets the backend reap
        time.sleep(0.05)
    assert not processes_in(folder), "a process of the activity survived termination"
    again = soap.call(m.batch("TerminateActivities", [m.epr_xml(activity_id=activity_id)]))
    response = again.find("bes:Response", m.NS)
    assert response.findtext("bes:Cancelled", namespaces=m.NS) == "false"
    fault = response.find("bes:Fault", m.NS)
    assert m.fault_detail_names(fault) == ["CantApplyOperationToCurrentStateFault"]
    status = fault.find("detail/bes:CantApplyOperationToCurrentStateFault/bes:ActivityStatus", m.NS)
    assert status.get("state") == "Cancelled"


def test_activity_documents_give_back_the_jsdl(soap):
    activity_id = soap.create(m.job("/bin/echo", "kept <verbatim> & safe"))
    answer = soap.call(m.batch("GetActivityDocuments", [m.epr_xml(activity_id=activity_id)]))
    definition = answer.find("bes:Response/bes:JobDefinition", m.NS)
    arguments = definition.findall(f".//{{{m.POSIX}}}Argument")
    assert [a.text for a in arguments] == ["kept <verbatim> & safe"]


def test_submit_failure_leaves_a_failed_record_not_a_pending_ghost(soap, client):
    """The backend refuses the job at submit (an absolute working directory): the
    activity is recorded Failed with the backend's reason, never left Pending."""
    job = m.job("/bin/true").replace(
        "<posix:Output>", "<posix:WorkingDirectory>/etc</posix:WorkingDirectory><posix:Output>"
    )
    activity_id = soap.create(job)
    status = soap.wait(activity_id, "Failed", "Finished")
    assert status.get("state") == "Failed"
    assert "/etc" in status.findtext("xg:Reason", namespaces=m.NS)
    listing = client.get("/api/v1/activities/", headers=basic("alice")).json()
    assert [a["state"] for a in listing["activities"]] == ["Failed"]
    assert listing["activities"][0]["reason"].startswith("not started: ")


def test_stage_in_failure_fails_the_activity_naming_the_url(soap):
    """A transfer that can only fail when it runs (nobody listens on the port) fails the
    activity with the URL in the reason. (A file: URL the gateway refuses is refused at
    CreateActivity: the next test.)"""
    staging = (
        "<jsdl:DataStaging><jsdl:FileName>in.txt</jsdl:FileName>"
        "<jsdl:CreationFlag>overwrite</jsdl:CreationFlag>"
        "<jsdl:Source><jsdl:URI>http://127.0.0.1:9/in.txt</jsdl:URI></jsdl:Source>"
        "</jsdl:DataStaging>"
    )
    activity_id = soap.create(m.job("/bin/cat", "in.txt", extra=staging))
    status = soap.wait(activity_id, "Failed", "Finished")
    assert status.get("state") == "Failed"
    assert "http://127.0.0.1:9/in.txt" in status.findtext("xg:Reason", namespaces=m.NS)


def staging_element(direction: str, url: str) -> str:
    return (
        "<jsdl:DataStaging><jsdl:FileName>f.txt</jsdl:FileName>"
        "<jsdl:CreationFlag>overwrite</jsdl:CreationFlag>"
        f"<jsdl:{direction}><jsdl:URI>{url}</jsdl:URI></jsdl:{direction}>"
        "</jsdl:DataStaging>"
    )


def refused_element(soap, definition: str) -> tuple[str, str]:
    fault = soap.fault(m.create(definition))
    assert m.fault_detail_names(fault) == ["InvalidRequestMessageFault"]
    detail = fault.find("detail/bes:InvalidRequestMessageFault", m.NS)
    return (
        detail.findtext("bes:InvalidElement", namespaces=m.NS),
        detail.findtext("bes:Message", namespaces=m.NS),
    )


def test_a_file_url_the_stager_would_refuse_is_refused_at_create(soap, client):
    """#16.12: file staging is off on the defaults, so a file: URL in or out is a fault
    naming the element at CreateActivity, and nothing is recorded."""
    element, message = refused_element(
        soap, m.job("/bin/cat", "f.txt", extra=staging_element("Source", "file:///etc/hosts"))
    )
    assert element == "jsdl:DataStaging/jsdl:Source"
    assert "f.txt" in message and "file staging is disabled" in message
    element, message = refused_element(
        soap, m.job("/bin/true", extra=staging_element("Target", "file:///tmp/out.txt"))
    )
    assert element == "jsdl:DataStaging/jsdl:Target"
    assert "file:///tmp/out.txt" in message
    listing = client.get("/api/v1/activities/", headers=basic("alice")).json()
    assert listing["activities"] == []


def test_a_file_url_outside_the_roots_is_refused_at_create(make_settings, tmp_path):
    from backends.store import migrate
    from gateway.app import create_app
    from gateway.auth.users import add_user

    root = tmp_path / "grid-data"
    root.mkdir()
    (root / "in.txt").write_text("inside\n")
    s = make_settings(execution={"file_staging_roots": [str(root)]})
    migrate.upgrade(s.database_url)
    app = create_app(s, configure_logs=False)
    runtime = app.app.extensions["xtreemgate"]
    try:
        add_user(runtime.db, "alice", PASSWORD)
        with app.test_client() as c:
            soap = SOAPClient(c, basic("alice"))
            outside = staging_element("Source", f"file://{tmp_path}/../etc/hosts")
            element, message = refused_element(soap, m.job("/bin/cat", "f.txt", extra=outside))
            assert element == "jsdl:DataStaging/jsdl:Source"
            assert "outside the allowed roots" in message and str(root) in message
            assert runtime.activities.store.count() == 0
            inside = staging_element("Source", f"file://{root}/in.txt")
            assert soap.create(m.job("/bin/cat", "f.txt", extra=inside))  # inside: accepted
            assert runtime.activities.store.count() == 1
    finally:
        runtime.close()


def test_several_job_definitions_or_documents_are_refused(soap, client):
    """#16.12: one CreateActivity is one activity; the second JobDefinition (or
    ActivityDocument) was silently dropped."""
    two = m.job("/bin/true") + m.job("/bin/false")
    element, message = refused_element(soap, two)
    assert element == "jsdl:JobDefinition"
    assert "2 JobDefinition elements" in message
    body = (
        f"<bes:CreateActivity><bes:ActivityDocument>{m.job('/bin/true')}</bes:ActivityDocument>"
        f"<bes:ActivityDocument>{m.job('/bin/false')}</bes:ActivityDocument></bes:CreateActivity>"
    )
    fault = soap.fault(body)
    detail = fault.find("detail/bes:InvalidRequestMessageFault", m.NS)
    assert detail.findtext("bes:InvalidElement", namespaces=m.NS) == "bes-factory:ActivityDocument"
    listing = client.get("/api/v1/activities/", headers=basic("alice")).json()
    assert listing["activities"] == []


# -- faults -----------------------------------------------------------------------------
def test_no_credentials_is_a_401_with_a_not_authorized_fault(client):
    response = client.post(
        "/bes",
        content=m.envelope("<bes:GetFactoryAttributesDocument/>"),
        headers={"Content-Type": "text/xml"},
    )
    assert response.status_code == 401
    assert 'Basic realm="xtreemgate"' in response.headers["www-authenticate"]
    assert_valid(response.content)
    fault = m.body_of(response.content)
    assert m.fault_detail_names(fault) == ["NotAuthorizedFault"]
    assert "no credentials" in fault.findtext("faultstring")


def test_wrong_password_is_refused(client, users):
    soap = SOAPClient(client, basic("alice", "wrong password"))
    fault = soap.fault("<bes:GetFactoryAttributesDocument/>", status=401)
    assert fault.findtext("faultstring").startswith("basic: ")


def test_bearer_token_works_on_bes(client, runtime, users):
    token, _ = runtime.tokens.issue("alice")
    soap = SOAPClient(client, {"Authorization": f"Bearer {token}"})
    assert soap.create(m.job("/bin/true"))


def test_missing_activity_document_names_the_element(soap):
    fault = soap.fault("<bes:CreateActivity/>")
    detail = fault.find("detail/bes:InvalidRequestMessageFault", m.NS)
    assert detail.findtext("bes:InvalidElement", namespaces=m.NS) == "bes-factory:ActivityDocument"
    assert "missing" in detail.findtext("bes:Message", namespaces=m.NS)


def test_missing_executable_is_an_invalid_request(soap):
    job = m.job("").replace("<posix:Executable></posix:Executable>", "")
    fault = soap.fault(m.create(job))
    assert m.fault_detail_names(fault) == ["InvalidRequestMessageFault"]
    # the element that lacks the program is named, and the fault string says what to add
    assert (
        fault.findtext("detail/bes:InvalidRequestMessageFault/bes:InvalidElement", namespaces=m.NS)
        == "jsdl-posix:POSIXApplication"
    )
    assert "jsdl-posix:Executable" in fault.findtext("faultstring")


def test_unsupported_application_is_named(soap):
    job = (
        "<jsdl:JobDefinition><jsdl:JobDescription><jsdl:Application>"
        '<w:WeirdApplication xmlns:w="urn:example:weird"/>'
        "</jsdl:Application></jsdl:JobDescription></jsdl:JobDefinition>"
    )
    fault = soap.fault(m.create(job))
    assert m.fault_detail_names(fault) == ["UnsupportedFeatureFault"]
    features = fault.findall("detail/bes:UnsupportedFeatureFault/bes:Feature", m.NS)
    assert features and all(f.text for f in features)


def test_unknown_operation_and_empty_body(soap):
    fault = soap.fault("<bes:Frobnicate/>")
    assert "Frobnicate is not an operation" in fault.findtext("faultstring")
    fault = soap.fault("")
    assert m.fault_detail_names(fault) == ["InvalidRequestMessageFault"]


def test_must_understand_header_and_soap12_are_refused(soap):
    header = '<x:Secret xmlns:x="urn:example" soap:mustUnderstand="1">1</x:Secret>'
    fault = soap.fault("<bes:GetFactoryAttributesDocument/>", header)
    assert fault.findtext("faultcode") == "soap:MustUnderstand"
    soap12 = (
        b'<e:Envelope xmlns:e="http://www.w3.org/2003/05/soap-envelope"><e:Body>'
        b"<x/></e:Body></e:Envelope>"
    )
    fault = soap.fault("", raw=soap12)
    assert fault.findtext("faultcode") == "soap:VersionMismatch"


@pytest.mark.parametrize(
    "document",
    [
        b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        + b"".join(
            f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">'.encode()
            for i in range(1, 10)
        )
        + b']><soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/">'
        b"<soap:Body><x>&lol9;</x></soap:Body></soap:Envelope>",
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
        b'<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/">'
        b"<soap:Body><x>&xxe;</x></soap:Body></soap:Envelope>",
    ],
    ids=["billion-laughs", "xxe"],
)
def test_hostile_xml_is_an_invalid_request_and_cheap(soap, document):
    started = time.perf_counter()
    fault = soap.fault("", raw=document)
    assert time.perf_counter() - started < 0.5
    assert m.fault_detail_names(fault) == ["InvalidRequestMessageFault"]
    assert "DOCTYPE" in fault.findtext("faultstring")
    assert "root:" not in etree.tostring(fault).decode()


def test_oversized_request_is_refused_before_parsing(make_settings):
    from backends.store import migrate
    from gateway.app import create_app

    s = make_settings(bes={"max_request_bytes": 2048})
    migrate.upgrade(s.database_url)
    app = create_app(s, configure_logs=False)
    try:
        with app.test_client() as c:
            body = m.envelope(
                "<bes:GetFactoryAttributesDocument>"
                + "x" * 4096
                + "</bes:GetFactoryAttributesDocument>"
            )
            response = c.post("/bes", content=body, headers={"Content-Type": "text/xml"})
    finally:
        app.app.extensions["xtreemgate"].close()
    assert response.status_code == 500
    assert "at most 2048" in m.body_of(response.content).findtext("faultstring")


# -- WS-Addressing ----------------------------------------------------------------------
def test_addressing_headers_are_honoured(soap):
    request_id = m.message_id()
    response = soap.post(
        "<bes:GetFactoryAttributesDocument/>",
        m.addressing("GetFactoryAttributesDocument", request_id, "http://testserver/bes"),
    )
    header = etree.fromstring(response.content).find("soap:Header", m.NS)
    assert header.findtext("wsa:Action", namespaces=m.NS) == (
        m.ACTION + "GetFactoryAttributesDocumentResponse"
    )
    assert header.findtext("wsa:RelatesTo", namespaces=m.NS) == request_id
    assert header.findtext("wsa:MessageID", namespaces=m.NS).startswith("urn:uuid:")


def test_no_addressing_headers_no_addressing_in_the_reply(soap):
    response = soap.post("<bes:GetFactoryAttributesDocument/>")
    assert etree.fromstring(response.content).find("soap:Header", m.NS) is None


def test_addressing_contradictions_are_refused(soap):
    fault = soap.fault("<bes:GetFactoryAttributesDocument/>", m.addressing("CreateActivity"))
    assert "wsa:Action" in fault.findtext("faultstring")
    fault = soap.fault(
        "<bes:GetFactoryAttributesDocument/>",
        m.addressing("GetFactoryAttributesDocument", to="http://elsewhere.example/other"),
    )
    assert "wsa:To" in fault.findtext("faultstring")
    response = soap.post(
        "<bes:GetFactoryAttributesDocument/>",
        m.addressing("CreateActivity", m.message_id()),
    )
    header = etree.fromstring(response.content).find("soap:Header", m.NS)
    assert header.findtext("wsa:Action", namespaces=m.NS) == m.ACTION + "Fault"


# -- management -------------------------------------------------------------------------
def test_stop_and_start_accepting_is_for_site_admins_and_shared(soap, as_admin, settings, users):
    stop = f'<mgmt:StopAcceptingNewActivities xmlns:mgmt="{m.MGMT}"/>'
    start = f'<mgmt:StartAcceptingNewActivities xmlns:mgmt="{m.MGMT}"/>'
    fault = soap.fault(stop)
    assert m.fault_detail_names(fault) == ["NotAuthorizedFault"]
    answer = as_admin.call(stop)
    assert answer.tag == f"{{{m.MGMT}}}StopAcceptingNewActivitiesResponse"
    fault = soap.fault(m.create(m.job("/bin/true")))
    assert m.fault_detail_names(fault) == ["NotAcceptingNewActivitiesFault"]
    doc = soap.call("<bes:GetFactoryAttributesDocument/>")[0]
    assert doc.findtext("bes:IsAcceptingNewActivities", namespaces=m.NS) == "false"
    # another gateway process on the same database sees the same flag
    from gateway.app import create_app

    other = create_app(settings, configure_logs=False)
    try:
        with other.test_client() as c:
            fault = SOAPClient(c, basic("alice")).fault(m.create(m.job("/bin/true")))
            assert m.fault_detail_names(fault) == ["NotAcceptingNewActivitiesFault"]
    finally:
        other.app.extensions["xtreemgate"].close()
    as_admin.call(start)
    assert soap.create(m.job("/bin/true"))


# -- persistence ------------------------------------------------------------------------
def test_a_restart_changes_nothing_a_client_sees(settings):
    from gateway.app import create_app
    from gateway.auth.users import add_user

    first = create_app(settings, configure_logs=False)
    add_user(first.app.extensions["xtreemgate"].db, "alice", PASSWORD)
    with first.test_client() as c:
        soap = SOAPClient(c, basic("alice"))
        done = soap.create(m.job("/bin/echo", "before"))
        soap.wait(done, "Finished")
        failed = soap.create(m.job("/bin/sh", "-c", "exit 7"))
        soap.wait(failed, "Failed")
        before = [
            etree.tostring(s.find("bes:ActivityStatus", m.NS)) for s in soap.statuses(done, failed)
        ]
        docs_before = etree.tostring(
            soap.call(m.batch("GetActivityDocuments", [m.epr_xml(activity_id=done)]))
        )
    first.app.extensions["xtreemgate"].close()
    second = create_app(settings, configure_logs=False)
    try:
        with second.test_client() as c:
            soap = SOAPClient(c, basic("alice"))
            after = [
                etree.tostring(s.find("bes:ActivityStatus", m.NS))
                for s in soap.statuses(done, failed)
            ]
            docs_after = etree.tostring(
                soap.call(m.batch("GetActivityDocuments", [m.epr_xml(activity_id=done)]))
            )
    finally:
        second.app.extensions["xtreemgate"].close()
    assert after == before
    assert docs_after == docs_before


# -- observability ----------------------------------------------------------------------
def test_metrics_and_request_ids_cover_bes(soap, client):
    response = soap.post("<bes:GetFactoryAttributesDocument/>")
    assert len(response.headers["x-request-id"]) == 32
    client.get("/bes?wsdl")
    text = client.get("/metrics").text
    assert 'route="gateway.bes.soap",status="200"} 1.0' in text
    assert 'route="gateway.bes.wsdl",status="200"} 1.0' in text


# -- every document against the official schemas ----------------------------------------
def test_every_response_and_fault_detail_validates(soap, as_bob, as_admin):
    """One place that produces every kind of document the endpoint sends; the ``soap``
    fixture validates each against the official schemas, and this test checks that each
    kind really was produced."""
    seen: set[str] = set()

    def note(document: etree._Element) -> None:
        for el in document.iter():
            if isinstance(el.tag, str) and etree.QName(el).namespace in (m.BES, m.MGMT):
                name = etree.QName(el).localname
                if name.endswith(("Response", "Fault")):
                    seen.add(name)

    mine = soap.create(m.job("/bin/sleep", "30"))
    bobs = as_bob.create(m.job("/bin/true"))
    note(soap.call("<bes:GetFactoryAttributesDocument/>"))
    note(soap.call(m.create(m.job("/bin/true"))))
    for operation in ("GetActivityStatuses", "GetActivityDocuments", "TerminateActivities"):
        eprs = [m.epr_xml(activity_id=i) for i in (mine, bobs, "0d4a8a39-0000-4000-8000-0")]
        note(soap.call(m.batch(operation, eprs)))
    soap.wait(mine, "Cancelled")
    note(soap.call(m.batch("TerminateActivities", [m.epr_xml(activity_id=mine)])))
    stop = f'<mgmt:StopAcceptingNewActivities xmlns:mgmt="{m.MGMT}"/>'
    note(as_admin.call(stop))
    note(soap.fault(m.create(m.job("/bin/true"))))
    note(as_admin.call(f'<mgmt:StartAcceptingNewActivities xmlns:mgmt="{m.MGMT}"/>'))
    note(soap.fault(stop))
    note(soap.fault("<bes:CreateActivity/>"))
    weird = (
        "<jsdl:JobDefinition><jsdl:JobDescription><jsdl:Application>"
        '<w:WeirdApplication xmlns:w="urn:example:weird"/>'
        "</jsdl:Application></jsdl:JobDescription></jsdl:JobDefinition>"
    )
    note(soap.fault(m.create(weird)))
    assert seen >= {
        "CreateActivityResponse",
        "GetActivityStatusesResponse",
        "GetActivityDocumentsResponse",
        "TerminateActivitiesResponse",
        "GetFactoryAttributesDocumentResponse",
        "StopAcceptingNewActivitiesResponse",
        "StartAcceptingNewActivitiesResponse",
        "NotAuthorizedFault",
        "NotAcceptingNewActivitiesFault",
        "UnsupportedFeatureFault",
        "InvalidRequestMessageFault",
        "InvalidActivityIdentifierFault",
        "UnknownActivityIdentifierFault",
        "CantApplyOperationToCurrentStateFault",
    }


def test_a_sweep_becomes_one_activity_per_point(soap):
    """A GFD.149 parameter sweep over the argument: three points, three activities."""
    sweep = (
        '<sweep:Sweep xmlns:sweep="http://schemas.ogf.org/jsdl/2009/03/sweep" '
        'xmlns:fn="http://schemas.ogf.org/jsdl/2009/03/sweep/functions"><sweep:Assignment>'
        "<sweep:DocumentNode><sweep:Match>//posix:Argument</sweep:Match></sweep:DocumentNode>"
        "<fn:Values><fn:Value>0</fn:Value><fn:Value>1</fn:Value><fn:Value>2</fn:Value>"
        "</fn:Values></sweep:Assignment></sweep:Sweep>"
    )
    job = m.job("/bin/echo", "ignored").replace(
        "</jsdl:JobDescription></jsdl:JobDefinition>",
        f"</jsdl:JobDescription>{sweep}</jsdl:JobDefinition>",
    )
    answer = soap.call(m.create(job))
    first = answer.findtext(
        "bes:ActivityIdentifier/wsa:ReferenceParameters/xg:ActivityIdentifier", namespaces=m.NS
    )
    others = [
        e.findtext("wsa:ReferenceParameters/xg:ActivityIdentifier", namespaces=m.NS)
        for e in answer.findall("xg:SweepActivityIdentifier", m.NS)
    ]
    assert len(others) == 2 and len({first, *others}) == 3
    states = [s.find("bes:ActivityStatus", m.NS) for s in soap.statuses(first, *others)]
    assert all(s is not None for s in states)
    for activity_id in (first, *others):
        assert soap.wait(activity_id, "Finished").get("state") == "Finished"


def test_an_internal_error_is_a_server_fault_with_the_request_id(soap, monkeypatch):
    """A bug must not leak a traceback: the client gets soap:Server and an id to quote.
    (A broken handler is the one fault the real code cannot be made to produce.)"""
    from gateway.bes import handlers as endpoint

    def broken(call, payload):
        raise RuntimeError("secret internal detail")

    name = f"{{{m.BES}}}GetFactoryAttributesDocument"
    monkeypatch.setitem(endpoint.OPERATIONS, name, ("GetFactoryAttributesDocument", broken))
    response = soap.post(
        "<bes:GetFactoryAttributesDocument/>", headers={**soap.headers, "X-Request-ID": "trace-42"}
    )
    assert response.status_code == 500
    fault = m.body_of(response.content)
    assert fault.findtext("faultcode") == "soap:Server"
    assert "trace-42" in fault.findtext("faultstring")
    assert "secret" not in response.text


def test_an_application_named_in_the_site_registry_runs(make_settings):
    """UNICORE-style JSDL (ApplicationName, no Executable) runs what the site registered."""
    from backends.store import migrate
    from gateway.app import create_app
    from gateway.auth.users import add_user

    s = make_settings(applications={"Echo": {"1.0": "/bin/echo"}})
    migrate.upgrade(s.database_url)
    app = create_app(s, configure_logs=False)
    try:
        rt = app.app.extensions["xtreemgate"]
        add_user(rt.db, "alice", PASSWORD)
        job = m.job("", "registered").replace(
            "<jsdl:Application><posix:POSIXApplication><posix:Executable></posix:Executable>",
            "<jsdl:Application><jsdl:ApplicationName>Echo</jsdl:ApplicationName>"
            "<jsdl:ApplicationVersion>1.0</jsdl:ApplicationVersion><posix:POSIXApplication>",
        )
        with app.test_client() as c:
            soap = SOAPClient(c, basic("alice"))
            activity_id = soap.create(job)
            assert soap.wait(activity_id, "Finished", "Failed").get("state") == "Finished"
            output = work_dir(rt) / activity_id / "work" / "stdout.txt"
            assert output.read_text() == "registered\n"
            unknown = soap.fault(m.create(job.replace(">Echo<", ">Povray<")))
            assert m.fault_detail_names(unknown) == ["UnsupportedFeatureFault"]
            assert "this site offers: Echo" in unknown.findtext("faultstring")
    finally:
        app.app.extensions["xtreemgate"].close()
