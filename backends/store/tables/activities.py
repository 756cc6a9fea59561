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
    restart. ``backend_id`` is empty only between the insert and the backend's answer.
    Until then ``launch`` holds the job spec and account to hand over (JSON) and
    ``handler``/``lease_until`` the gateway process handing it over and until when its
    claim holds (renewed while it lives): a row whose lease ran out (its process died) is
    taken by another process, or the same after a restart, and handed over again.
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
    launch: Mapped[str] = mapped_column(Text, default="", server_default="")
    handler: Mapped[str] = mapped_column(String(128), default="", server_default="")
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ServiceFlag(Base):
    """A small named value every gateway process must agree on (e.g. whether the BES
    factory accepts new activities), so it lives in the shared store, not in memory."""

    __tablename__ = "service_flags"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(255))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
