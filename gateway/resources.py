"""Where the spec and schema folders are: the repo's top level in a checkout, or inside
the gateway package in an installed wheel (see pyproject's force-include)."""

from __future__ import annotations

from pathlib import Path

_PACKAGED = Path(__file__).with_name("_data")
_CHECKOUT = Path(__file__).resolve().parent.parent


def data_dir(name: str) -> Path:
    for base in (_PACKAGED, _CHECKOUT):
        if (base / name).is_dir():
            return base / name
    raise FileNotFoundError(f"the {name}/ folder is missing from this installation")
