"""Handlers of openapi/storage.yaml: volumes (list, create, get, change the quota, delete)
and their files (list a folder, stat, download with one Range, streamed upload, delete).

Authorisation is the rule of ``gateway.storage.access``, put to the VO policy; the VO
registration that goes with making and deleting a volume is ``gateway.storage.ownership``;
backend refusals become problem documents (``gateway.storage.problems``).

Neither direction holds a file in memory: a download is a generator over the backend's
read stream in CHUNK pieces; an upload reads the request stream CHUNK bytes at a time
into the backend's write stream, which enforces the quota and places the file only when
every byte arrived (``StorageBackend.open_write``). The file handlers take no ``body``
argument on purpose: connexion reads the whole body only for an operation that asks
for it.
"""

from __future__ import annotations

import email.utils
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, BinaryIO

import flask

from backends.contracts.interfaces import (
    InvalidRequest,
    InvalidState,
    QuotaExceeded,
    StorageBackend,
    UnknownResource,
    VOBackend,
)
from backends.contracts.model import FileInfo, Volume
from gateway import runtime
from gateway.auth.security import current_principal
from gateway.responses import json_response
from gateway.storage import access, ownership
from gateway.storage.problems import HTTPProblem, storage_errors
from gateway.storage.ranges import Unsatisfiable, byte_range


def storage() -> StorageBackend:
    return runtime.current().storage


def vo_backend() -> VOBackend:
    return runtime.current().vo


def render_volume(
    found: Volume, backend: StorageBackend, owner: str | None = None
) -> dict[str, Any]:
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
    return json_response([render_volume(v, backend) for v in seen])


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
    return json_response(render_volume(made, backend), 201, Location=f"/api/v1/volumes/{made.name}")


@storage_errors
def get_volume(volume: str) -> Any:
    return json_response(render_volume(readable(volume), storage()))


@storage_errors
def change_volume(volume: str, body: dict[str, Any]) -> Any:
    backend = storage()
    found = backend.volume(volume)
    access.require_management(vo_backend(), current_principal(), "resize", found.name, found.vo)
    return json_response(
        render_volume(backend.resize_volume(found.name, body["quota_bytes"]), backend)
    )


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


CHUNK = 1024 * 1024


def render_file(info: FileInfo, backend: StorageBackend, volume: str) -> dict[str, Any]:
    return {
        "path": info.path,
        "type": "folder" if info.is_dir else "file",
        "size": info.size,
        "modified": datetime.fromtimestamp(info.modified, UTC).isoformat(),
        "url": backend.url(volume, info.path),
    }


def _writable(name: str) -> str:
    """``name``, if the caller may write that volume."""
    access.require(vo_backend(), current_principal(), "write", name, storage().volume_vo(name))
    return name


def _listing(backend: StorageBackend, volume: str, path: str) -> Any:
    return json_response(
        [render_file(i, backend, volume) for i in backend.list_files(volume, path)]
    )


def _stat_headers(info: FileInfo) -> dict[str, str]:
    return {
        "X-Entry-Type": "folder" if info.is_dir else "file",
        "Last-Modified": email.utils.formatdate(info.modified, usegmt=True),
        **({} if info.is_dir else {"Content-Length": str(info.size), "Accept-Ranges": "bytes"}),
    }


@storage_errors
def list_root(volume: str) -> Any:
    return _listing(storage(), may_read(volume), "")


def _head(info: FileInfo) -> flask.Response:
    kind = "application/json" if info.is_dir else "application/octet-stream"
    return flask.Response(status=200, headers=_stat_headers(info), content_type=kind)


@storage_errors
def stat_file(volume: str, path: str) -> Any:
    """The HEAD operation's handler. Flask routes a HEAD to the GET rule of the same path
    (which answers it in get_file); connexion still checks the HEAD operation's security
    and parameters, and a framework that routes HEAD on its own lands here."""
    return _head(storage().stat(may_read(volume), path))


@storage_errors
def get_file(volume: str, path: str) -> Any:
    name = may_read(volume)
    backend = storage()
    info = backend.stat(name, path)
    if flask.request.method == "HEAD":  # stat: the headers a GET would send, no body
        return _head(info)
    if info.is_dir:
        return _listing(backend, name, path)
    try:
        wanted = byte_range(flask.request.headers.get("Range"), info.size)
    except Unsatisfiable as exc:
        raise HTTPProblem(
            416, "Range Not Satisfiable", str(exc), Content_Range=f"bytes */{info.size}"
        ) from None
    first, last = wanted if wanted is not None else (0, info.size - 1)
    source = backend.open_read(name, path)
    headers = _stat_headers(info)
    headers["Content-Length"] = str(max(0, last - first + 1))
    if wanted is not None:
        headers["Content-Range"] = f"bytes {first}-{last}/{info.size}"
    return flask.Response(
        _chunks(source, first, last),
        status=206 if wanted is not None else 200,
        headers=headers,
        mimetype="application/octet-stream",
        direct_passthrough=True,
    )


def _chunks(source: BinaryIO, first: int, last: int) -> Iterator[bytes]:
    """Bytes first..last of ``source`` in CHUNK pieces; closes it however it ends."""
    try:
        if first:
            source.seek(first)
        left = last - first + 1
        while left > 0:
            data = source.read(min(CHUNK, left))
            if not data:
                break  # the file shrank meanwhile: the client sees a short body
            left -= len(data)
            yield data
    finally:
        source.close()


@storage_errors
def put_file(volume: str, path: str) -> Any:
    backend = storage()
    found = backend.volume(_writable(volume))  # with its usage, for the quota
    length = flask.request.content_length
    if length is None:
        raise HTTPProblem(
            411,
            "Length Required",
            "send Content-Length with the upload (a chunked body cannot be told apart "
            "from a broken connection, and half a file is never stored)",
        )
    try:
        before = backend.stat(found.name, path)
    except UnknownResource:
        before = None
    replaced = before.size if before is not None and not before.is_dir else 0
    if found.quota_bytes is not None:
        free = found.quota_bytes - found.used_bytes + replaced
        if length > free:
            raise QuotaExceeded(
                f"writing {path!r} on volume {found.name!r}: {length} bytes do not fit in "
                f"the volume's quota ({max(0, free)} bytes free of {found.quota_bytes})"
            )
    keep = flask.request.headers.get("If-None-Match", "").strip() == "*"
    try:
        # the declared length is reserved in the volume's quota ledger before the first
        # byte, so concurrent uploads cannot overrun the quota together
        with backend.open_write(found.name, path, overwrite=not keep, size=length) as out:
            _pump(flask.request.environ["wsgi.input"], out, length, path)
    except InvalidState as exc:
        if keep:
            raise HTTPProblem(412, "Precondition Failed", str(exc)) from None
        raise
    info = backend.stat(found.name, path)
    body = render_file(info, backend, found.name)
    if before is None:
        location = f"/api/v1/volumes/{found.name}/files/{info.path}"
        return json_response(body, 201, Location=location)
    return json_response(body)


def _pump(stream: BinaryIO, out: BinaryIO, length: int, path: str) -> None:
    """``length`` bytes from the request into ``out``, CHUNK at a time. ``stream`` is the
    WSGI input itself (the ASGI server frames the body by Content-Length; werkzeug's
    LimitedStream on top of it only adds a copy): it ends early only when the client
    went away, which leaves ``left`` above 0 and the upload refused."""
    left = length
    while left > 0:
        data = stream.read(min(CHUNK, left))
        if not data:
            break
        out.write(data)
        left -= len(data)
    if left:
        raise InvalidRequest(
            f"the upload of {path!r} ended after {length - left} of {length} bytes: "
            "nothing was stored"
        )


@storage_errors
def delete_file(volume: str, path: str, recursive: bool = False) -> Any:
    name = _writable(volume)
    backend = storage()
    info = backend.stat(name, path)
    if info.is_dir and not recursive and backend.list_files(name, path):
        raise InvalidState(
            f"folder {info.path!r} on volume {name!r} is not empty: delete its "
            "entries first, or ask DELETE …?recursive=true"
        )
    backend.delete(name, path)
    return "", 204, {}
