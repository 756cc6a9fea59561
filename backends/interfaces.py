"""The contracts between the gateway and the backends that do the work.

Each backend kind is an abstract class; implementations are registered as entry points
(``xtreemgate.backends``, named ``<kind>.<name>``) and built with the gateway's settings
and a :class:`BackendContext`. Methods a thin implementation does not support yet raise
:class:`NotSupported`, which front ends turn into the standard's "unsupported" answer.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from backends.model import (
    HealthReport,
    JobSpec,
    JobStatus,
    LocalAccount,
    PolicyDecision,
    Principal,
    Resource,
    VMSpec,
    Volume,
)


class BackendError(Exception):
    """A backend could not do what was asked; the message says why, for a person."""


class BackendUnavailable(BackendError):
    """The infrastructure behind a backend cannot be reached (front ends answer 503)."""


class NotSupported(BackendError):
    """This backend does not implement the operation."""


@dataclass(frozen=True)
class BackendContext:
    """What every backend may use: the SQL store's engine and its own state folder."""

    engine: Any  # sqlalchemy.Engine
    state_dir: Path
    options: Any  # the backend kind's settings section (pydantic model) or None


class Backend(abc.ABC):
    """Common to all backends: a kind, a name, a health check, a clean shutdown."""

    kind: ClassVar[str]
    name: ClassVar[str]

    def __init__(self, context: BackendContext) -> None:
        self.context = context

    @abc.abstractmethod
    def health(self) -> HealthReport:
        """Try the infrastructure for real (cheaply) and say whether it works."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections and threads."""


class ExecutionBackend(Backend):
    kind = "execution"

    def submit(self, activity_id: str, job: JobSpec, account: LocalAccount | None) -> str:
        """Start a job; returns the backend's own id for it."""
        raise NotSupported(f"{self.name} cannot submit jobs yet")

    def status(self, backend_ids: Sequence[str]) -> dict[str, JobStatus]:
        """Statuses of many jobs in one call (one poll for all, not one per job)."""
        raise NotSupported(f"{self.name} cannot report job status yet")

    def terminate(self, backend_id: str) -> None:
        raise NotSupported(f"{self.name} cannot terminate jobs yet")

    def resources(self) -> dict[str, Any]:
        """What the execution resource offers (CPUs, memory, OS, architecture)."""
        raise NotSupported(f"{self.name} cannot describe its resources yet")


class VMBackend(Backend):
    kind = "vm"

    def create(self, vm_id: str, spec: VMSpec) -> None:
        raise NotSupported(f"{self.name} cannot create VMs yet")

    def state(self, vm_ids: Iterable[str]) -> dict[str, str]:
        raise NotSupported(f"{self.name} cannot report VM state yet")

    def act(self, vm_id: str, action: str) -> None:
        raise NotSupported(f"{self.name} cannot act on VMs yet")

    def delete(self, vm_id: str) -> None:
        raise NotSupported(f"{self.name} cannot delete VMs yet")


class StorageBackend(Backend):
    kind = "storage"

    def create_volume(self, name: str, vo: str, quota_bytes: int | None) -> Volume:
        raise NotSupported(f"{self.name} cannot create volumes yet")

    def list_volumes(self, vo: str | None = None) -> list[Volume]:
        raise NotSupported(f"{self.name} cannot list volumes yet")

    def delete_volume(self, name: str) -> None:
        raise NotSupported(f"{self.name} cannot delete volumes yet")


class VOBackend(Backend):
    kind = "vo"

    @abc.abstractmethod
    def decide(self, principal: Principal, action: str, resource: Resource) -> PolicyDecision:
        """May ``principal`` do ``action`` on ``resource``? Default deny, always a reason."""

    def account_for(self, principal: Principal, vo: str = "", role: str = "") -> LocalAccount:
        """The local POSIX account the principal's work runs as."""
        raise NotSupported(f"{self.name} cannot map accounts yet")


BACKEND_KINDS: dict[str, type[Backend]] = {
    "execution": ExecutionBackend,
    "vm": VMBackend,
    "storage": StorageBackend,
    "vo": VOBackend,
}
