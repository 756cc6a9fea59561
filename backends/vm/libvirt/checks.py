"""Input checks shared by the parts of the libvirt backend: each failure is an
:class:`InvalidSpec` whose message says what is wrong and what would be right."""

from __future__ import annotations

import contextlib
import re
import uuid
from typing import Any

from backends.contracts.interfaces import InvalidSpec

GIB = 1024**3
MIB = 1024**2
TEMPLATE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
DISK_TARGET = re.compile(r"^(vd|sd|hd|xvd)[a-z]{1,2}$")
MAC = re.compile(r"^([0-9a-f]{2}:){5}[0-9a-f]{2}$")
ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,63}$")


def canonical_id(value: str, what: str = "compute") -> str:
    """The gateway's ids for computes and networks are UUIDs (they become libvirt's)."""
    try:
        return str(uuid.UUID(value))
    except (ValueError, AttributeError, TypeError):
        raise InvalidSpec(f"{what} id {value!r} is not a UUID") from None


def plain_id(value: str, what: str) -> str:
    """Storage and link ids become parts of volume names and metadata attributes."""
    if not ID.match(value or ""):
        raise InvalidSpec(f"{what} id {value!r}: letters, digits and '-' only (at most 64)")
    return value


def quietly(func: Any, *args: Any) -> None:
    """Clean-up that must not hide the error being raised."""
    with contextlib.suppress(Exception):  # best effort, the original error matters
        func(*args)
