"""What the VO backend refuses, by kind; each is also one of the neutral errors of
backends.contracts.interfaces, so that front ends answer 400/403/404/409 without knowing this
implementation."""

from __future__ import annotations

from backends.contracts.interfaces import (
    BackendError,
    InvalidRequest,
    InvalidState,
    NotSupported,
    PermissionDenied,
    UnknownResource,
)


class VOError(BackendError):
    """A VO operation was refused; the message says why, for a person."""


class Invalid(VOError, InvalidRequest):
    """The request itself is wrong (a bad name, a policy that fails its schema): 400."""


class Forbidden(VOError, PermissionDenied):
    """The caller may not do this (decide() said deny; the reason is the message): 403."""


class NotFound(VOError, UnknownResource):
    """No such VO, group, role, member, policy version or resource: 404."""


class Conflict(VOError, InvalidState):
    """It exists already, or the current state does not allow the change: 409."""


class PoolExhausted(VOError, InvalidState):
    """Every account of the pool is leased to someone whose work may still run: 409."""


class NoAccountPools(VOError, NotSupported):
    """The site configures no account pool at all and the principal has no account of
    their own: the backend maps nothing, and work runs as the execution backend's default
    account (``execution.default_account``), as it does for a user in no VO."""
