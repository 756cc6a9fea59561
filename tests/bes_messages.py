"""Real SOAP 1.1 request bytes for the BES endpoint, and reading the answers with lxml."""

from __future__ import annotations

import base64
import hashlib
import os
import uuid
from datetime import UTC, datetime
from xml.sax.saxutils import escape

from lxml import etree

SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
WSA = "http://www.w3.org/2005/08/addressing"
BES = "http://schemas.ggf.org/bes/2006/08/bes-factory"
MGMT = "http://schemas.ggf.org/bes/2006/08/bes-management"
JSDL = "http://schemas.ggf.org/jsdl/2005/11/jsdl"
POSIX = "http://schemas.ggf.org/jsdl/2005/11/jsdl-posix"
XG = "urn:xtreemgate:bes"
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
WSU = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
PROFILE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0"
NS = {"soap": SOAP, "wsa": WSA, "bes": BES, "mgmt": MGMT, "jsdl": JSDL, "xg": XG}
ACTION = "http://schemas.ggf.org/bes/2006/08/bes-factory/BESFactoryPortType/"


def envelope(body: str, header: str = "") -> bytes:
    head = f"<soap:Header>{header}</soap:Header>" if header else ""
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>'
        f'<soap:Envelope xmlns:soap="{SOAP}" xmlns:wsa="{WSA}" xmlns:bes="{BES}" '
        f'xmlns:jsdl="{JSDL}" xmlns:posix="{POSIX}">{head}<soap:Body>{body}</soap:Body>'
        f"</soap:Envelope>"
    ).encode()


def addressing(operation: str, message_id: str = "", to: str = "") -> str:
    parts = [f"<wsa:Action>{ACTION}{operation}</wsa:Action>"]
    if message_id:
        parts.append(f"<wsa:MessageID>{message_id}</wsa:MessageID>")
    if to:
        parts.append(f"<wsa:To>{to}</wsa:To>")
    return "".join(parts)


def job(executable: str, *arguments: str, output: str = "stdout.txt", extra: str = "") -> str:
    args = "".join(f"<posix:Argument>{escape(a)}</posix:Argument>" for a in arguments)
    return (
        f"<jsdl:JobDefinition><jsdl:JobDescription>"
        f"<jsdl:JobIdentification><jsdl:JobName>test</jsdl:JobName></jsdl:JobIdentification>"
        f"<jsdl:Application><posix:POSIXApplication>"
        f"<posix:Executable>{escape(executable)}</posix:Executable>{args}"
        f"<posix:Output>{output}</posix:Output>"
        f"</posix:POSIXApplication></jsdl:Application>{extra}"
        f"</jsdl:JobDescription></jsdl:JobDefinition>"
    )


def create(job_definition: str) -> str:
    return (
        f"<bes:CreateActivity><bes:ActivityDocument>{job_definition}"
        f"</bes:ActivityDocument></bes:CreateActivity>"
    )


def epr_xml(address: str = "", activity_id: str = "", tag: str = "bes:ActivityIdentifier") -> str:
    inner = f"<wsa:Address>{address or 'http://testserver/bes'}</wsa:Address>"
    if activity_id:
        inner += (
            f'<wsa:ReferenceParameters><xg:ActivityIdentifier xmlns:xg="{XG}">'
            f"{activity_id}</xg:ActivityIdentifier></wsa:ReferenceParameters>"
        )
    return f"<{tag}>{inner}</{tag}>"


def batch(operation: str, eprs: list[str]) -> str:
    return f"<bes:{operation}>{''.join(eprs)}</bes:{operation}>"


def wss_header(
    username: str,
    password: str,
    *,
    digest: bool,
    nonce: bytes | None = None,
    created: str | None = None,
) -> str:
    nonce = nonce if nonce is not None else os.urandom(16)
    created = created or datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if digest:
        value = base64.b64encode(
            hashlib.sha1(nonce + created.encode() + password.encode()).digest()  # noqa: S324
        ).decode()
        kind = "PasswordDigest"
    else:
        value, kind = escape(password), "PasswordText"
    return (
        f'<wsse:Security xmlns:wsse="{WSSE}" xmlns:wsu="{WSU}"><wsse:UsernameToken>'
        f"<wsse:Username>{username}</wsse:Username>"
        f'<wsse:Password Type="{PROFILE}#{kind}">{value}</wsse:Password>'
        f"<wsse:Nonce>{base64.b64encode(nonce).decode()}</wsse:Nonce>"
        f"<wsu:Created>{created}</wsu:Created>"
        f"</wsse:UsernameToken></wsse:Security>"
    )


def message_id() -> str:
    return f"urn:uuid:{uuid.uuid4()}"


def body_of(document: bytes) -> etree._Element:
    root = etree.fromstring(document)
    return root.find("soap:Body", NS)[0]


def fault_detail_names(fault: etree._Element) -> list[str]:
    detail = fault.find("detail")
    return [etree.QName(c).localname for c in detail] if detail is not None else []
