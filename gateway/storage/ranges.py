"""One HTTP byte range (RFC 9110 §14): what part of a file a GET sends.

Only a single range is honoured; a request for several is answered with the whole file,
which RFC 9110 allows (a server may ignore Range). A range that cannot be satisfied is
the caller's mistake (416, with ``Content-Range: bytes */<size>``).
"""

from __future__ import annotations

import re

_SINGLE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$", re.IGNORECASE)


class Unsatisfiable(ValueError):
    """The range lies outside the file."""


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(first, last) inclusive byte positions to send, or None for the whole file
    (no Range, several ranges, or one this parser does not know)."""
    if not header:
        return None
    found = _SINGLE.match(header)
    if found is None:
        return None
    first, last = found.group(1), found.group(2)
    if not first and not last:
        return None
    if not first:  # a suffix: the last N bytes
        length = int(last)
        if length == 0 or size == 0:
            raise Unsatisfiable(f"range {header.strip()!r}: the file has {size} bytes")
        return max(0, size - length), size - 1
    start = int(first)
    if last and int(last) < start:
        return None  # syntactically invalid: ignored (RFC 9110 §14.2)
    if start >= size:
        raise Unsatisfiable(f"range {header.strip()!r}: the file has {size} bytes")
    return start, min(int(last) if last else size - 1, size - 1)
