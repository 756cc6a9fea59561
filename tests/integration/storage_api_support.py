"""What the storage API tests share: VOs made in a gateway's store as its operator would
(the VO backend of that state folder), HTTP helpers."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from gateway.config import load_settings
from gateway.runtime import load_backend, open_database


def make_vos(state_dir: str, vos: dict[str, Iterable[str]]) -> None:
    """Create each VO with its managers in the SQL VO backend of ``state_dir``."""
    settings = load_settings(None, state_dir=state_dir)
    db = open_database(settings)
    backend = load_backend(settings, db, "vo")
    try:
        for name, managers in vos.items():
            backend.create_vo(name, creator="operator", managers=list(managers))
    finally:
        backend.close()
        db.dispose()


def registered(state_dir: str, vo: str) -> list[tuple[str, str, str]]:
    """(kind, id, owner) of what is registered into ``vo``."""
    settings = load_settings(None, state_dir=state_dir)
    db = open_database(settings)
    backend = load_backend(settings, db, "vo")
    try:
        return [(r["kind"], r["id"], r["owner"]) for r in backend.list_resources(vo)]
    finally:
        backend.close()
        db.dispose()


def detail(response: Any, status: int) -> str:
    """The problem document's detail, after checking status and media type."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"] == "application/problem+json", response.headers
    return response.json()["detail"]
