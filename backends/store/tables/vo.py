"""Tables of Virtual Organisations (owner: the SQL VO plugin, backends/vo)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from backends.store.tables.base import Base, UTCDateTime, utcnow


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
