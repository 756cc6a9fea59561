"""Everything one gateway process holds: settings, store, backends, key ring, auth chain,
and the long-lived services the front ends share (activities and their launcher, the
OCCI service, the SAML service provider).

Built once by :func:`build_runtime` (the app factory, and CLI commands that need part of
it), each part a typed field, and closed in reverse order by :meth:`Runtime.close`;
handlers reach it through :func:`current`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar

import flask

from backends.contracts import registry
from backends.contracts.interfaces import (
    Backend,
    BackendContext,
    ExecutionBackend,
    InvalidRequest,
    SiteDirectory,
    StorageBackend,
    UnknownResource,
    VMBackend,
    VOAdministration,
    VOBackend,
)
from backends.contracts.model import HealthReport, Principal
from backends.services.activities import ActivityService
from backends.services.launcher import Launcher
from backends.store import Database
from backends.store.activities import ActivityStore
from backends.store.flags import CachedSwitch, ServiceFlags
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
    from gateway.occi.service import OCCIService
    from gateway.saml.sp import ServiceProvider

EXTENSION = "xtreemgate"
# Whether BES accepts new activities (BES-Management), shared by every gateway process.
ACCEPTING_FLAG = "bes.accepting_new_activities"
# Read from the store at most once a second per process: every process follows a
# Stop/StartAcceptingNewActivities within that, and CreateActivity pays no query for it.
ACCEPTING_TTL = 1.0

B = TypeVar("B", bound=Backend)


@dataclass(frozen=True)
class BackendServices:
    """The services that drive backends; a runtime built without backends has none."""

    activities: ActivityService
    launcher: Launcher
    occi: OCCIService


@dataclass
class Runtime:
    settings: Settings
    db: Database
    keyring: KeyRing
    tokens: TokenService
    chain: AuthChain
    activity_store: ActivityStore
    flags: ServiceFlags
    bes_accepting: CachedSwitch  # the BES accepting flag, cached ACCEPTING_TTL
    backends: dict[str, Backend] = field(default_factory=dict)
    directory: Directory | None = None  # when [ldap] url is set
    vo_tokens: VOTokenService | None = None
    memberships: MembershipResolver | None = None
    saml: ServiceProvider | None = None  # when saml.enabled
    services: BackendServices | None = None  # when built with backends

    # -- the backends, typed ------------------------------------------------------------
    @property
    def execution(self) -> ExecutionBackend:
        return typed_backend(self.backends, "execution", ExecutionBackend)

    @property
    def vm(self) -> VMBackend:
        return typed_backend(self.backends, "vm", VMBackend)

    @property
    def storage(self) -> StorageBackend:
        return typed_backend(self.backends, "storage", StorageBackend)

    @property
    def vo(self) -> VOBackend:
        return typed_backend(self.backends, "vo", VOBackend)

    # -- the services that drive them ---------------------------------------------------
    def _services(self) -> BackendServices:
        if self.services is None:
            raise RuntimeError("this runtime was built without backends, hence no services")
        return self.services

    @property
    def activities(self) -> ActivityService:
        """Submit, hand over, terminate and refresh activities on the execution backend."""
        return self._services().activities

    @property
    def launcher(self) -> Launcher:
        """Records new activities Pending and hands them over in worker threads."""
        return self._services().launcher

    @property
    def occi(self) -> OCCIService:
        return self._services().occi

    def open(self) -> None:
        """Ready to serve: again after :meth:`close` (a test client served twice), the
        launcher's workers start anew."""
        if self.services is not None:
            self.services.launcher.open()

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
        """Stop in reverse order of need: the launcher first (it finishes the launches
        already accepted, on the backends and the store), then what it used."""
        if self.services is not None:
            self.services.launcher.close()
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
    vm, storage = backends["vm"], backends["storage"]
    if isinstance(vm, VMBackend) and isinstance(storage, StorageBackend):
        vm.use_storage(storage)  # os_tpl images uploaded onto storage volumes
    return backends


def open_directory(settings: Settings) -> Directory | None:
    """The site's LDAP directory, or None when [ldap] has no url."""
    if not settings.ldap.url:
        return None
    from adapters.ldap import Directory

    return Directory(settings.ldap)


def negotiate_authenticator(settings: Settings, directory: Directory | None) -> Authenticator:
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
            epoch_cached=vo_backend.cached_epoch,
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
    store = ActivityStore(db.engine)  # one per process: its sessionmaker and group commit
    flags = ServiceFlags(db.engine)
    return Runtime(
        settings=settings,
        db=db,
        keyring=keyring,
        tokens=tokens,
        chain=chain,
        activity_store=store,
        flags=flags,
        bes_accepting=CachedSwitch(flags, ACCEPTING_FLAG, default=True, ttl=ACCEPTING_TTL),
        backends=backends,
        directory=directory,
        vo_tokens=vo_tokens,
        memberships=resolver,
        saml=saml,
        services=backend_services(settings, db, store, backends) if with_backends else None,
    )


def typed_backend(backends: dict[str, Backend], kind: str, interface: type[B]) -> B:
    """``backends[kind]`` as its interface (the registry loads only implementations of it)."""
    backend = backends.get(kind)
    if not isinstance(backend, interface):
        raise RuntimeError(f"this runtime has no {kind} backend (built without backends)")
    return backend


def backend_services(
    settings: Settings, db: Database, store: ActivityStore, backends: dict[str, Backend]
) -> BackendServices:
    """The services over the loaded backends, each made once for the process."""
    from gateway.occi.service import OCCIService

    launch = settings.bes
    activities = ActivityService(
        store,
        typed_backend(backends, "execution", ExecutionBackend),
        lease=timedelta(seconds=launch.handover_lease_seconds),
    )
    launcher = Launcher(
        activities,
        workers=launch.launch_workers,
        capacity=launch.launch_queue,
        batch=launch.launch_batch,
        batch_window=launch.launch_batch_window_seconds,
    )
    occi = OCCIService(
        settings=settings,
        db=db,
        vm=typed_backend(backends, "vm", VMBackend),
        vo=typed_backend(backends, "vo", VOBackend),
        storage=typed_backend(backends, "storage", StorageBackend),
    )
    return BackendServices(activities=activities, launcher=launcher, occi=occi)


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
