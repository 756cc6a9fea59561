"""Everything one gateway process holds: settings, store, backends, key ring, auth chain.

Built once by the app factory (and by CLI commands that need part of it); handlers reach
it through :func:`current`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import flask

from backends import registry
from backends.interfaces import Backend, BackendContext
from backends.model import HealthReport
from backends.store import Database
from gateway.auth.chain import AuthChain, Authenticator, BasicAuthenticator, BearerAuthenticator
from gateway.auth.tokens import KeyRing, TokenService
from gateway.config import Settings

if TYPE_CHECKING:
    from gateway.saml.sp import ServiceProvider

EXTENSION = "xtreemgate"


@dataclass
class Runtime:
    settings: Settings
    db: Database
    keyring: KeyRing
    tokens: TokenService
    chain: AuthChain
    backends: dict[str, Backend] = field(default_factory=dict)
    saml: ServiceProvider | None = None  # when saml.enabled

    def health(self) -> dict[str, HealthReport]:
        """Every dependency tried for real; a check that raises counts as failed."""
        checks: dict[str, HealthReport] = {}
        try:
            self.db.ping()
            checks["database"] = HealthReport(True, f"{self.db.engine.dialect.name} answers")
        except Exception as exc:
            checks["database"] = HealthReport(False, f"database unreachable: {exc}")
        if self.saml is not None:
            try:
                checks["saml"] = self.saml.health()
            except Exception as exc:
                checks["saml"] = HealthReport(False, f"SAML service provider: {exc}")
        for kind, backend in self.backends.items():
            try:
                checks[kind] = backend.health()
            except Exception as exc:
                checks[kind] = HealthReport(False, f"{backend.name} health check failed: {exc}")
        return checks

    def close(self) -> None:
        if self.saml is not None:
            self.saml.close()
        for backend in self.backends.values():
            backend.close()
        self.db.dispose()


def open_database(settings: Settings) -> Database:
    return Database(
        settings.database_url, pool_size=settings.database.pool_size, echo=settings.database.echo
    )


KINDS = ("vo", "execution", "vm", "storage")


def load_backend(settings: Settings, db: Database, kind: str) -> Backend:
    """The configured implementation of ``kind``; an unknown name raises UnknownBackend."""
    context = BackendContext(db.engine, settings.state_path, getattr(settings, kind, None))
    return registry.load(kind, getattr(settings.backends, kind), context)


def load_backends(settings: Settings, db: Database) -> dict[str, Backend]:
    return {kind: load_backend(settings, db, kind) for kind in KINDS}


def build_runtime(settings: Settings, *, with_backends: bool = True) -> Runtime:
    db = open_database(settings)
    keyring = KeyRing(db, settings.auth.tokens)
    tokens = TokenService(keyring, settings.auth.tokens, settings.token_issuer)
    by_name: dict[str, Authenticator] = {
        "bearer": BearerAuthenticator(tokens, settings.auth.realm),
        "basic": BasicAuthenticator(db, settings.auth.realm, settings.auth.basic_cache_seconds),
    }
    saml = None
    if settings.saml.enabled:
        from gateway.saml.authenticator import SAMLSessionAuthenticator
        from gateway.saml.sp import ServiceProvider

        saml = ServiceProvider(settings, db)
        by_name["saml"] = SAMLSessionAuthenticator(saml)
    chain = AuthChain([by_name[name] for name in settings.auth.chain])
    runtime = Runtime(settings, db, keyring, tokens, chain, saml=saml)
    if with_backends:
        runtime.backends = load_backends(settings, db)
    return runtime


def current() -> Runtime:
    return flask.current_app.extensions[EXTENSION]
