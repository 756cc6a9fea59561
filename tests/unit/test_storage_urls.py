"""Volume URLs: what names a file on a volume, and what is refused."""

from __future__ import annotations

import pytest

from backends.contracts.volume_urls import VolumeURL, VolumeURLError, parse


@pytest.mark.parametrize(
    ("url", "parsed"),
    [
        ("xtreemfs://mrc:32636/vol/a/b.txt", VolumeURL("xtreemfs", "mrc:32636", "vol", "a/b.txt")),
        ("glusterfs://Host/vol/", VolumeURL("glusterfs", "host", "vol", "")),
        ("glusterfs://host/vol//a/./b%20c", VolumeURL("glusterfs", "host", "vol", "a/b c")),
        ("file:///srv/x/../y", None),
        ("file:///srv/data/f", VolumeURL("file", "", "", "/srv/data/f")),
    ],
)
def test_parse(url: str, parsed: VolumeURL | None) -> None:
    if parsed is None:
        with pytest.raises(VolumeURLError, match=r"\.\."):
            parse(url)
    else:
        assert parse(url) == parsed


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://h/vol/f", "scheme"),
        ("glusterfs:///vol/f", "no server"),
        ("glusterfs://u:p@h/vol/f", "user information"),
        ("glusterfs://h/-vol/f", "letters"),
        ("glusterfs://h/vol/f?x=1", "query"),
        ("file://otherhost/f", "only local"),
        ("xtreemfs://mrc/vol/../../etc", r"\.\."),
    ],
)
def test_refused(url: str, reason: str) -> None:
    with pytest.raises(VolumeURLError, match=reason):
        parse(url)


def test_round_trip() -> None:
    url = "glusterfs://host/vol/a%20b/c"
    assert str(parse(url)) == url
