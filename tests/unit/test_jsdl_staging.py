"""jsdl:DataStaging → StagingSpec: URLs, flags, credentials, and the faults for each."""

from __future__ import annotations

import pytest

from backends.contracts.model import JobSpec, StagingSpec
from gateway.jsdl.reader import JSDLFault, read_job_definition
from gateway.xmlsafe import parse

NS = 'xmlns="http://schemas.ggf.org/jsdl/2005/11/jsdl"'
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
FS = "http://schemas.ogf.org/hpcp/2007/01/fs"
AC = "http://schemas.ogf.org/hpcp/2007/11/ac"


def staging(*elements: str) -> bytes:
    inner = "".join(f"<DataStaging>{e}</DataStaging>" for e in elements)
    return f"<JobDefinition {NS}><JobDescription>{inner}</JobDescription></JobDefinition>".encode()


def read(document: bytes) -> JobSpec:
    (spec,) = read_job_definition(parse(document))
    return spec


def refused(document: bytes) -> JSDLFault:
    with pytest.raises(JSDLFault) as caught:
        read_job_definition(parse(document))
    return caught.value


def source(url: str) -> str:
    return f"<Source><URI>{url}</URI></Source>"


def target(url: str) -> str:
    return f"<Target><URI>{url}</URI></Target>"


@pytest.mark.parametrize(
    "url",
    [
        "http://example.org/a.txt",
        "https://example.org:8443/a?x=1",
        "file:///srv/data/a.txt",
        "file://localhost/srv/data/a.txt",
        "HTTP://EXAMPLE.ORG/a",
    ],
)
def test_supported_urls_both_ways(url: str) -> None:
    spec = read(
        staging(
            f"<FileName>a.txt</FileName><CreationFlag>overwrite</CreationFlag>{source(url)}{target(url)}"
        )
    )
    assert spec.stage_in == (StagingSpec("a.txt", source=url),)
    assert spec.stage_out == (StagingSpec("a.txt", target=url),)
    assert spec.executable == ""


def test_a_login_in_the_url_moves_into_the_credential_fields() -> None:
    url = "ftp://us%40er:p%3Aw@ftp.example.org:2121/pub/a.txt"
    spec = read(staging(f"<FileName>a.txt</FileName>{source(url)}"))
    (stage,) = spec.stage_in
    assert stage.source == "ftp://ftp.example.org:2121/pub/a.txt"
    assert (stage.username, stage.password) == ("us@er", "p:w")
    assert "p:w" not in repr(spec) and "p%3Aw" not in repr(spec)


@pytest.mark.parametrize(
    ("flag", "expected"),
    [
        ("overwrite", "overwrite"),
        ("append", "append"),
        ("dontOverwrite", "dontOverwrite"),
        ("DontOverwrite", "dontOverwrite"),
    ],
)
def test_creation_flags(flag: str, expected: str) -> None:
    spec = read(
        staging(f"<FileName>f</FileName><CreationFlag>{flag}</CreationFlag>{source('http://h/f')}")
    )
    assert spec.stage_in[0].creation_flag == expected


def test_defaults_delete_on_termination_and_missing_creation_flag() -> None:
    spec = read(
        staging(
            f"<FileName>keep</FileName><DeleteOnTermination>false</DeleteOnTermination>{target('ftp://h/k')}",
            f"<FileName>drop</FileName>{source('http://h/d')}",
        )
    )
    assert spec.stage_out[0].delete_on_termination is False
    assert spec.stage_out[0].creation_flag == "overwrite"
    assert spec.stage_in[0].delete_on_termination is True


@pytest.mark.parametrize("namespace", [FS, AC])
def test_username_token_credentials_stay_out_of_repr(namespace: str) -> None:
    spec = read(
        staging(
            f"<FileName>f</FileName>{source('ftp://h/f')}"
            f'<Credential xmlns="{namespace}"><wsse:UsernameToken xmlns:wsse="{WSSE}">'
            "<wsse:Username>u</wsse:Username><wsse:Password>s3cret-pw</wsse:Password>"
            "</wsse:UsernameToken></Credential>"
        )
    )
    (stage,) = spec.stage_in
    assert (stage.username, stage.password) == ("u", "s3cret-pw")
    assert "s3cret-pw" not in repr(spec)


def test_unicore_staging_schedule_is_tolerated_and_checked() -> None:
    spec = read(
        staging(
            f"<FileName>f</FileName>{source('http://h/f')}<StagingSchedule>AfterSubmission</StagingSchedule>"
        )
    )
    assert spec.stage_in[0].source == "http://h/f"
    fault = refused(
        staging(
            f"<FileName>f</FileName>{source('http://h/f')}<StagingSchedule>Whenever</StagingSchedule>"
        )
    )
    assert (fault.fault, fault.element) == ("InvalidRequestMessage", "jsdl:StagingSchedule")


@pytest.mark.parametrize(
    ("inner", "fault", "element", "says"),
    [
        (source("gsiftp://h/f"), "UnsupportedFeature", "jsdl:URI", "http, https, ftp and file"),
        (source("srm://h/f"), "UnsupportedFeature", "jsdl:URI", "'srm'"),
        (source("placeholder"), "InvalidRequestMessage", "jsdl:URI", "not an absolute URL"),
        (source("http:///nohost"), "InvalidRequestMessage", "jsdl:URI", "names no host"),
        (source("http://h:99999/f"), "InvalidRequestMessage", "jsdl:URI", "not a valid URL"),
        (
            source("file://otherhost/etc/passwd"),
            "InvalidRequestMessage",
            "jsdl:URI",
            "file:///absolute/path",
        ),
        (
            "<Source><URI>http://h/a b</URI></Source>",
            "InvalidRequestMessage",
            "jsdl:URI",
            "white space",
        ),
        ("<Source/>", "InvalidRequestMessage", "jsdl:Source", "has no jsdl:URI"),
        (
            "<Source><URI>http://h/1</URI><URI>http://h/2</URI></Source>",
            "InvalidRequestMessage",
            "jsdl:URI",
            "twice",
        ),
        (
            '<Source><x:Loc xmlns:x="urn:x"/></Source>',
            "UnsupportedFeature",
            "{urn:x}Loc",
            "jsdl:Source",
        ),
        ("", "UnsupportedFeature", "jsdl:DataStaging", "neither a jsdl:Source nor a jsdl:Target"),
        (
            source("http://h/f") + "<CreationFlag>replace</CreationFlag>",
            "InvalidRequestMessage",
            "jsdl:CreationFlag",
            "overwrite, append or dontOverwrite",
        ),
        (
            source("http://h/f") + "<DeleteOnTermination>maybe</DeleteOnTermination>",
            "InvalidRequestMessage",
            "jsdl:DeleteOnTermination",
            "true or false",
        ),
        (
            source("http://h/f") + "<FilesystemName>HOME</FilesystemName>",
            "UnsupportedFeature",
            "jsdl:FilesystemName",
            "working directory",
        ),
        (
            source("http://h/f")
            + '<u:InlineData xmlns:u="http://www.unicore.eu/unicore/jsdl-extensions">x</u:InlineData>',
            "UnsupportedFeature",
            "unicore:InlineData",
            "inline",
        ),
        (
            source("http://h/f") + '<x:Checksum xmlns:x="urn:x">abc</x:Checksum>',
            "UnsupportedFeature",
            "{urn:x}Checksum",
            "not ignored",
        ),
    ],
)
def test_staging_faults(inner: str, fault: str, element: str, says: str) -> None:
    caught = refused(staging(f"<FileName>f</FileName>{inner}"))
    assert (caught.fault, caught.element) == (fault, element)
    assert says in str(caught)


@pytest.mark.parametrize("name", ["/etc/passwd", "../outside", "a/../../b", ""])
def test_file_names_stay_in_the_working_directory(name: str) -> None:
    caught = refused(staging(f"<FileName>{name}</FileName>{source('http://h/f')}"))
    assert caught.element == "jsdl:FileName"
    assert caught.fault == "InvalidRequestMessage"


def test_missing_file_name_suggests_one_from_the_url() -> None:
    caught = refused(staging(source("http://h/dir/data.csv")))
    assert caught.element == "jsdl:DataStaging"
    assert "<jsdl:FileName>data.csv</jsdl:FileName>" in str(caught)


@pytest.mark.parametrize(
    ("credential", "fault", "element", "says"),
    [
        (
            f'<wsse:UsernameToken xmlns:wsse="{WSSE}"><wsse:Username>u</wsse:Username>'
            '<wsse:Password Type="http://docs.oasis-open.org/wss/2004/01/'
            'oasis-200401-wss-username-token-profile-1.0#PasswordDigest">d</wsse:Password>'
            "</wsse:UsernameToken>",
            "UnsupportedFeature",
            "wsse:Password",
            "PasswordText",
        ),
        (
            f'<wsse:UsernameToken xmlns:wsse="{WSSE}"><wsse:Password>p</wsse:Password></wsse:UsernameToken>',
            "InvalidRequestMessage",
            "wsse:UsernameToken",
            "no wsse:Username",
        ),
        ('<x:Kerberos xmlns:x="urn:x"/>', "UnsupportedFeature", "{urn:x}Kerberos", "UsernameToken"),
        ("", "InvalidRequestMessage", "hpcp-fs:Credential", "exactly one"),
    ],
)
def test_credential_faults(credential: str, fault: str, element: str, says: str) -> None:
    caught = refused(
        staging(
            f'<FileName>f</FileName>{source("ftp://h/f")}<Credential xmlns="{FS}">{credential}</Credential>'
        )
    )
    assert (caught.fault, caught.element) == (fault, element)
    assert says in str(caught)


def test_credential_twice_is_refused() -> None:
    caught = refused(
        staging(
            f"<FileName>f</FileName>{source('ftp://u:p@h/f')}"
            f'<Credential xmlns="{FS}"><wsse:UsernameToken xmlns:wsse="{WSSE}">'
            "<wsse:Username>u</wsse:Username><wsse:Password>p</wsse:Password>"
            "</wsse:UsernameToken></Credential>"
        )
    )
    assert caught.element == "hpcp-fs:Credential"
    assert "Keep only one" in str(caught)


def test_staging_fault_path_points_at_the_right_element() -> None:
    caught = refused(
        staging(
            f"<FileName>a</FileName>{source('http://h/a')}",
            f"<FileName>b</FileName>{source('gsiftp://h/b')}",
        )
    )
    assert "jsdl:DataStaging[2]/jsdl:Source/jsdl:URI" in str(caught)
