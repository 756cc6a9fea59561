"""Find backend implementations through entry points and build the configured ones."""

from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points

from backends.contracts.interfaces import BACKEND_KINDS, Backend, BackendContext
from backends.contracts.settings import Section

GROUP = "xtreemgate.backends"


class UnknownBackend(LookupError):
    """The config names a backend that no installed distribution provides."""


class BrokenPlugin(ImportError):
    """An installed plugin's entry point cannot be loaded (its settings are unknown)."""


def installed(kind: str) -> dict[str, EntryPoint]:
    """The implementations of one kind that are installed, by name."""
    prefix = kind + "."
    return {
        ep.name[len(prefix) :]: ep for ep in entry_points(group=GROUP) if ep.name.startswith(prefix)
    }


def plugin(kind: str, name: str) -> type[Backend]:
    """The class of the implementation ``name`` of ``kind``; the error lists what is
    installed."""
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
    return cls


def load(kind: str, name: str, context: BackendContext) -> Backend:
    """Build the implementation ``name`` of ``kind`` with ``context``."""
    return plugin(kind, name)(context)


def declared_sections() -> dict[str, list[type[Section]]]:
    """Config section path -> the settings models the installed plugins declare for it
    (every installed plugin, chosen or not: the file may configure any of them), in
    entry-point name order. An entry point that is not a backend class declares nothing
    (choosing it fails in :func:`plugin`)."""
    sections: dict[str, list[type[Section]]] = {}
    for ep in sorted(entry_points(group=GROUP), key=lambda e: e.name):
        try:
            cls = ep.load()
        except Exception as exc:
            raise BrokenPlugin(
                f"backend plugin {ep.name} ({ep.value}) cannot be loaded: {exc}"
            ) from exc
        if isinstance(cls, type) and issubclass(cls, Backend) and cls.settings is not None:
            models = sections.setdefault(cls.section, [])
            if cls.settings not in models:
                models.append(cls.settings)
    return sections
