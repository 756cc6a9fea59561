"""Hostile JSDL: DTD tricks stop at the parser, and nothing in a document costs much."""

from __future__ import annotations

import time

import pytest

from gateway.jsdl.reader import JSDLFault, read_job_definition
from gateway.xmlsafe import UnsafeXML, parse

XXE = b"""<?xml version="1.0"?>
<!DOCTYPE JobDefinition [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<JobDefinition xmlns="http://schemas.ggf.org/jsdl/2005/11/jsdl"><JobDescription>
<Application><POSIXApplication xmlns="http://schemas.ggf.org/jsdl/2005/11/jsdl-posix">
<Executable>/bin/echo</Executable><Argument>&secret;</Argument>
</POSIXApplication></Application></JobDescription></JobDefinition>"""

LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE JobDefinition [
 <!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">
 <!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;"><!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">
 <!ENTITY e "&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;"><!ENTITY f "&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;">
 <!ENTITY g "&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;"><!ENTITY h "&g;&g;&g;&g;&g;&g;&g;&g;&g;&g;">
]>
<JobDefinition xmlns="http://schemas.ggf.org/jsdl/2005/11/jsdl"><JobDescription>
<JobIdentification><JobName>&h;</JobName></JobIdentification></JobDescription></JobDefinition>"""

EXTERNAL_DTD = b"""<?xml version="1.0"?>
<!DOCTYPE JobDefinition SYSTEM "http://127.0.0.1:9/jsdl.dtd">
<JobDefinition xmlns="http://schemas.ggf.org/jsdl/2005/11/jsdl"><JobDescription/></JobDefinition>"""


@pytest.mark.parametrize("document", [XXE, LAUGHS, EXTERNAL_DTD], ids=["xxe", "laughs", "dtd"])
def test_dtd_tricks_are_refused_by_the_parser_cheaply(document: bytes) -> None:
    started = time.perf_counter()
    with pytest.raises(UnsafeXML, match="DOCTYPE"):
        parse(document)
    assert time.perf_counter() - started < 0.5


def test_an_oversized_document_is_refused_before_parsing() -> None:
    staging = (
        b"<DataStaging><FileName>f</FileName><Source><URI>http://h/f</URI></Source></DataStaging>"
    )
    document = (
        b'<JobDefinition xmlns="http://schemas.ggf.org/jsdl/2005/11/jsdl"><JobDescription>'
        + staging * 60000
        + b"</JobDescription></JobDefinition>"
    )
    with pytest.raises(UnsafeXML, match="at most"):
        parse(document)


def test_many_stagings_within_the_size_bound_read_quickly() -> None:
    staging = (
        b"<DataStaging><FileName>f%d</FileName><Source><URI>http://h/f</URI></Source></DataStaging>"
    )
    document = (
        b'<JobDefinition xmlns="http://schemas.ggf.org/jsdl/2005/11/jsdl"><JobDescription>'
        + b"".join(staging % i for i in range(20000))
        + b"</JobDescription></JobDefinition>"
    )
    started = time.perf_counter()
    (spec,) = read_job_definition(parse(document))
    assert len(spec.stage_in) == 20000
    assert time.perf_counter() - started < 5


def test_a_sweep_past_the_bound_is_refused_before_any_copy() -> None:
    document = (
        b'<j:JobDefinition xmlns:j="http://schemas.ggf.org/jsdl/2005/11/jsdl" '
        b'xmlns:s="http://schemas.ogf.org/jsdl/2009/03/sweep" '
        b'xmlns:f="http://schemas.ogf.org/jsdl/2009/03/sweep/functions">'
        b"<j:JobDescription><j:JobIdentification><j:JobName>x</j:JobName></j:JobIdentification>"
        b"</j:JobDescription>"
        + b"<s:Sweep><s:Assignment><s:DocumentNode><s:Match>//j:JobName</s:Match>"
        b'</s:DocumentNode><f:LoopInteger start="1" end="1000000"/></s:Assignment>'
        * 6
        + b"</s:Sweep>" * 6
        + b"</j:JobDefinition>"
    )
    started = time.perf_counter()
    with pytest.raises(JSDLFault) as caught:
        read_job_definition(parse(document))
    assert time.perf_counter() - started < 0.5
    assert caught.value.element == "sweep:Sweep"
    assert "at most 1000" in str(caught.value)
