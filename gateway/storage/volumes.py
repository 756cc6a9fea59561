"""Handlers of the volume operations of openapi/storage.yaml: list, create, get, change
the quota, delete. Authorisation: gateway.storage.access; the VO registration that goes
with making and deleting a volume: gateway.storage.ownership."""

from __future__ import annotations

from typing import Any

from backends.interfaces import InvalidRequest, InvalidState, StorageBackend
from backends.model import Volume
from gateway import runtime
from gateway.auth.security import current_principal
from gateway.responses import json_response
from gateway.storage import access, ownership
from gateway.storage.problems import storage_errors


def storage() -> StorageBackend:
    return runtime.current().backends["storage"]


def vo_backend() -> Any:
    return runtime.current().backends["vo"]


def render(found: Volume, backend: StorageBackend, owner: str | None = None) -> dict[str, Any]:
    return {
        "name": found.name,
        "vo": found.vo,
        "system": backend.name,
        "url": found.url,
        "quota_bytes": found.quota_bytes,
        "used_bytes": found.used_bytes,
        "owner": ownership.owner(vo_backend(), found.name) if owner is None else owner,
    }


def readable(name: str) -> Volume:
    """The volume with its usage, if the caller may read it (404 for a missing one, 403
    otherwise)."""
    found = storage().volume(name)
    access.require(vo_backend(), current_principal(), "read", found.name, found.vo)
    return found


def may_read(name: str) -> str:
    """``name``, if the caller may read that volume; its usage is not measured."""
    access.require(vo_backend(), current_principal(), "read", name, storage().volume_vo(name))
    return name


@storage_errors
def list_volumes(vo: str | None = None) -> Any:
    backend, principal, vos = storage(), current_principal(), vo_backend()
    seen = [v for v in backend.list_volumes(vo) if access.may(vos, principal, "read", v)]
    return json_response([render(v, backend) for v in seen])


@storage_errors
def create_volume(body: dict[str, Any]) -> Any:
    backend, principal, vos = storage(), current_principal(), vo_backend()
    system = body.get("system")
    if system and system != backend.name:
        raise InvalidRequest(
            f"system {system!r}: this gateway's storage system is {backend.name!r} "
            "(backends.storage); no other is configured"
        )
    name, vo = body["name"], body["vo"]
    access.require_management(vos, principal, "create", name, vo)
    made = ownership.create(backend, vos, name, vo, body.get("quota_bytes"), principal.name)
    return json_response(render(made, backend), 201, Location=f"/api/v1/volumes/{made.name}")


@storage_errors
def get_volume(volume: str) -> Any:
    return json_response(render(readable(volume), storage()))


@storage_errors
def change_volume(volume: str, body: dict[str, Any]) -> Any:
    backend = storage()
    found = backend.volume(volume)
    access.require_management(vo_backend(), current_principal(), "resize", found.name, found.vo)
    return json_response(render(backend.resize_volume(found.name, body["quota_bytes"]), backend))


@storage_errors
def delete_volume(volume: str, force: bool = False) -> Any:
    backend = storage()
    found = backend.volume(volume)
    access.require_management(vo_backend(), current_principal(), "delete", found.name, found.vo)
    if not force:
        entries = backend.list_files(found.name)
        if entries:
            raise InvalidState(
                f"volume {found.name!r} holds {len(entries)} entries ({found.used_bytes} "
                "bytes): delete them first, or ask DELETE …?force=true to delete the "
                "volume with everything on it"
            )
    ownership.delete(backend, vo_backend(), found)
    return "", 204, {}
