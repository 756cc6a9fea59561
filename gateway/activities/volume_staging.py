"""DataStaging from and to storage volumes: a glusterfs:/xtreemfs: URL in a job is
resolved against the storage backend when the activity is created, while the caller is
known, so that every refusal is a fault on CreateActivity rather than a job failing later:

* the URL's scheme must be the one the configured storage backend serves
  (:class:`NotSupported`; BES: UnsupportedFeature naming jsdl:URI);
* the volume must exist (:class:`InvalidRequest`; BES: InvalidRequestMessage);
* VO policy must let the caller ``read`` the volume for a stage-in and ``write`` it for a
  stage-out (the front end's own refusal, through ``Caller.authorize``).

The refusals are the contracts' neutral errors, so that every job front end (BES, TES)
answers them in its own protocol.

The resolved spec carries the folder where the volume is mounted on this host and the
room its quota leaves; the transfer itself runs in the activity's supervisor as the
mapped account, so the file system's own permissions apply as well.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Protocol

from backends.contracts.interfaces import (
    BackendError,
    BackendUnavailable,
    InvalidRequest,
    NotSupported,
    StorageBackend,
)
from backends.contracts.model import JobSpec, Resource, StagingSpec
from gateway.jsdl.staging import VOLUME_SCHEMES

if TYPE_CHECKING:
    from gateway.runtime import Runtime


class Caller(Protocol):
    """A job front end's request: the runtime, and its own way to refuse an action."""

    runtime: Runtime

    def authorize(self, action: str, resource: Resource) -> None: ...


def _scheme(url: str) -> str:
    return url.partition(":")[0].lower()


def bind_volumes(call: Caller, job: JobSpec) -> JobSpec:
    """``job`` with every volume URL's StagingSpec resolved (unchanged without any)."""
    if not any(
        _scheme(url) in VOLUME_SCHEMES
        for s in (*job.stage_in, *job.stage_out)
        for url in (s.source, s.target)
    ):
        return job
    storage = call.runtime.storage
    stage_in = tuple(_bind(call, storage, s, s.source, "read") for s in job.stage_in)
    stage_out = tuple(_bind(call, storage, s, s.target, "write") for s in job.stage_out)
    return dataclasses.replace(job, stage_in=stage_in, stage_out=stage_out)


def _bind(
    call: Caller, storage: StorageBackend, spec: StagingSpec, url: str, action: str
) -> StagingSpec:
    scheme = _scheme(url)
    if scheme not in VOLUME_SCHEMES:
        return spec
    if scheme != storage.scheme:
        raise NotSupported(
            f"{url} names a {scheme} volume; this gateway's storage is "
            f"{storage.name} ({storage.scheme}: URLs)"
        )
    try:
        name, _ = storage.resolve(url)
        volume = storage.volume(name)
    except BackendUnavailable as exc:
        raise BackendUnavailable(f"the storage backend cannot be reached: {exc}") from exc
    except BackendError as exc:  # an unknown volume, a bad name
        raise InvalidRequest(f"{url}: {exc}") from exc
    call.authorize(action, Resource(kind="volume", id=volume.name, vo=volume.vo))
    free = None if volume.quota_bytes is None else max(0, volume.quota_bytes - volume.used_bytes)
    root = storage.local_root(volume.name)
    return dataclasses.replace(spec, local_root=str(root), free_bytes=free)
