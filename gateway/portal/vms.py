"""The caller's virtual machines, for the portal page, and Stop.

Listed from the OCCI front end's ownership records (the portal shows what OCCI clients
created), with the state the hypervisor reports now; Stop goes through the OCCI
service's own action path, so the VO policy and the backend see exactly what an OCCI
``?action=stop`` would do.
"""

from __future__ import annotations

from dataclasses import dataclass

from backends.contracts.interfaces import BackendError
from backends.contracts.model import Principal
from gateway.occi import infrastructure as infra
from gateway.occi import records
from gateway.occi.entity import Document
from gateway.occi.errors import OCCIError
from gateway.runtime import Runtime

SHOWN = 50


@dataclass(frozen=True)
class PortalVM:
    id: str
    title: str
    state: str  # an OCCI compute state (backends.contracts.model.VM_STATES)
    state_message: str = ""


class StopRefused(Exception):
    """Stop was not done; ``status`` is the HTTP status the OCCI front end gave."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def vms_of(runtime: Runtime, principal: Principal) -> list[PortalVM]:
    """The computes ``principal`` owns, newest first, with the hypervisor's state."""
    mine = records.of_kinds(runtime.db, [infra.COMPUTE.identifier], owner=principal.name)
    mine = list(reversed(mine))[:SHOWN]
    try:
        facts = runtime.vm.describe([r.id for r in mine]) if mine else {}
        unreachable = ""
    except BackendError as exc:  # the page still lists them, saying why states are missing
        facts, unreachable = {}, f"state unknown: {exc}"
    return [
        PortalVM(
            r.id,
            r.title,
            facts[r.id].state if r.id in facts else "unknown",
            facts[r.id].state_message if r.id in facts else unreachable,
        )
        for r in mine
    ]


def stop(runtime: Runtime, principal: Principal, vm_id: str) -> None:
    """OCCI's compute stop (graceful), as the caller; :class:`StopRefused` otherwise."""
    try:
        runtime.occi.act(principal, infra.COMPUTE, vm_id, infra.STOP, Document())
    except OCCIError as exc:
        raise StopRefused(exc.status, exc.message) from exc
