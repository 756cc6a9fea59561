"""The policy store: versioned policy documents at three levels (owner, vo, user).

A change stores a new version and never touches an old one, so the history of every
policy stays readable; decide() uses the newest version of each (see
backends/vo/decisions.py). A document is checked against its schema and compiled before it
is stored, so a policy that would not compile never reaches the index.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select, tuple_
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from backends.store.tables.vo import PolicyVersion
from backends.vo.errors import Conflict, Invalid, NotFound
from backends.vo.names import check_name, check_principal, find_vo
from backends.vo.policy import DEFAULT_VO_POLICY, LEVELS, compile_policy, validate_document
from backends.vo.sessions import Sessions

_ATTEMPTS = 5  # concurrent writers of one policy: how often to try the next version number


def _now() -> datetime:
    return datetime.now(UTC)


def _latest_version(session: Session, level: str, scope: str) -> int:
    return (
        session.scalar(
            select(func.max(PolicyVersion.version)).where(
                PolicyVersion.level == level, PolicyVersion.scope == scope
            )
        )
        or 0
    )


def _view(row: PolicyVersion) -> dict[str, Any]:
    return {
        "level": row.level,
        "scope": row.scope,
        "version": row.version,
        "document": row.document,
        "author": row.author,
        "comment": row.comment,
        "created_at": row.created_at,
    }


def add_default(session: Session, vo: str, creator: str) -> None:
    """A new VO's first policy (in the transaction that creates the VO); a VO of that name
    deleted before keeps its history, and this one follows it."""
    session.add(
        PolicyVersion(
            level="vo",
            scope=vo,
            version=_latest_version(session, "vo", vo) + 1,
            document=DEFAULT_VO_POLICY,
            author=creator,
            comment="created with the VO",
        )
    )


def newest(session: Session) -> Iterable[PolicyVersion]:
    """The newest version of every policy (what the decision index compiles)."""
    latest = (
        select(PolicyVersion.level, PolicyVersion.scope, func.max(PolicyVersion.version))
        .group_by(PolicyVersion.level, PolicyVersion.scope)
        .subquery()
    )
    return session.execute(
        select(PolicyVersion).where(
            tuple_(PolicyVersion.level, PolicyVersion.scope, PolicyVersion.version).in_(
                select(latest)
            )
        )
    ).scalars()


class PolicyStore:
    """Policy versions: store a new one, read one, read the history."""

    def __init__(self, db: Sessions) -> None:
        self.db = db

    def put_policy(
        self, level: str, scope: str, document: Any, *, author: str = "", comment: str = ""
    ) -> dict[str, Any]:
        """Store a new version (never changes an old one); returns it."""
        if level not in LEVELS:
            raise Invalid(f"policy level {level!r}: use one of {', '.join(LEVELS)}")
        if level == "vo":
            check_name(scope, "VO name")
        else:
            check_principal(scope)
        document = validate_document(document)
        compile_policy(level, scope, 0, document)
        for _attempt in range(_ATTEMPTS):
            try:
                with self.db.change() as session:
                    if level == "vo":
                        find_vo(session, scope)
                    row = PolicyVersion(
                        level=level,
                        scope=scope,
                        version=_latest_version(session, level, scope) + 1,
                        document=document,
                        author=author,
                        comment=comment,
                        created_at=_now(),
                    )
                    session.add(row)
                return _view(row)
            except IntegrityError:
                continue  # another writer took that version number
        raise Conflict(f"the {level} policy of {scope} is being edited concurrently; retry")

    def get_policy(self, level: str, scope: str, version: int | None = None) -> dict[str, Any]:
        with self.db.session() as session:
            query = select(PolicyVersion).where(
                PolicyVersion.level == level, PolicyVersion.scope == scope
            )
            query = (
                query.where(PolicyVersion.version == version)
                if version
                else query.order_by(PolicyVersion.version.desc())
            )
            row = session.scalars(query.limit(1)).first()
        if row is None:
            raise NotFound(
                f"no {level} policy of {scope}" + (f" at version {version}" if version else "")
            )
        return _view(row)

    def policy_history(self, level: str, scope: str) -> list[dict[str, Any]]:
        with self.db.session() as session:
            rows = session.scalars(
                select(PolicyVersion)
                .where(PolicyVersion.level == level, PolicyVersion.scope == scope)
                .order_by(PolicyVersion.version)
            ).all()
        if not rows:
            raise NotFound(f"no {level} policy of {scope}")
        return [_view(r) for r in rows]
