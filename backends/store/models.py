"""Tables of the gateway's own state. Every change here comes with an Alembic migration."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
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


# -- Virtual Organisations (backends/vo) ------------------------------------------------


class VO(Base):
    """A Virtual Organisation: the unit that grants its members use of resources."""

    __tablename__ = "vos"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    description: Mapped[str] = mapped_column(String(1024), default="")
    created_by: Mapped[str] = mapped_column(String(255), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class VOGroup(Base):
    """A group of a VO; nested groups are paths ("analysis/higgs"), "" is the root."""

    __tablename__ = "vo_groups"
    __table_args__ = (UniqueConstraint("vo_id", "path"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    vo_id: Mapped[int] = mapped_column(ForeignKey("vos.id", ondelete="CASCADE"), index=True)
    path: Mapped[str] = mapped_column(String(512), default="")
    description: Mapped[str] = mapped_column(String(1024), default="")


class VORole(Base):
    """A role a VO hands to members (e.g. "vm_operator", "production")."""

    __tablename__ = "vo_roles"
    __table_args__ = (UniqueConstraint("vo_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    vo_id: Mapped[int] = mapped_column(ForeignKey("vos.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(128))
    description: Mapped[str] = mapped_column(String(1024), default="")


class VOManager(Base):
    """A principal who manages one VO (members, groups, roles, its policy)."""

    __tablename__ = "vo_managers"
    __table_args__ = (UniqueConstraint("vo_id", "principal"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    vo_id: Mapped[int] = mapped_column(ForeignKey("vos.id", ondelete="CASCADE"), index=True)
    principal: Mapped[str] = mapped_column(String(255))


class VOMember(Base):
    """A principal's membership of one group of a VO: requested, active or suspended."""

    __tablename__ = "vo_members"
    __table_args__ = (UniqueConstraint("vo_id", "principal", "group_path"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    vo_id: Mapped[int] = mapped_column(ForeignKey("vos.id", ondelete="CASCADE"), index=True)
    principal: Mapped[str] = mapped_column(String(255), index=True)
    group_path: Mapped[str] = mapped_column(String(512), default="")
    status: Mapped[str] = mapped_column(String(16))  # requested | active | suspended
    roles: Mapped[list] = mapped_column(JSON, default=list)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    decided_by: Mapped[str] = mapped_column(String(255), default="")
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    comment: Mapped[str] = mapped_column(String(1024), default="")


class VOResource(Base):
    """A resource its owner offers to a VO; the same resource may be offered to many."""

    __tablename__ = "vo_resources"
    __table_args__ = (UniqueConstraint("vo_id", "kind", "resource_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    vo_id: Mapped[int] = mapped_column(ForeignKey("vos.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(64))
    resource_id: Mapped[str] = mapped_column(String(255))
    owner: Mapped[str] = mapped_column(String(255))
    registered_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class PolicyVersion(Base):
    """One version of a policy document; every edit adds a row, none is ever changed.

    ``level`` is owner | vo | user and ``scope`` the owner's, VO's or user's name.
    """

    __tablename__ = "policy_versions"
    __table_args__ = (UniqueConstraint("level", "scope", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    level: Mapped[str] = mapped_column(String(8))
    scope: Mapped[str] = mapped_column(String(255))
    version: Mapped[int] = mapped_column(Integer)
    document: Mapped[dict] = mapped_column(JSON)
    author: Mapped[str] = mapped_column(String(255), default="")
    comment: Mapped[str] = mapped_column(String(1024), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class VOState(Base):
    """One row: a counter bumped by every VO, policy or registration change, so that each
    gateway process can tell cheaply whether its compiled policy index is stale."""

    __tablename__ = "vo_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(Integer, default=0)


class MembershipEpoch(Base):
    """Per principal: bumped whenever a membership is taken away (removed, suspended,
    expired, a role dropped). A VO token carries the epoch it was issued at; an older
    epoch means it claims more than the principal still has."""

    __tablename__ = "membership_epochs"

    principal: Mapped[str] = mapped_column(String(255), primary_key=True)
    epoch: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)


class AccountLease(Base):
    """A pool account leased to a principal for one VO (and role).

    At most one open lease (``released_at`` NULL) per account and per (principal, pool):
    two partial unique indexes, so two gateway processes leasing at once cannot hand one
    account to two people. Released leases stay as history.
    """

    __tablename__ = "account_leases"
    __table_args__ = (
        Index(
            "uq_account_leases_open_account",
            "username",
            unique=True,
            sqlite_where=text("released_at IS NULL"),
            postgresql_where=text("released_at IS NULL"),
        ),
        Index(
            "uq_account_leases_open_holder",
            "pool",
            "principal",
            unique=True,
            sqlite_where=text("released_at IS NULL"),
            postgresql_where=text("released_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    pool: Mapped[str] = mapped_column(String(255))  # "<vo>" or "<vo>:<role>"
    principal: Mapped[str] = mapped_column(String(255), index=True)
    username: Mapped[str] = mapped_column(String(64))
    uid: Mapped[int] = mapped_column(Integer)
    gid: Mapped[int] = mapped_column(Integer)
    home: Mapped[str] = mapped_column(String(512), default="")
    leased_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_used_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    released_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class AuditRecord(Base):
    """Append-only accounting and audit: decisions, executions, data access.

    Nothing in the code updates or deletes a row; on PostgreSQL a trigger refuses it.
    """

    __tablename__ = "audit_records"
    __table_args__ = (Index("ix_audit_records_vo_at", "vo", "at"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    category: Mapped[str] = mapped_column(String(16))  # decision | execution | data
    principal: Mapped[str] = mapped_column(String(255))
    vo: Mapped[str] = mapped_column(String(128), default="")
    action: Mapped[str] = mapped_column(String(64))
    resource_kind: Mapped[str] = mapped_column(String(64), default="")
    resource_id: Mapped[str] = mapped_column(String(255), default="")
    outcome: Mapped[str] = mapped_column(String(16), default="")  # permit | deny | ok | failed
    reason: Mapped[str] = mapped_column(String(1024), default="")
    quantity: Mapped[float] = mapped_column(Float, default=0.0)
    unit: Mapped[str] = mapped_column(String(32), default="")


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
