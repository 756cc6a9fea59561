"""Who may do what on a volume: the rule of openapi/storage.yaml, put to the VO policy.

Files are read and written by whoever the VO policy lets ``read``/``write`` the volume
(the resource ``volume <name>`` of its VO: the VO's members by default, its owner, site
admins). The VO is the storage backend's (``Volume.vo``, ``volume_vo``), never a
registration's: the policy counts only a registration into that VO (``standing_offer``
in backends/vo/policy.py), so its registrant is the owner, and a volume registered into
another VO gives that VO nothing. Making, resizing and deleting a volume is more: the VO's managers
(``manage`` on the VO, as the VO API asks it) and site admins may, and so may a member
holding the VO role :data:`STORAGE_ADMIN_ROLE` when the VO policy permits that action on
the volume too. The default VO policy permits members everything the VO holds, so
without the role check any member could delete the VO's data.
"""

from __future__ import annotations

from typing import Any

from backends.contracts.interfaces import PermissionDenied
from backends.contracts.model import Principal, Resource, Volume

STORAGE_ADMIN_ROLE = "storage-admin"
MANAGEMENT_ACTIONS = ("create", "resize", "delete")


def volume_resource(name: str, vo: str) -> Resource:
    """The resource BES staging authorises too (gateway/activities/volume_staging.py);
    ``vo`` is the one the storage backend records for the volume."""
    return Resource(kind="volume", id=name, vo=vo)


def may(vo_backend: Any, principal: Principal, action: str, volume: Volume) -> bool:
    """Whether the policy permits ``action`` (read | write) on the volume (recorded)."""
    return vo_backend.decide(principal, action, volume_resource(volume.name, volume.vo)).permitted


def require(vo_backend: Any, principal: Principal, action: str, name: str, vo: str) -> None:
    """PermissionDenied with the decision's reason unless ``action`` is permitted."""
    decision = vo_backend.decide(principal, action, volume_resource(name, vo))
    if not decision.permitted:
        raise PermissionDenied(decision.reason)


def require_management(
    vo_backend: Any, principal: Principal, action: str, name: str, vo: str
) -> None:
    """PermissionDenied unless the caller may ``action`` (create | resize | delete) the
    volume ``name`` of ``vo`` (the module docstring says who)."""
    assert action in MANAGEMENT_ACTIONS, action
    managing = vo_backend.decide(principal, "manage", Resource(kind="vo", id=vo))
    if managing.permitted:
        return
    if any(m.vo == vo and STORAGE_ADMIN_ROLE in m.roles for m in principal.memberships):
        require(vo_backend, principal, action, name, vo)
        return
    raise PermissionDenied(
        f"{principal.name} may not {action} volumes of VO {vo}: only its managers, its "
        f"members with the role {STORAGE_ADMIN_ROLE!r} and site admins may "
        f"({managing.reason})"
    )
