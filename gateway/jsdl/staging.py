"""jsdl:DataStaging (GFD.56 §6.5) → StagingSpec: which file, from where, to where, how.

A DataStaging element with a Source is a stage-in, one with a Target a stage-out, and
one with both is both (the file is fetched, the job may change it, and it is sent on).
URLs are checked here, before anything is accepted, so that a job cannot fail an hour
later because of a typo the gateway could have seen: http, https, ftp and file are
staged, and glusterfs/xtreemfs URLs naming a file on a storage volume (resolved against
the storage backend when the activity is created, gateway/activities/volume_staging.py); other
schemes (gsiftp, srm, urn:...) are UnsupportedFeature naming jsdl:URI.

Tolerated, because real clients send them and the meaning is not in doubt:
  * a missing CreationFlag (UNICORE leaves it out): ``overwrite``, the only reading that
    makes a fresh working directory usable;
  * an unqualified URI inside jsdl:Source / jsdl:Target;
  * UNICORE's non-standard StagingSchedule (values BeforeSubmission / AfterSubmission):
    the gateway always stages in after the activity is accepted and before it runs, and
    stages out after it ends, so the hint changes nothing; any other value is refused.

Credentials for one transfer come in the URL (ftp://user:password@host/...; they are moved
out of it into the StagingSpec's username and password, kept out of repr), as a
wsse:UsernameToken inside an HPC Basic Profile
Credential element (both the 2007/01 ``fs`` and 2007/11 ``ac`` namespaces), or as
UNICORE's BearerToken. An empty token (a client template nobody filled in) is no
credential. PasswordDigest is refused: a digest cannot log in to an FTP or HTTP server.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath
from urllib.parse import unquote, urlsplit, urlunsplit

from lxml import etree

from backends.contracts.model import StagingSpec
from gateway.jsdl.common import (
    boolean,
    child_name,
    elements,
    invalid,
    name_of,
    shown,
    simple_text,
    unknown_jsdl,
    unsupported,
)
from gateway.jsdl.namespaces import JSDL, JSDL_NAMESPACES, UNICORE
from gateway.xmlns import HPCP_AC, HPCP_FS, WSSE

VOLUME_SCHEMES = ("glusterfs", "xtreemfs")
SCHEMES = ("http", "https", "ftp", "file", *VOLUME_SCHEMES)
_BAD_URL_CHARACTERS = re.compile(r"[\s\x00-\x1f\x7f]")
DATA_STAGING_CHILDREN = dict.fromkeys(
    (
        "FileName",
        "FilesystemName",
        "CreationFlag",
        "DeleteOnTermination",
        "Source",
        "Target",
        "StagingSchedule",  # UNICORE's, tolerated (module docstring)
    ),
    JSDL,
)
CREATION_FLAGS = {"overwrite": "overwrite", "append": "append", "dontoverwrite": "dontOverwrite"}
STAGING_SCHEDULES = ("BeforeSubmission", "AfterSubmission")
WSS_USERNAME_PROFILE = (
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0"
)
PASSWORD_TEXT = f"{WSS_USERNAME_PROFILE}#PasswordText"


@dataclass(frozen=True)
class _Credential:
    username: str = ""
    password: str = ""
    bearer_token: str = ""


def read_data_staging(
    element: etree._Element,
) -> tuple[StagingSpec | None, StagingSpec | None]:
    """The (stage-in, stage-out) pair one jsdl:DataStaging element asks for."""
    found: dict[str, etree._Element] = {}
    credential = _Credential()
    credential_element: etree._Element | None = None
    for child in elements(element):
        namespace, local = child_name(child, JSDL)
        if namespace == JSDL and local in DATA_STAGING_CHILDREN:
            if local in found:
                raise invalid(child, "appears twice in one jsdl:DataStaging")
            found[local] = child
        elif namespace in (HPCP_FS, HPCP_AC) and local == "Credential":
            if credential_element is not None:
                raise invalid(child, "appears twice in one jsdl:DataStaging")
            credential_element = child
            credential = _read_credential(child)
        elif namespace == UNICORE and local == "InlineData":
            raise unsupported(
                child,
                "carries the file's content inline (a UNICORE extension)",
                "Put the file on an http, https or ftp server and name it in jsdl:Source.",
            )
        elif namespace in JSDL_NAMESPACES:
            raise unknown_jsdl(child, "jsdl:DataStaging", DATA_STAGING_CHILDREN)
        else:
            raise unsupported(
                child,
                "is an extension of jsdl:DataStaging this gateway does not understand; "
                "it could change how the file is moved, so it is not ignored",
            )

    if "FilesystemName" in found:
        raise unsupported(
            found["FilesystemName"],
            "refers to a jsdl:FileSystem; this gateway stages into the job's working "
            "directory only",
            "Leave FilesystemName out and give FileName relative to the working directory.",
        )
    source = _endpoint(found.get("Source"))
    target = _endpoint(found.get("Target"))
    if "FileName" not in found:
        example = PurePosixPath(urlsplit(source or target or "").path).name or "input.txt"
        raise invalid(
            element,
            "has no jsdl:FileName",
            "Name the file in the job's working directory, e.g. "
            f"<jsdl:FileName>{example}</jsdl:FileName>.",
        )
    filename = _filename(found["FileName"])
    flag = "overwrite"
    if "CreationFlag" in found:
        text = simple_text(found["CreationFlag"])
        if text.lower() not in CREATION_FLAGS:
            raise invalid(
                found["CreationFlag"],
                f"is {shown(text)}",
                "It must be overwrite, append or dontOverwrite.",
            )
        flag = CREATION_FLAGS[text.lower()]
    delete = True
    if "DeleteOnTermination" in found:
        delete = boolean(found["DeleteOnTermination"])
    if "StagingSchedule" in found:
        schedule = simple_text(found["StagingSchedule"])
        if schedule not in STAGING_SCHEDULES:
            raise invalid(
                found["StagingSchedule"],
                f"is {shown(schedule)}",
                "UNICORE's StagingSchedule takes BeforeSubmission or AfterSubmission; "
                "it can also be left out.",
            )
    if not source and not target:
        raise unsupported(
            element,
            "has neither a jsdl:Source nor a jsdl:Target",
            "Give a Source URI to fetch the file before the job, a Target URI to send it "
            "after the job, or both.",
        )
    for url, side in ((source, "Source"), (target, "Target")):
        if url and credential_element is not None and urlsplit(url).username:
            raise invalid(
                credential_element,
                f"gives a credential, and the {side} URI carries one as well",
                "Keep only one of them.",
            )

    def spec(url: str, side: str) -> StagingSpec:
        url, login = _split_userinfo(url)
        given = login or credential
        return StagingSpec(
            filename=filename,
            creation_flag=flag,
            delete_on_termination=delete,
            username=given.username,
            password=given.password,
            bearer_token=given.bearer_token,
            **{side: url},
        )

    return (
        spec(source, "source") if source else None,
        spec(target, "target") if target else None,
    )


def _split_userinfo(url: str) -> tuple[str, _Credential | None]:
    """``ftp://user:pw@host/f`` → (``ftp://host/f``, user/pw): a login written into the
    URL travels like any other staging credential, so it never shows in a repr or log."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url, None
    userinfo, _, host = parts.netloc.rpartition("@")
    username, _, password = userinfo.partition(":")
    return urlunsplit(parts._replace(netloc=host)), _Credential(
        username=unquote(username), password=unquote(password)
    )


def _endpoint(element: etree._Element | None) -> str:
    """The checked URL of a jsdl:Source or jsdl:Target, or "" when absent."""
    if element is None:
        return ""
    uri: etree._Element | None = None
    for child in elements(element):
        namespace, local = child_name(child, JSDL)
        if namespace == JSDL and local == "URI" and uri is None:
            uri = child
        elif namespace == JSDL and local == "URI":
            raise invalid(child, f"appears twice in one {name_of(element)}")
        else:
            raise unsupported(
                child,
                f"is an extension of {name_of(element)} this gateway does not understand",
                "Give the location as a jsdl:URI.",
            )
    if uri is None:
        raise invalid(element, "has no jsdl:URI", "Give the file's location as a jsdl:URI.")
    return check_url(uri, simple_text(uri))


def check_url(element: etree._Element, url: str) -> str:
    """``url`` if the gateway can stage to or from it; otherwise a fault naming ``element``."""
    if _BAD_URL_CHARACTERS.search(url):
        raise invalid(element, f"{shown(url)} contains white space or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise invalid(element, f"{shown(url)} is not a valid URL ({exc})") from None
    scheme = parts.scheme.lower()
    if not scheme:
        raise invalid(
            element,
            f"{shown(url)} is not an absolute URL",
            "Give a full URL such as https://host/path/file.",
        )
    if scheme not in SCHEMES:
        raise unsupported(
            element,
            f"uses the URL scheme {shown(scheme)} in {shown(url)}",
            "This gateway stages files over http, https, ftp and file URLs, and "
            "glusterfs/xtreemfs URLs of its storage volumes.",
        )
    if scheme == "file":
        if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
            raise invalid(
                element,
                f"{shown(url)} is not a local file URL",
                "Write file:///absolute/path (no host name).",
            )
        return url
    if not parts.hostname:
        raise invalid(element, f"{shown(url)} names no host")
    if port == 0:
        raise invalid(element, f"{shown(url)} names port 0")
    return url


def _filename(element: etree._Element) -> str:
    """A path relative to the working directory that stays inside it."""
    name = simple_text(element)
    path = PurePosixPath(name)
    if "\0" in name or path.is_absolute() or ".." in path.parts:
        raise invalid(
            element,
            f"is {shown(name)}, which leaves the job's working directory",
            "Give a relative path without '..', e.g. dir1/file1.txt.",
        )
    return name


def _read_credential(element: etree._Element) -> _Credential:
    tokens = list(elements(element))
    if len(tokens) != 1:
        raise invalid(element, "must hold exactly one token (wsse:UsernameToken)")
    token = tokens[0]
    namespace, local = child_name(token, WSSE)
    if namespace == WSSE and local == "UsernameToken":
        return _username_token(token)
    if namespace == UNICORE and local == "BearerToken":
        return _Credential(bearer_token=simple_text(token, required=False))
    raise unsupported(
        token,
        "is a kind of staging credential this gateway does not understand",
        "Use a wsse:UsernameToken with Username and Password.",
    )


def _username_token(token: etree._Element) -> _Credential:
    parts: dict[str, etree._Element] = {}
    for child in elements(token):
        namespace, local = child_name(child, WSSE)
        if namespace == WSSE and local in ("Username", "Password") and local not in parts:
            parts[local] = child
        elif namespace == WSSE and local in ("Nonce", "Created"):
            continue  # replay protection for messages; meaningless for a stored credential
        else:
            raise invalid(child, "does not belong in a wsse:UsernameToken (or appears twice)")
    username = simple_text(parts["Username"], required=False) if "Username" in parts else ""
    password = ""
    if "Password" in parts:
        kind = parts["Password"].get("Type", PASSWORD_TEXT)
        if kind != PASSWORD_TEXT:
            raise unsupported(
                parts["Password"],
                f"has Type {shown(kind)}",
                "Staging servers need the password itself: send it as PasswordText "
                "(the document travels over TLS).",
            )
        password = "".join(parts["Password"].itertext()).strip()
    if password and not username:
        raise invalid(token, "gives a password but no wsse:Username")
    return _Credential(username=username, password=password)
