"""Namespaces and action URIs of OGSA-BES 1.0 (GFD.108) and the gateway's own BES extension."""

from __future__ import annotations

from gateway.xmlns import SOAP_ENV, WSA

BES = "http://schemas.ggf.org/bes/2006/08/bes-factory"
BES_MGMT = "http://schemas.ggf.org/bes/2006/08/bes-management"
# The gateway's own extension elements (reference parameters, exit codes, reasons).
XG = "urn:xtreemgate:bes"

FACTORY_PORT = f"{BES}/BESFactoryPortType"
MGMT_PORT = f"{BES_MGMT}/BESManagementPortType"
FACTORY_OPERATIONS = (
    "CreateActivity",
    "GetActivityStatuses",
    "TerminateActivities",
    "GetActivityDocuments",
    "GetFactoryAttributesDocument",
)
MGMT_OPERATIONS = ("StopAcceptingNewActivities", "StartAcceptingNewActivities")
NAMING_PROFILE = "http://schemas.ggf.org/bes/2006/08/bes/naming/BasicWSAddressing"

NSMAP = {"soap": SOAP_ENV, "wsa": WSA, "bes-factory": BES, "xg": XG}


def q(namespace: str, name: str) -> str:
    """Clark notation, as lxml wants it."""
    return f"{{{namespace}}}{name}"


def action(operation: str, response: bool = False) -> str:
    port = MGMT_PORT if operation in MGMT_OPERATIONS else FACTORY_PORT
    return f"{port}/{operation}{'Response' if response else ''}"


def fault_action(operation: str) -> str:
    port = MGMT_PORT if operation in MGMT_OPERATIONS else FACTORY_PORT
    return f"{port}/Fault"
