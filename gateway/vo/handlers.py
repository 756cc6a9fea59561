"""Handlers of openapi/vo.yaml. Each asks the VO backend's decide() whether the caller may
act (so every management action is a recorded decision too), then calls one backend
method; backend refusals become problem documents (400/403/404/409)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol

from backends.contracts.interfaces import (
    BackendError,
    InvalidRequest,
    InvalidState,
    NotSupported,
    PermissionDenied,
    UnknownResource,
    VOAdministration,
)
from backends.contracts.model import Principal, Resource
from gateway import runtime
from gateway.auth.memberships import VO_TOKEN_MECHANISM
from gateway.auth.security import current_principal
from gateway.auth.tokens import TokenError
from gateway.responses import json_response
from gateway.storage import access, ownership

PROBLEM = "application/problem+json"
_STATUS: dict[type[BackendError], tuple[int, str]] = {
    InvalidRequest: (400, "Bad Request"),
    PermissionDenied: (403, "Forbidden"),
    UnknownResource: (404, "Not Found"),
    InvalidState: (409, "Conflict"),
}


def problem(status: int, title: str, detail: str) -> tuple[dict, int, dict]:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    return body, status, {"Content-Type": PROBLEM}


def vo_errors(handler: Callable[..., Any]) -> Callable[..., Any]:
    """Backend refusals → their problem document, never a 500."""

    @functools.wraps(handler)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return handler(*args, **kwargs)
        except (InvalidRequest, PermissionDenied, UnknownResource, InvalidState) as exc:
            status, title = next(
                (v for k, v in _STATUS.items() if isinstance(exc, k)), (400, "Bad Request")
            )
            return problem(status, title, str(exc))

    return wrapper


class _VOBackend(VOAdministration, Protocol):
    def decide(self, principal: Principal, action: str, resource: Resource) -> Any: ...
    def account_for(self, principal: Principal, vo: str = "", role: str = "") -> Any: ...


def _backend() -> _VOBackend:
    backend = runtime.current().backends.get("vo")
    if not isinstance(backend, VOAdministration):
        raise InvalidRequest(
            "the configured VO backend does not manage VOs (backends.vo = 'sql' does)"
        )
    return backend  # type: ignore[return-value]


def _require(principal: Principal, action: str, resource: Resource) -> None:
    decision = _backend().decide(principal, action, resource)
    if not decision.permitted:
        raise PermissionDenied(decision.reason)


def _manage(vo: str) -> Principal:
    """The caller, if they may manage ``vo`` (its managers, site admins)."""
    principal = current_principal()
    _require(principal, "manage", Resource("vo", vo))
    return principal


def _admin(action: str) -> Principal:
    principal = current_principal()
    if not principal.site_admin:
        _backend().decide(principal, action, Resource("vo"))  # recorded, and denied
        raise PermissionDenied(f"only a site admin may {action} VOs ({principal.name} is not)")
    return principal


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def _ok(body: Any, status: int = 200, **headers: str) -> tuple[Any, int, dict]:
    return json_response(_jsonable(body), status, **headers)


def _no_content() -> tuple[str, int, dict]:
    return "", 204, {}


def _when(text: str | None, what: str) -> datetime | None:
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError as exc:
        raise InvalidRequest(f"{what} {text!r} is not an ISO 8601 date-time") from exc
    if value.tzinfo is None:
        raise InvalidRequest(f"{what} {text!r} needs a time zone (e.g. 'Z' or '+01:00')")
    return value.astimezone(UTC)


# -- VOs -------------------------------------------------------------------------------
@vo_errors
def list_vos() -> Any:
    return _ok(_backend().list_vos())


@vo_errors
def create_vo(body: dict) -> Any:
    principal = _admin("create")
    created = _backend().create_vo(
        body["name"],
        description=body.get("description", ""),
        creator=principal.name,
        managers=body.get("managers", []),
    )
    return _ok(created, 201)


@vo_errors
def get_vo(vo: str) -> Any:
    return _ok(_backend().get_vo(vo))


@vo_errors
def delete_vo(vo: str) -> Any:
    _admin("delete")
    _backend().delete_vo(vo)
    return _no_content()


# -- groups, roles, managers -------------------------------------------------------------
@vo_errors
def list_groups(vo: str) -> Any:
    return _ok(_backend().get_vo(vo)["groups"])


@vo_errors
def add_group(vo: str, body: dict) -> Any:
    _manage(vo)
    return _ok({"path": _backend().add_group(vo, body["path"], body.get("description", ""))}, 201)


@vo_errors
def remove_group(vo: str, path: str) -> Any:
    _manage(vo)
    _backend().remove_group(vo, path)
    return _no_content()


@vo_errors
def list_roles(vo: str) -> Any:
    return _ok(_backend().get_vo(vo)["roles"])


@vo_errors
def add_role(vo: str, body: dict) -> Any:
    _manage(vo)
    return _ok({"name": _backend().add_role(vo, body["name"], body.get("description", ""))}, 201)


@vo_errors
def remove_role(vo: str, role: str) -> Any:
    _manage(vo)
    _backend().remove_role(vo, role)
    return _no_content()


@vo_errors
def list_managers(vo: str) -> Any:
    return _ok(_backend().get_vo(vo)["managers"])


@vo_errors
def add_manager(vo: str, principal: str) -> Any:
    _manage(vo)
    _backend().add_manager(vo, principal)
    return _no_content()


@vo_errors
def remove_manager(vo: str, principal: str) -> Any:
    _manage(vo)
    _backend().remove_manager(vo, principal)
    return _no_content()


# -- members ---------------------------------------------------------------------------
def _may_manage(principal: Principal, vo: str) -> bool:
    return _backend().decide(principal, "manage", Resource("vo", vo)).permitted


@vo_errors
def list_members(vo: str, status: str | None = None) -> Any:
    _manage(vo)
    return _ok(_backend().list_members(vo, status))


@vo_errors
def add_member(vo: str, body: dict) -> Any:
    caller = current_principal()
    who = body.get("principal") or caller.name
    backend = _backend()
    if _may_manage(caller, vo):
        status = "active"
    elif (
        who == caller.name
        and not body.get("roles")
        and caller.authenticated_by != (VO_TOKEN_MECHANISM)
    ):
        status = "requested"  # asking to join; a manager approves
    else:
        raise PermissionDenied(
            f"{caller.name} does not manage VO {vo}: one may only ask to join, for oneself, "
            "without roles"
        )
    created = backend.add_member(
        vo,
        who,
        group=body.get("group", ""),
        roles=body.get("roles", []),
        expires_at=_when(body.get("expires_at"), "expires_at"),
        status=status,
        by=caller.name,
        comment=body.get("comment", ""),
    )
    return _ok(created, 201)


@vo_errors
def get_member(vo: str, principal: str) -> Any:
    caller = current_principal()
    if caller.name != principal:
        _manage(vo)
    return _ok(_backend().member(vo, principal))


@vo_errors
def update_member(vo: str, principal: str, body: dict, group: str = "") -> Any:
    caller = _manage(vo)
    changes: dict[str, Any] = {"status": body.get("status"), "roles": body.get("roles")}
    if "expires_at" in body:
        if body["expires_at"] is None:
            changes["clear_expiry"] = True
        else:
            changes["expires_at"] = _when(body["expires_at"], "expires_at")
    return _ok(_backend().update_member(vo, principal, group=group, by=caller.name, **changes))


@vo_errors
def remove_member(vo: str, principal: str, group: str | None = None) -> Any:
    caller = current_principal()
    if caller.name != principal or caller.authenticated_by == VO_TOKEN_MECHANISM:
        _manage(vo)
    _backend().remove_member(vo, principal, group)
    return _no_content()


# -- registered resources ----------------------------------------------------------------
@vo_errors
def list_resources(vo: str) -> Any:
    """What is offered to ``vo`` and by whom: for its members, managers and site admins."""
    caller = current_principal()
    if not any(m.vo == vo for m in caller.memberships) and not _may_manage(caller, vo):
        raise PermissionDenied(
            f"{caller.name} may not list what is offered to VO {vo}: only its members, "
            "its managers and site admins may"
        )
    return _ok(_backend().list_resources(vo))


def _check_backed(caller: Principal, vo: str, kind: str, resource_id: str) -> None:
    """A resource whose backend records who owns it is registered only as that backend
    says: a volume exists, belongs to ``vo`` (its storage backend records its VO) and the
    caller may manage that VO's volumes; a registration never makes ownership."""
    if kind != ownership.KIND:
        return
    try:
        belongs = runtime.current().storage.volume_vo(resource_id)
    except UnknownResource:
        raise UnknownResource(
            f"no volume {resource_id!r}: only an existing volume can be registered "
            "(POST /api/v1/volumes makes one and registers it into its VO)"
        ) from None
    if belongs != vo:
        raise PermissionDenied(
            f"volume {resource_id} belongs to VO {belongs}, not {vo}: a volume is "
            "registered only into the VO its storage backend records"
        )
    access.require_management(_backend(), caller, "create", resource_id, vo)


@vo_errors
def register_resource(vo: str, body: dict) -> Any:
    caller = current_principal()
    owner = body.get("owner") or caller.name
    if owner != caller.name and not caller.site_admin:
        raise PermissionDenied(f"only {owner} (or a site admin) may offer {owner}'s resources")
    _require(caller, "register", Resource(body["kind"], body["id"], owner=owner, vo=vo))
    _check_backed(caller, vo, body["kind"], body["id"])
    return _ok(_backend().register_resource(vo, body["kind"], body["id"], owner), 201)


@vo_errors
def unregister_resource(vo: str, kind: str, id: str) -> Any:
    caller = current_principal()
    backend = _backend()
    if backend.resource_owner(kind, id) != caller.name:
        _manage(vo)
    backend.unregister_resource(vo, kind, id)
    return _no_content()


# -- policies --------------------------------------------------------------------------
def _policy_access(level: str, scope: str, *, write: bool) -> Principal:
    caller = current_principal()
    if level == "vo":
        if write or not any(m.vo == scope for m in caller.memberships):
            return _manage(scope)
        return caller
    if caller.name != scope and not caller.site_admin:
        raise PermissionDenied(
            f"the {level} policy of {scope} is {scope}'s own (or a site admin's)"
        )
    if write and caller.authenticated_by == VO_TOKEN_MECHANISM and level == "user":
        raise PermissionDenied("a delegated VO token cannot change the user policy that narrows it")
    return caller


@vo_errors
def get_policy(level: str, scope: str) -> Any:
    _policy_access(level, scope, write=False)
    return _ok(_backend().get_policy(level, scope))


@vo_errors
def put_policy(level: str, scope: str, body: dict) -> Any:
    caller = _policy_access(level, scope, write=True)
    stored = _backend().put_policy(
        level, scope, body["document"], author=caller.name, comment=body.get("comment", "")
    )
    return _ok(stored, 201)


@vo_errors
def policy_history(level: str, scope: str) -> Any:
    _policy_access(level, scope, write=False)
    return _ok(_backend().policy_history(level, scope))


@vo_errors
def get_policy_version(level: str, scope: str, version: int) -> Any:
    _policy_access(level, scope, write=False)
    return _ok(_backend().get_policy(level, scope, version))


# -- tokens, decisions, accounts ---------------------------------------------------------
@vo_errors
def issue_vo_token(body: dict | None = None) -> Any:
    body = body or {}
    caller = current_principal()
    rt = runtime.current()
    if rt.vo_tokens is None:
        raise InvalidRequest("VO tokens need the VO backend")
    if caller.authenticated_by == VO_TOKEN_MECHANISM and caller.attributes.get("iss") != (
        rt.tokens.issuer
    ):
        raise PermissionDenied("a VO token of another gateway cannot be exchanged for one of ours")
    memberships = caller.memberships
    wanted = body.get("vos")
    if wanted is not None:
        missing = sorted(set(wanted) - {m.vo for m in memberships})
        if missing:
            raise PermissionDenied(f"{caller.name} is not an active member of {', '.join(missing)}")
        memberships = tuple(m for m in memberships if m.vo in wanted)
    if not memberships:
        raise PermissionDenied(f"{caller.name} has no active VO membership to put in a token")
    not_after: float | None = None
    if caller.authenticated_by in ("bearer", VO_TOKEN_MECHANISM):
        not_after = caller.attributes.get("exp")
    expiry = _backend().membership_expiry(caller.name)
    if expiry is not None:
        not_after = min(not_after or expiry.timestamp(), expiry.timestamp())
    try:
        token, expires_in, entitlements = rt.vo_tokens.issue(
            caller.name,
            memberships,
            audience=body.get("audience"),
            lifetime=body.get("lifetime"),
            not_after=not_after,
            name=caller.display_name,
        )
    except TokenError as exc:
        raise InvalidState(exc.reason) from exc
    return _ok(
        {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": expires_in,
            "entitlements": entitlements,
        },
        201,
        Cache_Control="no-store",
    )


@vo_errors
def revocations() -> Any:
    rt = runtime.current()
    window = rt.settings.vo.tokens.lifetime + rt.settings.auth.tokens.leeway + 60
    return _ok(
        {"issuer": rt.tokens.issuer, "window": window, "subjects": _backend().revocations(window)},
        Cache_Control="no-cache",
    )


@vo_errors
def explain_decision(body: dict) -> Any:
    raw = body["resource"]
    resource = Resource(raw["kind"], raw.get("id", ""), raw.get("owner", ""), raw.get("vo", ""))
    decision = _backend().decide(current_principal(), body["action"], resource)
    return _ok({"decision": decision.decision.value, "reason": decision.reason})


@vo_errors
def my_account(vo: str = "", role: str = "") -> Any:
    try:
        account = _backend().account_for(current_principal(), vo, role)
    except NotSupported as exc:  # no pool on this site: work runs as the default account
        return problem(404, "Not Found", str(exc))
    return _ok(
        {"username": account.username, "uid": account.uid, "gid": account.gid, "home": account.home}
    )


# -- accounting ------------------------------------------------------------------------
@vo_errors
def vo_usage(vo: str, since: str | None = None, until: str | None = None) -> Any:
    _manage(vo)
    lines = _backend().usage(vo, _when(since, "since"), _when(until, "until"))
    return _ok(
        [
            {
                "category": u.category,
                "action": u.action,
                "unit": u.unit,
                "count": u.count,
                "quantity": u.quantity,
            }
            for u in lines
        ]
    )


@vo_errors
def vo_audit(vo: str, limit: int = 100, before: int | None = None) -> Any:
    _manage(vo)
    backend = _backend()
    backend.get_vo(vo)
    rows = backend.audit_records(vo=vo, limit=limit, before_id=before)
    return _ok(
        [
            {
                "id": r.id,
                "at": r.at,
                "category": r.category,
                "principal": r.principal,
                "vo": r.vo,
                "action": r.action,
                "resource_kind": r.resource_kind,
                "resource_id": r.resource_id,
                "outcome": r.outcome,
                "reason": r.reason,
                "quantity": r.quantity,
                "unit": r.unit,
            }
            for r in rows
        ]
    )
