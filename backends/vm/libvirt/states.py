"""libvirt domain states in OCCI Infrastructure words, and which action applies when.

OCCI 1.2 Infrastructure §3.1.1 (compute state diagram): ``start`` leads from inactive or
suspended to active, ``stop``/``restart``/``suspend`` apply to active, ``save`` to an
active or inactive compute. A domain in libvirt's "crashed" state is OCCI ``error``; only
``stop`` (poweroff) and ``start`` (destroy + create) get it out of there.
"""

from __future__ import annotations

# virDomainState values (stable ABI numbers, so the mapping works without the binding)
NOSTATE, RUNNING, BLOCKED, PAUSED, SHUTDOWN, SHUTOFF, CRASHED, PMSUSPENDED = range(8)

_NAMES = {
    NOSTATE: "no state",
    RUNNING: "running",
    BLOCKED: "blocked",
    PAUSED: "paused",
    SHUTDOWN: "shutting down",
    SHUTOFF: "shut off",
    CRASHED: "crashed",
    PMSUSPENDED: "suspended by guest power management",
}

# reasons that say why a domain crashed or failed (virDomainCrashedReason, ShutoffReason)
_SHUTOFF_FAILED = 6
_CRASH_PANICKED = 1


def occi_state(libvirt_state: int, reason: int = 0, managed_save: bool = False) -> tuple[str, str]:
    """(OCCI state, state.message) for a libvirt (state, reason) pair."""
    if libvirt_state in (RUNNING, BLOCKED, SHUTDOWN):
        message = "shutting down" if libvirt_state == SHUTDOWN else ""
        return "active", message
    if libvirt_state == PAUSED:
        return "suspended", "paused"
    if libvirt_state == PMSUSPENDED:
        return "suspended", _NAMES[PMSUSPENDED]
    if libvirt_state == SHUTOFF:
        if managed_save:
            return "suspended", "hibernated (memory saved to disk)"
        if reason == _SHUTOFF_FAILED:
            return "error", "the domain failed to start"
        return "inactive", ""
    if libvirt_state == CRASHED:
        why = "guest kernel panicked" if reason == _CRASH_PANICKED else "the domain crashed"
        return "error", why
    return "error", f"libvirt reports no state for the domain (state {libvirt_state})"


# Which OCCI states each compute action applies in.
ACTION_STATES: dict[str, tuple[str, ...]] = {
    "start": ("inactive", "suspended", "error"),
    "stop": ("active", "suspended", "error"),
    "restart": ("active",),
    "suspend": ("active",),
    "save": ("active", "inactive"),
}

# The methods each action accepts; the first is the default when none is given.
ACTION_METHODS: dict[str, tuple[str, ...]] = {
    "start": ("",),
    "stop": ("graceful", "acpioff", "poweroff"),
    "restart": ("graceful", "warm", "cold"),
    "suspend": ("suspend", "hibernate"),
    "save": ("hot", "deferred"),
}


def refusal(vm_id: str, action: str, state: str) -> str:
    """Why ``action`` does not apply to a compute in ``state`` (for InvalidState)."""
    if action == "start" and state == "active":
        return f"compute {vm_id} is already active"
    if action in ("stop", "suspend", "restart") and state == "inactive":
        return f"compute {vm_id} is inactive; {action} applies to an active compute"
    if action == "suspend" and state == "suspended":
        return f"compute {vm_id} is already suspended"
    allowed = ", ".join(ACTION_STATES.get(action, ()))
    return f"{action} does not apply to compute {vm_id} in state {state} (only when {allowed})"
