"""The SP's state in the SQL store, shared by every gateway process: outstanding
AuthnRequests (InResponseTo), the assertion replay cache, login sessions."""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.exc import IntegrityError

from backends.store import Database
from backends.store.tables.saml import SAMLReplay, SAMLRequest, SAMLSession


def _now() -> datetime:
    return datetime.now(UTC)


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


@dataclass(frozen=True)
class OutstandingRequest:
    id: str
    idp: str
    return_to: str


class RequestStore:
    """AuthnRequest IDs awaiting their Response."""

    def __init__(self, db: Database, lifetime: int) -> None:
        self.db = db
        self.lifetime = lifetime
        self._next_purge = 0.0

    def remember(self, request_id: str, idp: str, return_to: str) -> None:
        now = _now()
        with self.db.session() as session:
            session.add(
                SAMLRequest(
                    id=request_id,
                    idp=idp,
                    return_to=return_to,
                    created_at=now,
                    expires_at=now + timedelta(seconds=self.lifetime),
                )
            )

    def consume(self, request_id: str) -> OutstandingRequest | None:
        """The outstanding request, deleted by the same statement: of two processes
        consuming it at once, exactly one gets the row (answered once)."""
        table = SAMLRequest.__table__
        statement = (
            delete(table)
            .where(table.c.id == request_id)
            .returning(table.c.idp, table.c.return_to, table.c.expires_at)
        )
        with self.db.engine.begin() as conn:
            row = conn.execute(statement).first()
            if time.monotonic() > self._next_purge:
                self._next_purge = time.monotonic() + 60
                conn.execute(delete(table).where(table.c.expires_at < _now()))
        if row is None:
            return None
        expires_at = row.expires_at
        if expires_at.tzinfo is None:  # SQLite hands back naive UTC through Core
            expires_at = expires_at.replace(tzinfo=UTC)
        if expires_at <= _now():
            return None
        return OutstandingRequest(request_id, row.idp, row.return_to)


class ReplayCache:
    """One-time use of assertions (SAML profiles §4.1.4.5)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._next_purge = 0.0

    def first_use(self, issuer: str, assertion_id: str, expires_at: datetime) -> bool:
        """True the first time (issuer, ID) is seen; False for a replay."""
        table = SAMLReplay.__table__
        try:
            # Core, not the ORM: this runs once per login and the ORM's unit of work
            # costs several times the insert itself.
            with self.db.engine.begin() as conn:
                conn.execute(
                    insert(table).values(
                        key=_digest(issuer, assertion_id), issuer=issuer, expires_at=expires_at
                    )
                )
        except IntegrityError:
            return False
        if time.monotonic() > self._next_purge:
            self._next_purge = time.monotonic() + 60
            with self.db.engine.begin() as conn:
                conn.execute(delete(table).where(table.c.expires_at < _now()))
        return True


@dataclass(frozen=True)
class LoginSession:
    subject: str
    principal: dict[str, Any]
    idp: str
    name_id: str
    name_id_format: str
    session_index: str
    expires_at: datetime


class SessionStore:
    """Login sessions, found by the random part of the cookie (stored only hashed)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def create(self, login: LoginSession) -> str:
        token = secrets.token_urlsafe(32)
        with self.db.session() as session:
            session.add(
                SAMLSession(
                    id=_digest(token),
                    subject=login.subject,
                    principal=login.principal,
                    idp=login.idp,
                    name_id=login.name_id,
                    name_id_format=login.name_id_format,
                    session_index=login.session_index,
                    expires_at=login.expires_at,
                )
            )
        return token

    def get(self, token: str) -> LoginSession | None:
        with self.db.session() as session:
            row = session.get(SAMLSession, _digest(token))
            if row is None or row.expires_at <= _now():
                return None
            return LoginSession(
                row.subject,
                dict(row.principal),
                row.idp,
                row.name_id,
                row.name_id_format,
                row.session_index,
                row.expires_at,
            )

    def end(self, token: str) -> LoginSession | None:
        login = self.get(token)
        with self.db.session() as session:
            session.execute(delete(SAMLSession).where(SAMLSession.id == _digest(token)))
        return login

    def end_by_name_id(self, idp: str, name_id: str, session_indexes: list[str]) -> int:
        """IdP-initiated logout: every session of that subject at that IdP (only the
        named SessionIndexes when the request names some)."""
        with self.db.session() as session:
            query = select(SAMLSession.id).where(
                SAMLSession.idp == idp, SAMLSession.name_id == name_id
            )
            if session_indexes:
                query = query.where(SAMLSession.session_index.in_(session_indexes))
            ids = list(session.scalars(query))
            if ids:
                session.execute(delete(SAMLSession).where(SAMLSession.id.in_(ids)))
            session.execute(delete(SAMLSession).where(SAMLSession.expires_at < _now()))
        return len(ids)
