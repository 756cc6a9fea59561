"""A volume's place in its VO: made and registered together, deleted and withdrawn
together (the REST API and ``xtreemgate volume`` both go through here).

Registration uses the VO backend's resource registry (``register_resource``, the same
records ``GET /api/v1/vos/{vo}/resources`` lists and the policy's owner rule reads): the
volume is offered to its VO by its owner, so the owner's policy applies to it and BES
staging finds it offered to the VO's members. A VO backend that keeps no VOs of its own
(no :class:`VOAdministration`) registers nothing, and the volume is still its VO's by
the volume's own record.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from backends.contracts.interfaces import (
    BackendError,
    InvalidRequest,
    StorageBackend,
    UnknownResource,
    VOAdministration,
)
from backends.contracts.model import Volume

KIND = "volume"
log = logging.getLogger("xtreemgate.storage")


def registry(vo_backend: Any) -> VOAdministration | None:
    return vo_backend if isinstance(vo_backend, VOAdministration) else None


def check_vo(vo_backend: Any, vo: str) -> None:
    """InvalidRequest unless the VO backend knows ``vo`` (when it keeps VOs)."""
    vos = registry(vo_backend)
    if vos is None:
        return
    try:
        vos.get_vo(vo)
    except UnknownResource:
        raise InvalidRequest(
            f"no VO {vo!r}: a site admin creates it first (POST /api/v1/vos)"
        ) from None


def create(
    storage: StorageBackend,
    vo_backend: Any,
    name: str,
    vo: str,
    quota_bytes: int | None,
    owner: str,
) -> Volume:
    """Make the volume and register it into its VO with ``owner``; if the registration
    is refused the volume is removed again, so neither exists without the other."""
    check_vo(vo_backend, vo)
    made = storage.create_volume(name, vo, quota_bytes)
    vos = registry(vo_backend)
    if vos is not None:
        try:
            vos.register_resource(vo, KIND, name, owner)
        except BaseException:
            with contextlib.suppress(BackendError):
                storage.delete_volume(name)
            raise
    return made


def delete(storage: StorageBackend, vo_backend: Any, volume: Volume) -> None:
    """Delete the volume, then withdraw it from its VO (a registration already gone is
    fine: the VO may have been deleted meanwhile)."""
    storage.delete_volume(volume.name)
    vos = registry(vo_backend)
    if vos is not None:
        try:
            vos.unregister_resource(volume.vo, KIND, volume.name)
        except UnknownResource:
            pass
        except BackendError as exc:  # the volume is gone; a stale offer names nothing
            log.warning(
                "volume %s deleted but not withdrawn from VO %s: %s", volume.name, volume.vo, exc
            )


def owner(vo_backend: Any, name: str) -> str:
    """Who registered the volume ('' when nobody did or the backend keeps no owners)."""
    vos = registry(vo_backend)
    return vos.resource_owner(KIND, name) if vos is not None else ""
