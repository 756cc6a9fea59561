"""Tables of OCCI ownership records and user mixins (owner: gateway/occi)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from backends.store.tables.base import Base, UTCDateTime, utcnow


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
    """A mixin a user defined through the query interface (a tag for grouping): its
    owner's alone, so two users may each have a /mixins/prod/ and see only their own."""

    __tablename__ = "occi_user_mixins"
    __table_args__ = (
        UniqueConstraint("owner", "location", name="uq_occi_user_mixins_owner_location"),
        UniqueConstraint("owner", "scheme", "term", name="uq_occi_user_mixins_owner_category"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    scheme: Mapped[str] = mapped_column(String(512))
    term: Mapped[str] = mapped_column(String(128))
    title: Mapped[str] = mapped_column(String(512), default="")
    location: Mapped[str] = mapped_column(String(512))
    depends: Mapped[list] = mapped_column(JSON, default=list)
    applies: Mapped[list] = mapped_column(JSON, default=list)
    owner: Mapped[str] = mapped_column(String(255), index=True)
    created: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
