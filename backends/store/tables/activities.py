"""Tables of activities and of the flags every gateway process shares (owner: the
activity store, backends/store/activities; BES management)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from backends.store.tables.base import Base, UTCDateTime, utcnow


class Activity(Base):
    """One OGSA-BES activity: who submitted it, where it runs, and its last known state.

    The original JSDL document is kept so GetActivityDocuments answers it verbatim after a
    restart. ``backend_id`` is empty only between the insert and the backend's answer; a
    row left like that by a crash is turned Failed by the next status refresh.
    """

    __tablename__ = "activities"
    __table_args__ = (
        Index("ix_activities_owner", "owner"),
        Index("ix_activities_state", "state"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    owner: Mapped[str] = mapped_column(String(255))
    vo: Mapped[str] = mapped_column(String(128), default="")
    state: Mapped[str] = mapped_column(String(16))
    substate: Mapped[str] = mapped_column(String(32), default="")
    exit_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    jsdl: Mapped[str] = mapped_column(Text)
    backend: Mapped[str] = mapped_column(String(64))
    backend_id: Mapped[str] = mapped_column(String(255), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ServiceFlag(Base):
    """A small named value every gateway process must agree on (e.g. whether the BES
    factory accepts new activities), so it lives in the shared store, not in memory."""

    __tablename__ = "service_flags"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(255))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
