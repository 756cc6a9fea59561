"""Tables of the SAML service provider's shared state (owner: gateway/saml)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    String,
)
from sqlalchemy.orm import Mapped, mapped_column

from backends.store.tables.base import Base, UTCDateTime, utcnow


class SAMLRequest(Base):
    """An AuthnRequest the SP sent and has not yet seen answered: the Response's
    InResponseTo must name one, and consuming it deletes it (one answer per request)."""

    __tablename__ = "saml_requests"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    idp: Mapped[str] = mapped_column(String(1024))
    return_to: Mapped[str] = mapped_column(String(2048), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


class SAMLReplay(Base):
    """Assertion IDs already consumed, kept until the assertion could no longer be
    accepted anyway; the primary key makes a second use fail in every process."""

    __tablename__ = "saml_replay"

    # sha256 hex of "<issuer> <assertion ID>": IDs are only unique per issuer.
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    issuer: Mapped[str] = mapped_column(String(1024))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


class SAMLSession(Base):
    """A login session established by a SAML assertion (the portal's session cookie
    names it); kept server-side so single logout can end it by NameID/SessionIndex."""

    __tablename__ = "saml_sessions"

    # sha256 hex of the cookie's random part: the table never holds a usable cookie.
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    subject: Mapped[str] = mapped_column(String(1024))
    principal: Mapped[dict] = mapped_column(JSON)
    idp: Mapped[str] = mapped_column(String(1024))
    name_id: Mapped[str] = mapped_column(String(1024), default="")
    name_id_format: Mapped[str] = mapped_column(String(256), default="")
    session_index: Mapped[str] = mapped_column(String(256), default="", index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
