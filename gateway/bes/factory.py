"""The BES-Factory port type: CreateActivity, GetActivityStatuses, TerminateActivities,
GetActivityDocuments, GetFactoryAttributesDocument.

Batch operations answer one Response per EPR asked about, in order, each with its own
fault where that one failed; the backend is asked once per batch (one ``status`` call for
all live activities), never once per EPR.
"""

from __future__ import annotations

import contextlib
import functools
import platform
import re
import socket
from collections.abc import Callable

from lxml import etree

from backends.contracts.interfaces import (
    BackendError,
    BackendUnavailable,
    InvalidRequest,
    InvalidSpec,
    NotSupported,
)
from backends.contracts.model import JobSpec, LocalAccount, Resource
from backends.contracts.platform import jsdl_architecture, jsdl_operating_system
from backends.services.activities import NotTerminable
from backends.store.activities import ActivityRecord
from gateway import xmlsafe
from gateway.activities.access import hidden
from gateway.activities.volume_staging import bind_volumes
from gateway.bes.context import Call
from gateway.bes.epr import activity_epr, activity_id_of
from gateway.bes.faults import SERVER, BESFault, invalid_request, unknown_activity
from gateway.bes.namespaces import BES, BES_MGMT, NAMING_PROFILE, XG, q
from gateway.jsdl import reader as jsdl
from gateway.jsdl.namespaces import JSDL
from gateway.xmlns import HPCP_FS, WSA

NSMAP = {"bes-factory": BES, "wsa": WSA}
STAGING_SUBSTATES = ("Staging-In", "Staging-Out")
_NCNAME = re.compile(r"[^A-Za-z0-9_.-]")


def _element(name: str) -> etree._Element:
    return etree.Element(q(BES, name), nsmap=NSMAP)


# -- activity status rendering --------------------------------------------------------
def activity_status(record: ActivityRecord) -> etree._Element:
    """bes-factory:ActivityStatus with substate, exit code and reason as child elements."""
    status = etree.Element(q(BES, "ActivityStatus"), nsmap=NSMAP, state=record.state.value)
    if record.substate in STAGING_SUBSTATES:
        etree.SubElement(status, q(HPCP_FS, record.substate), nsmap={"hpcp-fs": HPCP_FS})
    elif record.substate:
        etree.SubElement(status, q(XG, _NCNAME.sub("_", record.substate)), nsmap={"xg": XG})
    if record.exit_code is not None:
        etree.SubElement(status, q(XG, "ExitCode"), nsmap={"xg": XG}).text = str(record.exit_code)
    if record.reason:
        etree.SubElement(status, q(XG, "Reason"), nsmap={"xg": XG}).text = record.reason
    return status


# -- CreateActivity -------------------------------------------------------------------
def _children(parent: etree._Element, local: str) -> list[etree._Element]:
    """The child elements named ``local`` (qualified or not: clients differ)."""
    return [c for c in parent if isinstance(c.tag, str) and etree.QName(c).localname == local]


def _job_definition(payload: etree._Element) -> etree._Element:
    """The one JobDefinition of the one ActivityDocument; several of either are refused
    (one CreateActivity creates one activity: running the first silently would drop
    the others)."""
    documents = _children(payload, "ActivityDocument")
    if not documents:
        raise invalid_request("bes-factory:ActivityDocument", "missing from CreateActivity")
    if len(documents) > 1:
        raise invalid_request(
            "bes-factory:ActivityDocument",
            f"CreateActivity holds {len(documents)} ActivityDocument elements; it takes "
            "exactly one: send one CreateActivity per activity",
        )
    definitions = _children(documents[0], "JobDefinition")
    if not definitions:
        raise invalid_request(
            "jsdl:JobDefinition", "the ActivityDocument holds no JSDL JobDefinition"
        )
    if len(definitions) > 1:
        raise invalid_request(
            "jsdl:JobDefinition",
            f"the ActivityDocument holds {len(definitions)} JobDefinition elements; it "
            "takes exactly one: send one CreateActivity per job (or one JobDefinition "
            "with a sweep:Sweep for many alike)",
        )
    return definitions[0]


# the JSDL element a backend's refusal of a JobSpec field is about
SPEC_ELEMENTS = {
    "queue": "jsdl-arc:QueueName",
    "stage_in": "jsdl:DataStaging/jsdl:Source",
    "stage_out": "jsdl:DataStaging/jsdl:Target",
}


def create_activity(call: Call, payload: etree._Element) -> etree._Element:
    if not call.accepting():
        raise BESFault(
            "NotAcceptingNewActivities",
            "this BES has stopped accepting new activities (an administrator called "
            "StopAcceptingNewActivities); try again later",
        )
    vo = call.principal.vos()[0] if call.principal.vos() else ""
    call.authorize("create", Resource(kind="activity", owner=call.principal.name, vo=vo))
    definition = _job_definition(payload)
    try:
        jobs = jsdl.read_job_definition(
            definition, max_sweep=call.settings.max_sweep, applications=call.applications
        )
    except jsdl.JSDLFault as exc:
        if exc.fault == "UnsupportedFeature":
            raise BESFault(
                "UnsupportedFeature", f"{exc.element}: {exc.message}", features=[exc.element]
            ) from exc
        raise invalid_request(exc.element, exc.message) from exc
    if not jobs:
        raise invalid_request("jsdl:JobDefinition", "describes no job to run")
    jobs = [_bind_volumes(call, job) for job in jobs]  # volume URLs: resolved, authorised
    for job in jobs:  # refused before any record: an unknown queue, a backend that is down
        try:
            call.execution.admit(job)
        except InvalidSpec as exc:
            element = SPEC_ELEMENTS.get(exc.field, "jsdl:JobDefinition")
            raise invalid_request(element, str(exc)) from exc
        except BackendUnavailable as exc:
            raise BESFault(
                "", f"no new activities now: {exc}; try again later", code=SERVER
            ) from exc
    account = _local_account(call, vo)
    document = etree.tostring(definition, encoding="unicode")
    # Recorded Pending first (one transaction, a sweep all or nothing), then handed to the
    # backend by the launcher: a refusal there turns the activity Failed with the reason.
    created = call.launcher.accept(
        jobs, owner=call.principal.name, vo=vo, document=document, account=account
    )
    response = _element("CreateActivityResponse")
    response.append(activity_epr(q(BES, "ActivityIdentifier"), call.endpoint_url, created[0]))
    for extra in created[1:]:  # the other points of a parameter sweep
        response.append(activity_epr(q(XG, "SweepActivityIdentifier"), call.endpoint_url, extra))
    return response


def _bind_volumes(call: Call, job: JobSpec) -> JobSpec:
    """The job's volume URLs resolved and authorised; refusals in BES's words."""
    try:
        return bind_volumes(call, job)
    except NotSupported as exc:
        raise BESFault("UnsupportedFeature", f"jsdl:URI: {exc}", features=["jsdl:URI"]) from exc
    except BackendUnavailable as exc:
        raise BESFault("", str(exc), code=SERVER) from exc
    except InvalidRequest as exc:
        raise invalid_request("jsdl:URI", str(exc)) from exc


def _local_account(call: Call, vo: str) -> LocalAccount | None:
    """The POSIX account the jobs run as, from the VO backend's mapping; None where the
    backend maps no accounts (also a VO member's, on a site that configures no account
    pool), or for a caller in no VO who has no account of their own (the execution
    backend then runs the jobs as its default account): VO policy has already said
    whether such a caller may create activities at all."""
    try:
        return call.vo.account_for(call.principal, vo)
    except NotSupported:
        return None
    except BackendError as exc:
        if not call.principal.memberships:
            return None
        raise BESFault(
            "NotAuthorized", f"no local account for {call.principal.name}: {exc}"
        ) from exc


# -- the batch operations -------------------------------------------------------------
_ACTIVITY_IDENTIFIER = (q(BES, "ActivityIdentifier"), "ActivityIdentifier")  # or unqualified


def _epr_list(call: Call, payload: etree._Element) -> list[etree._Element]:
    """The request's bes-factory:ActivityIdentifier EPRs; any other element is refused,
    naming it: answering nothing for it would look as if there were no such activity."""
    eprs = [c for c in payload if isinstance(c.tag, str)]
    for child in eprs:
        if child.tag not in _ACTIVITY_IDENTIFIER:
            found = etree.QName(child)
            raise invalid_request(
                child.tag if found.namespace else f"{child.tag} (no namespace)",
                f"not expected in bes-factory:{etree.QName(payload).localname}: name each "
                f"activity by one bes-factory:ActivityIdentifier ({{{BES}}}ActivityIdentifier), "
                "the EPR CreateActivity returned",
            )
    if len(eprs) > call.settings.max_batch:
        raise invalid_request(
            "bes-factory:ActivityIdentifier",
            f"{len(eprs)} activities in one request; at most {call.settings.max_batch} "
            "are accepted, split the request",
        )
    return eprs


def _refusal(call: Call, action: str, record: ActivityRecord) -> BESFault | None:
    """None if the caller may ``action`` the activity; else its fault, which is the
    unknown id's for a caller who may not read it (a reason names the owner's VO)."""
    permitted, reason = call.permits(action, record.resource())
    if permitted:
        return None
    if hidden(call.vo, call.principal, action, record):
        return unknown_activity(record.id)
    return BESFault("NotAuthorized", f"not authorised for activity {record.id}: {reason}")


def _resolve(
    call: Call, eprs: list[etree._Element], action: str, with_documents: bool = False
) -> tuple[list[ActivityRecord | BESFault], dict[str, ActivityRecord]]:
    """Per EPR: its record (authorised for ``action``) or the fault for that one EPR;
    records of the live ones refreshed from the backend in a single call."""
    ids: list[str | BESFault] = []
    for epr in eprs:
        try:
            ids.append(activity_id_of(epr))
        except BESFault as fault:
            ids.append(fault)
    records = call.store.get_many(
        (i for i in ids if isinstance(i, str)), with_documents=with_documents
    )
    outcome: list[ActivityRecord | BESFault] = []
    allowed: dict[str, ActivityRecord] = {}
    decided: dict[str, BESFault | None] = {}
    for item in ids:
        if isinstance(item, BESFault):
            outcome.append(item)
            continue
        record = records.get(item)
        if record is None:
            outcome.append(unknown_activity(item))
            continue
        if item not in decided:
            decided[item] = _refusal(call, action, record)
        fault = decided[item]
        if fault is not None:
            outcome.append(fault)
        else:
            outcome.append(record)
            allowed[item] = record
    if allowed:
        # A backend that cannot answer leaves the last known state standing, never guessed.
        with contextlib.suppress(BackendError):
            allowed = call.activities.refresh(list(allowed.values()))
        outcome = [allowed.get(o.id, o) if isinstance(o, ActivityRecord) else o for o in outcome]
    return outcome, allowed


def _responses(
    call: Call,
    payload: etree._Element,
    action: str,
    response_name: str,
    fill: Callable[[etree._Element, ActivityRecord], None],
    on_fault: Callable[[etree._Element], None] = lambda _r: None,
    *,
    with_documents: bool = False,
) -> etree._Element:
    eprs = _epr_list(call, payload)
    outcome, _ = _resolve(call, eprs, action, with_documents)
    response = _element(response_name)
    for epr, result in zip(eprs, outcome, strict=True):
        one = etree.SubElement(response, q(BES, "Response"))
        echoed = etree.SubElement(one, q(BES, "ActivityIdentifier"))
        echoed.extend(list(epr))  # the request is done with: move, don't copy
        if isinstance(result, BESFault):
            on_fault(one)
            one.append(result.fault_element(q(BES, "Fault")))
        else:
            fill(one, result)
    return response


def get_activity_statuses(call: Call, payload: etree._Element) -> etree._Element:
    return _responses(
        call,
        payload,
        "read",
        "GetActivityStatusesResponse",
        lambda one, record: one.append(activity_status(record)),
    )


def terminate_activities(call: Call, payload: etree._Element) -> etree._Element:
    def terminate(one: etree._Element, record: ActivityRecord) -> None:
        fault = _terminate(call, record)
        etree.SubElement(one, q(BES, "Cancelled")).text = "false" if fault else "true"
        if fault:
            one.append(fault.fault_element(q(BES, "Fault")))

    def refused(one: etree._Element) -> None:
        etree.SubElement(one, q(BES, "Cancelled")).text = "false"

    return _responses(call, payload, "terminate", "TerminateActivitiesResponse", terminate, refused)


def _terminate(call: Call, record: ActivityRecord) -> BESFault | None:
    """The one termination path (the portal's Cancel uses it too), as BES faults."""
    try:
        call.activities.terminate(record, call.principal.name)
    except NotTerminable as exc:
        return BESFault("CantApplyOperationToCurrentState", str(exc), state=exc.state.value)
    except BackendError as exc:
        return BESFault("", f"activity {record.id} could not be terminated: {exc}", code=SERVER)
    return None


def get_activity_documents(call: Call, payload: etree._Element) -> etree._Element:
    def document(one: etree._Element, record: ActivityRecord) -> None:
        original = xmlsafe.parse(record.jsdl.encode())
        # The response element is bes-factory:JobDefinition of jsdl:JobDefinition_Type.
        renamed = etree.SubElement(one, q(BES, "JobDefinition"), nsmap={"jsdl": JSDL})
        for name, value in original.attrib.items():
            renamed.set(name, value)
        renamed.extend(list(original))

    return _responses(
        call, payload, "read", "GetActivityDocumentsResponse", document, with_documents=True
    )


# -- GetFactoryAttributesDocument ----------------------------------------------------


@functools.cache
def _resource_name() -> str:
    return socket.getfqdn()  # may ask DNS: once per process


def get_factory_attributes_document(call: Call, payload: etree._Element) -> etree._Element:
    call.authorize("read-factory", Resource(kind="factory"))
    try:
        figures = call.execution.resources()
    except BackendError:
        figures = {}
    response = _element("GetFactoryAttributesDocumentResponse")
    doc = etree.SubElement(response, q(BES, "FactoryResourceAttributesDocument"))
    basic = etree.SubElement(doc, q(BES, "BasicResourceAttributesDocument"))
    etree.SubElement(basic, q(BES, "ResourceName")).text = _resource_name()
    os_el = etree.SubElement(basic, q(BES, "OperatingSystem"), nsmap={"jsdl": JSDL})
    os_type = etree.SubElement(os_el, q(JSDL, "OperatingSystemType"))
    system = str(figures.get("operating_system") or platform.system())
    etree.SubElement(os_type, q(JSDL, "OperatingSystemName")).text = jsdl_operating_system(
        system, "Unknown"
    )
    if figures.get("os_version"):
        etree.SubElement(os_el, q(JSDL, "OperatingSystemVersion")).text = str(figures["os_version"])
    arch = etree.SubElement(basic, q(BES, "CPUArchitecture"), nsmap={"jsdl": JSDL})
    machine = str(figures.get("architecture") or platform.machine())
    etree.SubElement(arch, q(JSDL, "CPUArchitectureName")).text = jsdl_architecture(machine)
    if figures.get("cpu_count"):
        etree.SubElement(basic, q(BES, "CPUCount")).text = str(float(figures["cpu_count"]))
    if figures.get("physical_memory"):
        etree.SubElement(basic, q(BES, "PhysicalMemory")).text = str(
            float(figures["physical_memory"])
        )
    etree.SubElement(doc, q(BES, "IsAcceptingNewActivities")).text = (
        "true" if call.accepting() else "false"
    )
    etree.SubElement(doc, q(BES, "CommonName")).text = call.settings.common_name
    etree.SubElement(
        doc, q(BES, "LongDescription")
    ).text = f"xtreemgate OGSA-BES endpoint on the {call.execution.name} execution backend"
    etree.SubElement(doc, q(BES, "TotalNumberOfActivities")).text = str(call.store.count())
    # Only activities the caller may see, newest first, up to the configured bound.
    owner = None if call.principal.site_admin else call.principal.name
    for record in call.store.list(owner, limit=call.settings.max_activity_references):
        doc.append(activity_epr(q(BES, "ActivityReference"), call.endpoint_url, record.id))
    etree.SubElement(doc, q(BES, "TotalNumberOfContainedResources")).text = "0"
    etree.SubElement(doc, q(BES, "NamingProfile")).text = NAMING_PROFILE
    etree.SubElement(doc, q(BES, "BESExtension")).text = HPCP_FS
    etree.SubElement(doc, q(BES, "BESExtension")).text = BES_MGMT
    etree.SubElement(
        doc, q(BES, "LocalResourceManagerType")
    ).text = f"urn:xtreemgate:execution:{call.execution.name}"
    active = etree.SubElement(doc, q(XG, "ActiveActivities"), nsmap={"xg": XG})
    active.text = str(call.store.count(active_only=True))
    # the names a queue hint (jsdl-arc:QueueName) may give, where the backend has queues
    for queue in figures.get("queues", ()):
        etree.SubElement(doc, q(XG, "Queue"), nsmap={"xg": XG}).text = str(queue)
    return response
