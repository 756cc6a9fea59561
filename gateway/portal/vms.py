"""The caller's virtual machines, for the portal page.

A seam for the OCCI front end: until it is merged, no front end records who owns a VM,
so this lists nothing. At the OCCI merge, return the caller's compute resources here
(their records, with state from the VM backend's ``describe``); the page already renders
each one and will offer a Stop button beside it the way it offers Cancel for activities.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from backends.model import Principal


@dataclass(frozen=True)
class PortalVM:
    id: str
    title: str
    state: str  # an OCCI compute state (backends.model.VM_STATES)
    state_message: str = ""


def vms_of(runtime: Any, principal: Principal) -> list[PortalVM]:
    """The VMs ``principal`` owns, newest first: none until the OCCI merge."""
    return []
