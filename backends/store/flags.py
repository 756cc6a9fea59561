"""Named values shared by all gateway processes through the store (e.g. whether BES
accepts new activities, the site's WS-Security key)."""

from __future__ import annotations

import time

from sqlalchemy import Engine
from sqlalchemy.orm import sessionmaker

from backends.store.tables.activities import ServiceFlag
from backends.store.tables.base import utcnow


class ServiceFlags:
    """Named values shared by all gateway processes through the store."""

    def __init__(self, engine: Engine) -> None:
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    def get(self, name: str, default: str = "") -> str:
        with self._sessions() as session:
            row = session.get(ServiceFlag, name)
            return row.value if row else default

    def set(self, name: str, value: str) -> None:
        with self._sessions.begin() as session:
            row = session.get(ServiceFlag, name)
            if row is None:
                session.add(ServiceFlag(name=name, value=value, updated_at=utcnow()))
            else:
                row.value, row.updated_at = value, utcnow()

    def setdefault(self, name: str, value: str) -> str:
        """The stored value, storing ``value`` first if there is none (first writer wins)."""
        current = self.get(name)
        if current:
            return current
        try:
            with self._sessions.begin() as session:
                session.add(ServiceFlag(name=name, value=value, updated_at=utcnow()))
        except Exception:  # another process inserted it first: read the winner
            return self.get(name)
        return value


class CachedSwitch:
    """A true/false flag read from the store at most once per ``ttl`` seconds.

    Every gateway process follows a change made by another within ``ttl``, and a hot
    path (CreateActivity asks whether BES accepts new activities) does not pay a query
    each time; the process that changes the flag sees the change at once.
    """

    def __init__(self, flags: ServiceFlags, name: str, *, default: bool, ttl: float) -> None:
        self.flags = flags
        self.name = name
        self.default = default
        self.ttl = ttl
        self._cached: tuple[float, bool] | None = None  # (valid until, value)

    def get(self) -> bool:
        cached = self._cached
        now = time.monotonic()
        if cached is not None and cached[0] > now:
            return cached[1]
        value = self.flags.get(self.name, self._text(self.default)) == "true"
        self._cached = (now + self.ttl, value)
        return value

    def set(self, value: bool) -> None:
        self.flags.set(self.name, self._text(value))
        self._cached = None  # read back on next use

    @staticmethod
    def _text(value: bool) -> str:
        return "true" if value else "false"
