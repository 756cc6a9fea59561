"""Namespaces and action URIs of the standards the BES endpoint speaks, in one place."""

from __future__ import annotations

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12_ENV = "http://www.w3.org/2003/05/soap-envelope"
WSA = "http://www.w3.org/2005/08/addressing"
WSA_ANONYMOUS = f"{WSA}/anonymous"
BES = "http://schemas.ggf.org/bes/2006/08/bes-factory"
BES_MGMT = "http://schemas.ggf.org/bes/2006/08/bes-management"
JSDL = "http://schemas.ggf.org/jsdl/2005/11/jsdl"
# HPC Basic Profile File Staging Extension (GFD.135): Staging-In / Staging-Out substates.
HPCP_FS = "http://schemas.ogf.org/hpcp/2007/01/fs"
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
WSU = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
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
