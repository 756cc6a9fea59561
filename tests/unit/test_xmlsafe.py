"""The shared XML parser refuses DTD tricks cheaply and says why."""

from __future__ import annotations

import time

import pytest

from gateway.xmlsafe import UnsafeXML, parse

LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<lolz>&lol9;</lolz>"""

XXE_FILE = b"""<?xml version="1.0"?>
<!DOCTYPE r [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><r>&xxe;</r>"""

XXE_NET = b"""<?xml version="1.0"?>
<!DOCTYPE r SYSTEM "http://127.0.0.1:9/evil.dtd"><r/>"""


def test_plain_document_parses() -> None:
    root = parse(b'<a xmlns="urn:x"><b>text</b></a>')
    assert root.tag == "{urn:x}a"
    assert root[0].text == "text"


@pytest.mark.parametrize("document", [LAUGHS, XXE_FILE, XXE_NET], ids=["laughs", "xxe", "dtd"])
def test_dtd_documents_are_refused_quickly(document: bytes) -> None:
    started = time.perf_counter()
    with pytest.raises(UnsafeXML, match="DOCTYPE"):
        parse(document)
    assert time.perf_counter() - started < 0.5


def test_passwd_never_appears() -> None:
    with pytest.raises(UnsafeXML) as info:
        parse(XXE_FILE)
    assert "root:" not in str(info.value)


def test_size_bound_is_checked_before_parsing() -> None:
    with pytest.raises(UnsafeXML, match="at most 100"):
        parse(b"<a>" + b"x" * 200 + b"</a>", max_bytes=100)


@pytest.mark.parametrize("document", [b"", b"   ", b"<a>", b"<a>&undefined;</a>"])
def test_malformed_documents_say_why(document: bytes) -> None:
    with pytest.raises(UnsafeXML, match=r"empty|well-formed"):
        parse(document)


def test_doctype_in_utf16_is_refused_too() -> None:
    document = '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE r><r/>'.encode("utf-16")
    with pytest.raises(UnsafeXML, match="DOCTYPE"):
        parse(document)
