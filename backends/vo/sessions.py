"""One session factory for every part of the VO backend, and the change counter.

The parts (organisations, members, resources, policies, the decision index, leases, audit)
all open their transactions here: one engine, one sessionmaker, and a write that spans
parts stays one transaction because the parts hand each other the session. A write that
changes what decide() reads goes through :meth:`Sessions.change`, which bumps the one
counter (``vo_state.version``) inside the same transaction, so that other processes see
it move, and after the commit tells this process's listeners (the decision index) at once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from backends.store.tables.vo import VOState
from backends.vo.errors import Conflict


class Sessions:
    """The VO backend's transactions, on the engine the gateway gives its backends."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._maker = sessionmaker(engine, expire_on_commit=False)
        self._listeners: list[Callable[[], None]] = []

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A transaction: committed when the block ends, rolled back on any error."""
        with self._maker.begin() as session:
            yield session

    @contextmanager
    def change(self, conflict: str = "") -> Iterator[Session]:
        """A transaction that changes what decide() reads: the counter moves with it, and
        the listeners hear of it once it is committed. With ``conflict``, a unique
        constraint that refuses the write becomes :class:`Conflict` with that message."""
        try:
            with self.session() as session:
                yield session
                session.execute(
                    update(VOState).where(VOState.id == 1).values(version=VOState.version + 1)
                )
        except IntegrityError as exc:
            if not conflict:
                raise
            raise Conflict(conflict) from exc
        for listener in self._listeners:
            listener()

    def on_change(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` after every change committed through this process."""
        self._listeners.append(listener)


def version(session: Session) -> int | None:
    """The change counter now (None: the VO tables are missing)."""
    return session.scalar(select(VOState.version).where(VOState.id == 1))
