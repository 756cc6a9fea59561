"""The names the VO backend accepts, and the rows they name.

Every part checks what it is given against the same rules (a VO, group, role or resource
kind is a short name; a principal any name without spaces or '/'), and looks a VO or group
up the same way, so that the same mistake gets the same answer everywhere.
"""

from __future__ import annotations

import re

from sqlalchemy import select
from sqlalchemy.orm import Session

from backends.store.tables.vo import VO, VOGroup
from backends.vo.errors import Invalid, NotFound

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
PRINCIPAL = re.compile(r"^[^\s/\x00-\x1f]{1,255}$")


def check_name(value: str, what: str) -> str:
    if not isinstance(value, str) or not NAME.match(value):
        raise Invalid(
            f"{what} {value!r} is not allowed: letters, digits, '.', '_', '-', at most 128, "
            "starting with a letter or digit"
        )
    return value


def check_group(path: str) -> str:
    """A group path ('', 'a', 'a/b'), without leading or trailing '/'."""
    path = (path or "").strip("/")
    for part in path.split("/") if path else ():
        check_name(part, "group name")
    return path


def check_principal(name: str) -> str:
    if not isinstance(name, str) or not PRINCIPAL.match(name):
        raise Invalid(f"principal name {name!r} is empty, too long or has spaces or '/'")
    return name


def find_vo(session: Session, name: str) -> VO:
    vo = session.scalars(select(VO).where(VO.name == name)).first()
    if vo is None:
        raise NotFound(f"no VO {name!r}")
    return vo


def has_group(session: Session, vo_id: int, path: str) -> bool:
    return (
        session.scalar(select(VOGroup.id).where(VOGroup.vo_id == vo_id, VOGroup.path == path))
        is not None
    )
