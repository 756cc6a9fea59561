"""Local users: the gateway's embedded identity source."""

from __future__ import annotations

import re

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from backends.store import Database
from backends.store.tables.identity import LocalUser
from gateway.auth.passwords import DUMMY_HASH, hash_password, verify_password

USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$")


class UserError(ValueError):
    """A user cannot be created or changed; the message says why."""


def add_user(
    db: Database,
    username: str,
    password: str,
    *,
    display_name: str = "",
    email: str = "",
    site_admin: bool = False,
) -> LocalUser:
    if not USERNAME.match(username):
        raise UserError(
            f"user name {username!r} is not allowed: use letters, digits and . _ @ - "
            "(at most 128, starting with a letter or digit)"
        )
    if len(password) < 8:
        raise UserError("the password must have at least 8 characters")
    user = LocalUser(
        username=username,
        password_hash=hash_password(password),
        display_name=display_name,
        email=email,
        site_admin=site_admin,
    )
    try:
        with db.session() as session:
            session.add(user)
    except IntegrityError as exc:
        raise UserError(f"user {username!r} exists already") from exc
    return user


def get_user(db: Database, username: str) -> LocalUser | None:
    with db.session() as session:
        return session.scalars(select(LocalUser).where(LocalUser.username == username)).first()


def check_password(db: Database, username: str, password: str) -> LocalUser | None:
    """The user if the password is right and the account enabled; None otherwise."""
    user = get_user(db, username)
    if user is None:
        verify_password(password, DUMMY_HASH)
        return None
    if not verify_password(password, user.password_hash) or user.disabled:
        return None
    return user


def list_users(db: Database) -> list[LocalUser]:
    with db.session() as session:
        return list(session.scalars(select(LocalUser).order_by(LocalUser.username)))


def update_user(
    db: Database, username: str, *, password: str | None = None, disabled: bool | None = None
) -> None:
    """Change a user's password or enabled state; UserError when there is no such user."""
    if password is not None and len(password) < 8:
        raise UserError("the password must have at least 8 characters")
    with db.session() as session:
        user = session.scalars(select(LocalUser).where(LocalUser.username == username)).first()
        if user is None:
            raise UserError(f"no local user {username!r}")
        if password is not None:
            user.password_hash = hash_password(password)
        if disabled is not None:
            user.disabled = disabled
