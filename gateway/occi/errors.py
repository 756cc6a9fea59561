"""The OCCI front end's one error type: an HTTP status and a reason a person can act on."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from backends.contracts.interfaces import (
    BackendError,
    BackendUnavailable,
    InvalidSpec,
    InvalidState,
    NotSupported,
    UnknownResource,
)


class OCCIError(Exception):
    def __init__(self, status: int, message: str, **headers: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = {k.replace("_", "-"): v for k, v in headers.items()}


def bad_request(message: str) -> OCCIError:
    return OCCIError(400, message)


def not_found(what: str) -> OCCIError:
    return OCCIError(404, f"{what} does not exist here (or you may not see it)")


@contextmanager
def backend_errors(doing: str) -> Iterator[None]:
    """Backend exceptions as the HTTP statuses the issue names: 404, 400, 409, 503, 501, 502."""
    try:
        yield
    except UnknownResource as exc:
        raise OCCIError(404, f"{doing}: {exc}") from exc
    except InvalidSpec as exc:  # the client asked for something that cannot be built
        raise OCCIError(400, f"{doing}: {exc}") from exc
    except InvalidState as exc:
        raise OCCIError(409, f"{doing}: {exc}") from exc
    except BackendUnavailable as exc:  # the backend's message says why (host down, no room)
        raise OCCIError(503, f"{doing}: {exc}", Retry_After="30") from exc
    except NotSupported as exc:
        raise OCCIError(501, f"{doing}: {exc}") from exc
    except BackendError as exc:
        raise OCCIError(502, f"{doing}: the hypervisor refused: {exc}") from exc
