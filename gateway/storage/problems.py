"""Backend refusals as RFC 7807 problem documents: a client's mistake is never a 500."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

import flask

from backends.contracts.interfaces import (
    BackendError,
    BackendUnavailable,
    InvalidRequest,
    InvalidSpec,
    InvalidState,
    NotSupported,
    PermissionDenied,
    QuotaExceeded,
    UnknownResource,
)

PROBLEM = "application/problem+json"
log = logging.getLogger("xtreemgate.storage")

# The first class an error is an instance of decides (QuotaExceeded is an InvalidRequest).
STATUS: tuple[tuple[type[BackendError], int, str], ...] = (
    (QuotaExceeded, 507, "Insufficient Storage"),
    (PermissionDenied, 403, "Forbidden"),
    (UnknownResource, 404, "Not Found"),
    (InvalidState, 409, "Conflict"),
    (InvalidRequest, 400, "Bad Request"),
    (InvalidSpec, 400, "Bad Request"),
    (NotSupported, 501, "Not Implemented"),
    (BackendUnavailable, 503, "Service Unavailable"),
)


class HTTPProblem(Exception):
    """A refusal with its own HTTP status (412, 416) that no backend error names."""

    def __init__(self, status: int, title: str, detail: str, **headers: str) -> None:
        super().__init__(detail)
        self.status, self.title, self.detail, self.headers = status, title, detail, headers


def problem(status: int, title: str, detail: str, **headers: str) -> tuple[dict, int, dict]:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    named = {k.replace("_", "-"): v for k, v in headers.items()}
    return body, status, {"Content-Type": PROBLEM, **named}


def for_error(exc: BackendError) -> tuple[dict, int, dict]:
    for kind, status, title in STATUS:
        if isinstance(exc, kind):
            return problem(status, title, str(exc))
    log.warning("storage backend error: %s", exc)
    return problem(502, "Bad Gateway", f"the storage backend failed: {exc}")


def for_os_error(exc: OSError, method: str, volume: str, path: str) -> tuple[dict, int, dict]:
    """What the backend let through from the file system. A path through a file (a.txt/b)
    is the caller's mistake: 404 to read or delete, 409 to write. Anything else is the
    server's own trouble (500), said without the host's paths."""
    where = f"{path!r} on volume {volume!r}"
    if isinstance(exc, NotADirectoryError | FileExistsError):
        detail = f"{where}: a part of the path is a file, not a folder"
        return (
            problem(409, "Conflict", detail)
            if method == "PUT"
            else problem(404, "Not Found", detail)
        )
    if isinstance(exc, FileNotFoundError):
        return problem(404, "Not Found", f"no file {where}")
    log.error("storage: %s %s: %s", method, where, exc)
    return problem(500, "Internal Server Error", f"{where}: {exc.strerror or 'I/O error'}")


def storage_errors(handler: Callable[..., Any]) -> Callable[..., Any]:
    """Backend refusals, file-system errors and HTTPProblems → their problem document."""

    @functools.wraps(handler)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return handler(*args, **kwargs)
        except HTTPProblem as exc:
            return problem(exc.status, exc.title, exc.detail, **exc.headers)
        except BackendError as exc:
            return for_error(exc)
        except OSError as exc:
            method = flask.request.method
            return for_os_error(exc, method, kwargs.get("volume", ""), kwargs.get("path", ""))

    return wrapper
