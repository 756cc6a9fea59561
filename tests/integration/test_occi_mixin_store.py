"""The user-mixin table after migration 0007 (#16.16): mixins per owner, rows kept, on
both stores."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from backends.store import Database, migrate

ROW = (
    "INSERT INTO occi_user_mixins (scheme, term, title, location, depends, applies, owner, "
    "created) VALUES ('http://example.org/tags#', 'prod', '', '/mixins/prod/', '[]', '[]', "
    ":owner, CURRENT_TIMESTAMP)"
)


def test_user_mixins_become_per_owner_and_keep_their_rows(store_url: str) -> None:
    migrate.upgrade(store_url, "0005")
    db = Database(store_url)
    try:
        with db.engine.begin() as conn:
            conn.execute(text(ROW), {"owner": "alice"})
        migrate.upgrade(store_url)
        with db.engine.begin() as conn:
            conn.execute(text(ROW), {"owner": "bob"})  # the same location, another owner
            owners = conn.execute(text("SELECT owner FROM occi_user_mixins ORDER BY id"))
            assert [r[0] for r in owners] == ["alice", "bob"]
        with pytest.raises(IntegrityError), db.engine.begin() as conn:
            conn.execute(text(ROW), {"owner": "alice"})
        migrate.downgrade(store_url, "0005")
        with db.engine.begin() as conn:
            kept = conn.execute(text("SELECT owner FROM occi_user_mixins"))
            assert [r[0] for r in kept] == ["alice"]
        migrate.upgrade(store_url)
    finally:
        db.dispose()
