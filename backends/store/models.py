"""Tables of the gateway's own state. Every change here comes with an Alembic migration."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import JSON, Boolean, DateTime, Index, Integer, LargeBinary, MetaData, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timestamps are aware UTC in Python on every dialect (SQLite forgets the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class LocalUser(Base):
    """A user known to the gateway itself (the embedded identity source)."""

    __tablename__ = "local_users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(128), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    display_name: Mapped[str] = mapped_column(String(255), default="")
    email: Mapped[str] = mapped_column(String(255), default="")
    site_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class SigningKey(Base):
    """One key of the token-signing key ring, shared by all gateway processes.

    ``generation`` is unique, so two processes that create or rotate at the same moment
    cannot both win: one insert fails and that process reads the winner's key.
    """

    __tablename__ = "signing_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    generation: Mapped[int] = mapped_column(Integer, unique=True)
    kid: Mapped[str] = mapped_column(String(64), unique=True)
    algorithm: Mapped[str] = mapped_column(String(16))
    private_pem: Mapped[bytes] = mapped_column(LargeBinary)
    public_jwk: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # Signs from not_before on; published and accepted until retire_after (None: open).
    not_before: Mapped[datetime] = mapped_column(UTCDateTime())
    retire_after: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


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


class SeenNonce(Base):
    """A WS-Security UsernameToken nonce already used; the primary key makes a replay fail
    its insert in every gateway process. Rows past ``expires_at`` are purged."""

    __tablename__ = "wss_nonces"
    __table_args__ = (Index("ix_wss_nonces_expires_at", "expires_at"),)

    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())


class OCCIEntity(Base):
    """An OCCI resource or link the gateway created: who owns it, in which VO, and what
    the hypervisor does not hold (title, summary, mixins, links, other attributes).

    Written before the backend is asked to create the thing and removed if it refuses,
    so the two never disagree for long; the state itself is always read from the backend.
    """

    __tablename__ = "occi_entities"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(255), index=True)  # category identifier
    owner: Mapped[str] = mapped_column(String(255), index=True)
    vo: Mapped[str] = mapped_column(String(255), default="", index=True)
    title: Mapped[str] = mapped_column(String(512), default="")
    summary: Mapped[str] = mapped_column(String(2048), default="")
    mixins: Mapped[list] = mapped_column(JSON, default=list)  # category identifiers
    # A link's ends: "<kind location><id>" of source and target (empty for resources).
    source: Mapped[str] = mapped_column(String(512), default="", index=True)
    target: Mapped[str] = mapped_column(String(512), default="", index=True)
    links: Mapped[list] = mapped_column(JSON, default=list)  # ids of outgoing links
    attributes: Mapped[dict] = mapped_column(JSON, default=dict)
    created: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class OCCICollectionVersion(Base):
    """A counter per kind, raised in the same transaction that adds or removes an entity
    of it: a gateway process knows with one key lookup whether its cached listing of a
    collection is still right, whichever process changed it."""

    __tablename__ = "occi_collection_versions"

    kind: Mapped[str] = mapped_column(String(255), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, default=0)


class OCCIUserMixin(Base):
    """A mixin a user defined through the query interface (a tag for grouping)."""

    __tablename__ = "occi_user_mixins"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    scheme: Mapped[str] = mapped_column(String(512))
    term: Mapped[str] = mapped_column(String(128))
    title: Mapped[str] = mapped_column(String(512), default="")
    location: Mapped[str] = mapped_column(String(512), unique=True)
    depends: Mapped[list] = mapped_column(JSON, default=list)
    applies: Mapped[list] = mapped_column(JSON, default=list)
    owner: Mapped[str] = mapped_column(String(255))
    created: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
