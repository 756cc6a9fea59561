"""One HTTP byte range (RFC 9110 §14) as the storage API's downloads read it."""

import pytest

from gateway.storage.ranges import Unsatisfiable, byte_range


@pytest.mark.parametrize(
    ("header", "size", "expected"),
    [
        (None, 10, None),
        ("", 10, None),
        ("bytes=0-0", 10, (0, 0)),
        ("bytes=2-4", 10, (2, 4)),
        ("bytes=2-", 10, (2, 9)),
        ("bytes=-3", 10, (7, 9)),
        ("bytes=-30", 10, (0, 9)),  # a suffix longer than the file: all of it
        ("bytes=8-100", 10, (8, 9)),  # the end is clipped to the file
        (" Bytes = 1 - 2 ", 10, (1, 2)),
        ("bytes=0-1,4-5", 10, None),  # several ranges: the whole file
        ("bytes=5-2", 10, None),  # invalid: ignored
        ("bytes=-", 10, None),
        ("items=0-1", 10, None),  # another unit: ignored
        ("bytes=abc", 10, None),
    ],
)
def test_byte_range(header: str | None, size: int, expected: tuple[int, int] | None) -> None:
    assert byte_range(header, size) == expected


@pytest.mark.parametrize(("header", "size"), [("bytes=10-", 10), ("bytes=0-", 0), ("bytes=-0", 10)])
def test_unsatisfiable_ranges_say_the_size(header: str, size: int) -> None:
    with pytest.raises(Unsatisfiable, match=f"the file has {size} bytes"):
        byte_range(header, size)
