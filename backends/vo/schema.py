"""The policy document's JSON schema, read from schemas/ (checkout or installed wheel)."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

SCHEMA_NAME = "vo-policy.schema.json"


@lru_cache(maxsize=1)
def policy_schema() -> dict[str, Any]:
    here = Path(__file__).resolve()
    for base in (here.parents[2] / "gateway" / "_data", here.parents[2]):
        candidate = base / "schemas" / SCHEMA_NAME
        if candidate.is_file():
            return json.loads(candidate.read_text(encoding="utf-8"))
    raise FileNotFoundError(f"schemas/{SCHEMA_NAME} is missing from this installation")
