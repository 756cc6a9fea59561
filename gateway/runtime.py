"""Everything one gateway process holds: settings, store, backends, key ring, auth chain.

Built once by the app factory (and by CLI commands that need part of it); handlers reach
it through :func:`current`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import flask

from backends.contracts import registry
from backends.contracts.interfaces import (
    Backend,
    BackendContext,
    InvalidRequest,
    SiteDirectory,
    UnknownResource,
    VOAdministration,
    VOBackend,
)
from backends.contracts.model import HealthReport, Principal
from backends.store import Database
from gateway.auth.chain import (
    AuthChain,
    Authenticator,
    AuthRequest,
    BasicAuthenticator,
    BearerAuthenticator,
)
from gateway.auth.memberships import MembershipResolver
from gateway.auth.tokens import KeyRing, TokenService
from gateway.auth.vo_tokens import VOTokenService
from gateway.auth.wssecurity import WSSecurityAuthenticator
from gateway.auth.x509 import X509Authenticator
from gateway.config import Settings

if TYPE_CHECKING:
    from adapters.ldap import Directory
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
    directory: Any = None  # adapters.ldap.Directory when [ldap] url is set
    vo_tokens: VOTokenService | None = None
    memberships: MembershipResolver | None = None
    # Front ends' own workers (e.g. the BES launcher), stopped before the backends close.
    closers: list[Callable[[], None]] = field(default_factory=list)
    saml: ServiceProvider | None = None  # when saml.enabled

    def authenticate(self, request: AuthRequest) -> Principal | None:
        """For front ends outside the OpenAPI routes (SOAP, portal): the chain, then the
        principal's VO memberships. Raises AuthenticationFailed; None: no credentials."""
        principal = self.chain.authenticate(request)
        if principal is not None and self.memberships is not None:
            principal = self.memberships.enrich(principal)
        return principal

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
        if self.directory is not None:
            checks["ldap"] = self.directory.health()
        return checks

    def close(self) -> None:
        for closer in self.closers:
            closer()
        if self.saml is not None:
            self.saml.close()
        for backend in self.backends.values():
            backend.close()
        if self.directory is not None:
            self.directory.close()
        self.db.dispose()


def open_database(settings: Settings) -> Database:
    return Database(
        settings.database_url, pool_size=settings.database.pool_size, echo=settings.database.echo
    )


KINDS = ("vo", "execution", "vm", "storage")


def load_backend(
    settings: Settings, db: Database, kind: str, directory: SiteDirectory | None = None
) -> Backend:
    """The configured implementation of ``kind``, given its own section of the settings
    and the site directory; an unknown name raises UnknownBackend."""
    cls = registry.plugin(kind, getattr(settings.backends, kind))
    own: Any = None
    if cls.settings is not None:  # its section, e.g. settings.execution for "execution"
        own = settings
        for part in cls.section.split("."):
            own = getattr(own, part)
    return cls(BackendContext(db.engine, settings.state_path, own, directory))


def load_backends(
    settings: Settings, db: Database, directory: SiteDirectory | None = None
) -> dict[str, Backend]:
    backends = {kind: load_backend(settings, db, kind, directory) for kind in KINDS}
    vm = backends["vm"]
    if hasattr(vm, "use_storage"):  # os_tpl images uploaded onto storage volumes
        vm.use_storage(backends["storage"])
    return backends


def open_directory(settings: Settings) -> Directory | None:
    """The site's LDAP directory, or None when [ldap] has no url."""
    if not settings.ldap.url:
        return None
    from adapters.ldap import Directory

    return Directory(settings.ldap)


def negotiate_authenticator(settings: Settings, directory: Any) -> Authenticator:
    from adapters.kerberos import PrincipalMapper, SPNEGOAcceptor
    from gateway.auth.negotiate import NegotiateAuthenticator

    options = settings.auth.negotiate
    return NegotiateAuthenticator(
        SPNEGOAcceptor(settings.negotiate_service, options.keytab),
        PrincipalMapper.from_config(options.realms),
        directory,
        require_vo_membership=options.require_vo_membership,
    )


def build_runtime(settings: Settings, *, with_backends: bool = True) -> Runtime:
    db = open_database(settings)
    keyring = KeyRing(db, settings.auth.tokens)
    tokens = TokenService(keyring, settings.auth.tokens, settings.token_issuer)
    directory = open_directory(settings)
    backends = load_backends(settings, db, directory) if with_backends else {}
    vo_backend = backends.get("vo")
    vo_tokens = resolver = None
    if isinstance(vo_backend, VOBackend):
        vo_tokens = VOTokenService(
            tokens,
            settings.vo,
            vo_backend.membership_epoch,
            authority=settings.vo.entitlement_authority or settings.token_issuer,
            epoch_cached=getattr(vo_backend, "cached_epoch", None),
        )
        resolver = MembershipResolver(vo_backend)
    by_name: dict[str, Authenticator] = {
        "bearer": BearerAuthenticator(tokens, settings.auth.realm, vo_tokens),
        "basic": BasicAuthenticator(db, settings.auth.realm, settings.auth.basic_cache_seconds),
        "wss": WSSecurityAuthenticator(db, settings.auth.wss),
    }
    if "negotiate" in settings.auth.chain:
        by_name["negotiate"] = negotiate_authenticator(settings, directory)
    if "x509" in settings.auth.chain:
        by_name["x509"] = X509Authenticator(settings.auth.x509)
    saml = None
    if settings.saml.enabled:
        from gateway.saml.authenticator import SAMLSessionAuthenticator
        from gateway.saml.sp import ServiceProvider

        saml = ServiceProvider(settings, db, local_vo_lookup(vo_backend))
        by_name["saml"] = SAMLSessionAuthenticator(saml)
    chain = AuthChain([by_name[name] for name in settings.auth.chain])
    return Runtime(
        settings, db, keyring, tokens, chain, backends, directory, vo_tokens, resolver, saml=saml
    )


def local_vo_lookup(vo_backend: Backend | None) -> Callable[[str], bool]:
    """Whether the VO backend manages a VO of that name (asked once per SAML login)."""
    if not isinstance(vo_backend, VOAdministration):
        return lambda _name: False
    administration = vo_backend

    def local(name: str) -> bool:
        try:
            administration.get_vo(name)
        except UnknownResource:
            return False
        except InvalidRequest:  # not even a valid VO name here
            return False
        return True

    return local


def current() -> Runtime:
    return flask.current_app.extensions[EXTENSION]
