"""The SQL store's tables, one module per owner. Importing this package registers every
table on ``Base.metadata`` (what Alembic compares migrations against)."""

from backends.store.tables import activities, identity, occi, saml, vo
from backends.store.tables.base import Base

__all__ = ["Base", "activities", "identity", "occi", "saml", "vo"]
