"""Find backend implementations through entry points and build the configured ones."""

from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points

from backends.contracts.interfaces import BACKEND_KINDS, Backend, BackendContext

GROUP = "xtreemgate.backends"


class UnknownBackend(LookupError):
    """The config names a backend that no installed distribution provides."""


def installed(kind: str) -> dict[str, EntryPoint]:
    """The implementations of one kind that are installed, by name."""
    prefix = kind + "."
    return {
        ep.name[len(prefix) :]: ep for ep in entry_points(group=GROUP) if ep.name.startswith(prefix)
    }


def load(kind: str, name: str, context: BackendContext) -> Backend:
    """Build the implementation ``name`` of ``kind``; the error lists what is installed."""
    if kind not in BACKEND_KINDS:
        raise UnknownBackend(f"unknown backend kind {kind!r}; kinds: {', '.join(BACKEND_KINDS)}")
    available = installed(kind)
    if name not in available:
        names = ", ".join(sorted(available)) or "none"
        raise UnknownBackend(
            f"backends.{kind} = {name!r} is not installed; installed {kind} backends: {names}"
        )
    cls = available[name].load()
    if not (isinstance(cls, type) and issubclass(cls, BACKEND_KINDS[kind])):
        raise UnknownBackend(
            f"entry point {kind}.{name} ({available[name].value}) is not a "
            f"{BACKEND_KINDS[kind].__name__}"
        )
    return cls(context)
