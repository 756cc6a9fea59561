"""Open, reuse and drop LDAP connections.

A connection is bound once and reused for many operations; each is used by one thread at
a time. A connection that failed in any way is dropped rather than returned, so a server
restart costs one retry, never a stuck connection.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator

import ldap

from adapters.ldap.config import DirectoryConfig
from adapters.ldap.errors import DirectoryError, DirectoryUnavailable

log = logging.getLogger("xtreemgate.ldap")


def describe(exc: ldap.LDAPError) -> str:
    """python-ldap's error dict as one line: 'desc (info)'."""
    args = exc.args[0] if exc.args and isinstance(exc.args[0], dict) else {}
    desc = args.get("desc") or type(exc).__name__
    info = args.get("info")
    if isinstance(info, bytes):
        info = info.decode("utf-8", errors="replace")
    if info == "(unknown error code)":  # libldap's filler when TLS failed: says nothing
        info = ""
    return f"{desc} ({info})" if info else str(desc)


def connect(config: DirectoryConfig) -> ldap.ldapobject.LDAPObject:
    """A bound connection, or DirectoryUnavailable/DirectoryError saying why not."""
    conn = ldap.initialize(config.url.strip(), bytes_mode=False)
    try:
        conn.set_option(ldap.OPT_PROTOCOL_VERSION, ldap.VERSION3)
        conn.set_option(ldap.OPT_REFERRALS, 0)
        conn.set_option(ldap.OPT_NETWORK_TIMEOUT, config.network_timeout)
        conn.set_option(ldap.OPT_TIMEOUT, config.timeout)
        if config.ca_file:
            conn.set_option(ldap.OPT_X_TLS_CACERTFILE, config.ca_file)
        if config.ca_file or config.start_tls or "ldaps://" in config.url:
            conn.set_option(ldap.OPT_X_TLS_REQUIRE_CERT, ldap.OPT_X_TLS_DEMAND)
            conn.set_option(ldap.OPT_X_TLS_NEWCTX, 0)
        if config.start_tls:
            try:
                conn.start_tls_s()
            except ldap.SERVER_DOWN:
                raise
            except ldap.LDAPError as exc:
                raise DirectoryUnavailable(
                    f"StartTLS refused by {config.url}: {describe(exc)}; the server has no "
                    "TLS configured or its certificate does not verify against ca_file "
                    "(no plain-text fallback: start_tls = true requires TLS)"
                ) from exc
        try:
            conn.simple_bind_s(config.bind_dn, config.bind_password)
        except ldap.INVALID_CREDENTIALS as exc:
            raise DirectoryError(
                f"{config.url} refused the bind as {config.bind_dn or '(anonymous)'}: "
                "invalid credentials (check ldap.bind_dn and ldap.bind_password)"
            ) from exc
    except ldap.SERVER_DOWN as exc:
        conn_close(conn)
        hint = ""
        if "ldaps://" in config.url:
            hint = " (or its TLS certificate does not verify against ca_file)"
        raise DirectoryUnavailable(
            f"LDAP server {config.url} unreachable: {describe(exc)}{hint}"
        ) from exc
    except ldap.TIMEOUT as exc:
        conn_close(conn)
        raise DirectoryUnavailable(
            f"LDAP server {config.url} did not answer within {config.timeout:g} s"
        ) from exc
    except ldap.LDAPError as exc:
        conn_close(conn)
        raise DirectoryError(f"LDAP server {config.url}: {describe(exc)}") from exc
    except DirectoryError:
        conn_close(conn)
        raise
    return conn


def conn_close(conn: ldap.ldapobject.LDAPObject) -> None:
    with contextlib.suppress(ldap.LDAPError):
        conn.unbind_s()


class ConnectionPool:
    """At most ``size`` bound connections; idle ones are reused, the newest first."""

    def __init__(self, config: DirectoryConfig) -> None:
        self.config = config
        self._idle: list[ldap.ldapobject.LDAPObject] = []
        self._slots = threading.BoundedSemaphore(max(1, config.pool_size))
        self._lock = threading.Lock()
        self.opened = 0  # connections opened so far (reuse shows as a small number)

    @contextlib.contextmanager
    def connection(self) -> Iterator[ldap.ldapobject.LDAPObject]:
        if not self._slots.acquire(timeout=self.config.timeout):
            raise DirectoryUnavailable(
                f"all {self.config.pool_size} LDAP connections stayed busy for "
                f"{self.config.timeout:g} s (raise ldap.pool_size?)"
            )
        try:
            with self._lock:
                conn = self._idle.pop() if self._idle else None
            if conn is None:
                conn = connect(self.config)
                self.opened += 1
            try:
                yield conn
            except BaseException:
                conn_close(conn)  # state unknown after a failure: never reuse it
                raise
            with self._lock:
                self._idle.append(conn)
        finally:
            self._slots.release()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn_close(conn)
