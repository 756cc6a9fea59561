"""Handler return values that name their media type.

Connexion needs it named whenever an operation's responses declare more than one media
type (here: JSON for success, problem+json for errors).
"""

from __future__ import annotations

from typing import Any

JSON = "application/json"


def json_response(body: Any, status: int = 200, **headers: str) -> tuple[Any, int, dict[str, str]]:
    return (
        body,
        status,
        {"Content-Type": JSON, **{k.replace("_", "-"): v for k, v in headers.items()}},
    )
