"""The gateway's configuration: one TOML file, every key overridable from the environment.

A key ``section.key`` in the file is ``XTREEMGATE_SECTION__KEY`` in the environment (nested
sections use ``__`` too); the environment wins over the file. Everything is validated at
start: an unknown key, a wrong type or a bad value stops the gateway with a message that
names the key and says what is wrong (see :class:`ConfigError`).

The gateway declares its own sections here; every installed backend plugin declares its
own (``settings`` at the key path ``section`` on its class, see
``backends.contracts.interfaces.Backend``), and :func:`settings_model` joins them all into
one model, so a site's plugin found by entry point is configured like the built-in ones.
"""

from __future__ import annotations

import functools
import inspect
import os
import socket
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    Field,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from adapters.ldap.config import DirectoryConfig
from backends.contracts import registry
from backends.contracts.settings import Section

ENV_PREFIX = "XTREEMGATE_"
ENV_CONFIG_PATH = "XTREEMGATE_CONFIG"
DEFAULT_CONFIG_NAME = "xtreemgate.toml"


class ServerSettings(Section):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)
    workers: int = Field(1, ge=1, le=256)
    # The address clients use to reach the gateway (behind a proxy it differs from
    # host:port); it appears in WSDL addresses, EPRs and as the token issuer.
    public_url: str = ""
    # Trust X-Forwarded-* from these proxies (uvicorn's forwarded_allow_ips).
    forwarded_allow_ips: str = "127.0.0.1"


class DatabaseSettings(Section):
    # Embedded default: a SQLite file under state_dir. Production: postgresql+psycopg://…
    url: str = ""
    pool_size: int = Field(5, ge=1, le=200)
    echo: bool = False

    @field_validator("url")
    @classmethod
    def _known_dialect(cls, value: str) -> str:
        if value and not value.startswith(("sqlite", "postgresql")):
            raise ValueError("only sqlite:/// and postgresql+psycopg:// URLs are supported")
        return value


class BackendSettings(Section):
    """Which implementation serves each backend kind, by entry-point name."""

    execution: str = "local"
    vm: str = "libvirt"
    storage: str = "posix"
    vo: str = "sql"


class OCCISettings(Section):
    # The longest collection answered in one piece; a longer one is refused with 413 and
    # the client pages through it with ?page=&number= (number is capped by this too).
    max_collection: int = Field(10000, ge=1, le=1_000_000)
    # How long os_tpl mixins (the backend's image templates) are cached, seconds.
    template_refresh: int = Field(30, ge=0, le=3600)


class StorageImagesSettings(Section):
    """The ``[storage]`` key the gateway reads itself (the storage plugin declares the
    rest of the section)."""

    # VM images (xtreemgate image upload|list|delete; OCCI os_tpl): this volume's images/
    image_volume: str = ""


class TokenSettings(Section):
    issuer: str = ""  # default: server.public_url if set, else urn:xtreemgate:<fqdn>
    audience: str = "xtreemgate"
    lifetime: int = Field(3600, ge=60, le=30 * 86400, description="seconds")
    algorithm: Literal["ES256", "RS256", "EdDSA"] = "ES256"
    leeway: int = Field(30, ge=0, le=600, description="clock skew allowed, seconds")
    # A new key is published in the JWKS this long before it signs, so that verifiers
    # caching the JWKS know it before they see a token signed with it.
    publish_ahead: int = Field(0, ge=0, le=86400)
    # How often a gateway process re-reads the key ring from the database.
    key_refresh: int = Field(30, ge=1, le=3600)
    # Encrypts the private keys at rest in the database (set it in production).
    key_passphrase: str = ""


class RealmRule(Section):
    """A principal of the realm must match ``match`` (whole); the user is ``replace``
    with \\1 / \\g<name> filled in."""

    match: str
    replace: str


class NegotiateSettings(Section):
    """HTTP Negotiate (SPNEGO, RFC 4559) with Kerberos: ``negotiate`` in auth.chain."""

    # The service's keytab (KRB5_KTNAME for the whole process); "" = the environment's
    # KRB5_KTNAME, else the system default /etc/krb5.keytab.
    keytab: str = ""
    # GSS host-based service name, "HTTP@<host>"; "" = HTTP@<host of server.public_url,
    # else this machine's FQDN>; "*" = any service key in the keytab.
    service: str = ""
    # Realm -> how its principals become user names: "strip" (alice@XG.TEST -> alice),
    # "keep" (the whole principal), or {match = regex, replace = template}. A principal
    # of a realm not listed here is refused (cross-realm users need their realm listed).
    realms: dict[str, str | RealmRule] = Field(default_factory=dict)
    # Refuse (403) a Kerberos user who has no VO membership in the LDAP directory, at the
    # door; false lets them in with no memberships and leaves it to VO policy.
    require_vo_membership: bool = False

    @field_validator("realms")
    @classmethod
    def _rules_usable(cls, realms: dict[str, Any]) -> dict[str, Any]:
        from adapters.kerberos import make_rule

        for realm, rule in realms.items():
            try:
                make_rule(rule)
            except ValueError as exc:
                raise ValueError(f"realm {realm}: {exc}") from exc
        return realms


class WSSecuritySettings(Section):
    """WS-Security UsernameToken on the SOAP endpoint."""

    # PasswordText sends the password itself: accept it only over TLS ("tls"), over TLS
    # or from the loopback interface ("tls-or-loopback"), or never.
    password_text: Literal["tls", "tls-or-loopback", "never"] = "tls-or-loopback"  # noqa: S105
    # A token's wsu:Created may be this old (and this far in the future, for clock skew);
    # nonces are remembered in the database for the same window, so a replay fails in
    # every gateway process.
    max_age: int = Field(300, ge=10, le=3600, description="seconds")
    clock_skew: int = Field(60, ge=0, le=600, description="seconds")


class X509Settings(Section):
    """Client certificates verified by the TLS-terminating reverse proxy in front.

    The proxy passes the certificate (URL-escaped PEM, as nginx's
    ``$ssl_client_escaped_cert``), its verification result, and a shared secret that
    proves the headers came from the proxy and not from a client."""

    cert_header: str = "x-ssl-client-cert"
    verify_header: str = "x-ssl-client-verify"  # must say SUCCESS
    secret_header: str = "x-xtreemgate-proxy-secret"  # noqa: S105 - a header name
    proxy_secret: str = ""
    # Optional PEM bundle: the certificate must also be issued directly by one of these.
    ca_file: str = ""


class AuthSettings(Section):
    # Authenticators tried in this order; the first that finds its credential decides.
    # "wss" (WS-Security UsernameToken) only ever finds one in a SOAP request's header.
    # "x509" (client certificates via the TLS proxy) needs auth.x509.proxy_secret.
    # "negotiate" (Kerberos SPNEGO) needs auth.negotiate.realms.
    # "saml" is the SAML login session cookie (needs saml.enabled).
    chain: list[Literal["bearer", "basic", "negotiate", "wss", "x509", "saml"]] = Field(
        default_factory=lambda: ["bearer", "basic", "wss"]
    )
    realm: str = "xtreemgate"
    # A verified Basic credential is remembered this long, so the KDF runs once, not per
    # request. 0 disables the cache.
    basic_cache_seconds: int = Field(60, ge=0, le=3600)
    tokens: TokenSettings = Field(default_factory=TokenSettings)
    negotiate: NegotiateSettings = Field(default_factory=NegotiateSettings)
    wss: WSSecuritySettings = Field(default_factory=WSSecuritySettings)
    x509: X509Settings = Field(default_factory=X509Settings)

    @model_validator(mode="after")
    def _x509_needs_a_secret(self) -> AuthSettings:
        if "x509" in self.chain and not self.x509.proxy_secret:
            raise ValueError(
                "auth.x509.proxy_secret must be set when x509 is in auth.chain (the proxy "
                "sends it so that clients cannot forge certificate headers)"
            )
        return self

    @model_validator(mode="after")
    def _negotiate_has_realms(self) -> AuthSettings:
        if "negotiate" in self.chain and not self.negotiate.realms:
            raise ValueError(
                "auth.chain has negotiate but auth.negotiate.realms maps no realm: every "
                'Kerberos user would be refused (add e.g. "EXAMPLE.ORG" = "strip")'
            )
        return self


class BESSettings(Section):
    """The OGSA-BES endpoint at /bes."""

    common_name: str = "xtreemgate BES"
    # GetFactoryAttributesDocument lists at most this many of the caller's activities.
    max_activity_references: int = Field(100, ge=0, le=10000)
    # A parameter sweep expands into at most this many activities.
    max_sweep: int = Field(1000, ge=1, le=100000)
    # Activities named in one batch request (GetActivityStatuses & co.).
    max_batch: int = Field(10000, ge=1, le=1000000)
    max_request_bytes: int = Field(4 * 1024 * 1024, ge=1024, le=256 * 1024 * 1024)
    # CreateActivity answers once the activity is recorded Pending; this many threads per
    # gateway process hand activities to the execution backend, and at most launch_queue
    # may wait (beyond that, CreateActivity waits for room).
    launch_workers: int = Field(2, ge=1, le=64)
    launch_queue: int = Field(10000, ge=1, le=1000000)
    # Launches that arrive while another is being handed over wait up to
    # launch_batch_window_seconds and go together, at most launch_batch of them (Slurm: one
    # job array, one sbatch). launch_batch = 1 hands every activity over on its own.
    launch_batch: int = Field(100, ge=1, le=1000)
    launch_batch_window_seconds: float = Field(0.02, ge=0, le=5)
    # A process claims the activities it hands over for this long, renewed while it
    # lives; when a process dies (kill -9, host crash), another one (or it, restarted)
    # hands them over again once the claim ran out, without starting any twice.
    handover_lease_seconds: float = Field(30, ge=1, le=3600)


class VOTokenSettings(Section):
    # VO attribute tokens are short-lived: a remote gateway learns of a revocation at
    # the latest after this (or at its next revocation-list fetch).
    lifetime: int = Field(300, ge=30, le=86400, description="seconds")
    audience: str = "xtreemgate-vo"


class TrustedIssuer(Section):
    """Another xtreemgate whose VO tokens this one accepts (federation)."""

    issuer: str
    jwks_url: str
    revocations_url: str = ""  # default: <issuer origin of jwks_url>/api/v1/vo/revocations
    vos: list[str] = Field(default_factory=lambda: ["*"])  # VOs it may assert


class VOSettings(Section):
    """The ``[vo]`` keys the gateway reads itself: VO tokens, AARC entitlements and the
    federation's trusted issuers (the VO plugin declares the rest of the section)."""

    # AARC-G002 entitlements: urn:<namespace>:group:<vo>...#<authority>
    entitlement_namespace: str = "urn:geant:xtreemgate"
    entitlement_authority: str = ""  # default: the token issuer
    tokens: VOTokenSettings = Field(default_factory=VOTokenSettings)
    trusted_issuers: list[TrustedIssuer] = Field(default_factory=list)
    jwks_cache_seconds: int = Field(300, ge=1)
    # An unknown kid re-fetches the issuer's JWKS at most this often.
    jwks_refetch_interval: float = Field(10.0, ge=0.0)
    # How often a remote issuer's revocation list is fetched.
    revocation_refresh: float = Field(15.0, ge=0.0)


class FederationSource(Section):
    """One federation's metadata aggregate (eduGAIN, a national federation, or one IdP)."""

    # A file path or an https:// URL.
    source: str
    # PEM certificate of the federation's metadata signing key; the aggregate's
    # signature must verify against it. Unsigned metadata is never accepted.
    certificate: str
    # Re-read at least this often (seconds); a shorter cacheDuration in the document wins.
    refresh: int = Field(3600, ge=10, le=7 * 86400)
    # Refuse documents without validUntil (eduGAIN's metadata profile requires one).
    require_valid_until: bool = True
    max_bytes: int = Field(256 * 1024 * 1024, ge=1024)


class EntitlementAuthority(Section):
    """An AARC-G002 group authority (the ``#…`` of eduPersonEntitlement) whose
    entitlements the SP turns into VO memberships, and which IdPs may assert them.

    Nothing is trusted by default: an entitlement whose authority no entry names is
    dropped (and logged). ``vos = ["*"]`` means every VO *this gateway does not manage*;
    a local VO (one the VO backend holds) must be named here to be granted by an IdP."""

    authority: str
    # IdP entityIDs allowed to assert it; "*": any IdP of the configured federations.
    idps: list[str] = Field(default_factory=lambda: ["*"])
    vos: list[str] = Field(default_factory=lambda: ["*"])


class SAMLSettings(Section):
    """The SAML 2.0 service provider (gateway/saml)."""

    enabled: bool = False
    entity_id: str = ""  # default: <server.public_url>/saml/metadata
    # PEM files; empty: generated into <state_dir>/saml/ at first start.
    signing_key: str = ""
    signing_cert: str = ""
    encryption_key: str = ""
    encryption_cert: str = ""
    key_size: int = Field(3072, ge=2048, le=8192)
    # Display data in the SP metadata (mdui / Organization / ContactPerson).
    display_name: str = "xtreemgate"
    organization_url: str = ""
    contact_email: str = ""
    clock_skew: int = Field(180, ge=0, le=3600, description="seconds")
    want_response_signed: bool = False
    want_assertions_signed: bool = True
    want_assertions_encrypted: bool = False
    # "when_wanted": sign AuthnRequests for IdPs with WantAuthnRequestsSigned="true".
    sign_authn_requests: Literal["always", "when_wanted", "never"] = "when_wanted"
    allow_unsolicited: bool = False
    # RSA-SHA1 signatures and SHA-1 digests (SAML2int and eduGAIN want SHA-256; some IdPs
    # still sign with SHA-1).
    accept_sha1: bool = False
    request_lifetime: int = Field(600, ge=30, le=86400, description="seconds")
    session_lifetime: int = Field(8 * 3600, ge=60, le=7 * 86400, description="seconds")
    session_cookie: str = "xg_saml_session"
    # HMAC key of the session cookie; empty: generated into <state_dir>/saml/ (set it
    # when several gateway processes with different state_dirs share sessions).
    session_secret: str = ""
    # Attribute Name (urn:oid:…) or FriendlyName -> the name the gateway uses; merged over
    # the built-in eduPerson/SAML subject-id map.
    attribute_map: dict[str, str] = Field(default_factory=dict)
    # Which mapped attribute identifies the user, first present wins; "persistent-nameid"
    # is a persistent NameID qualified by the IdP.
    identifier: list[str] = Field(
        default_factory=lambda: [
            "subject-id",
            "pairwise-id",
            "eduPersonPrincipalName",
            "persistent-nameid",
        ]
    )
    # Attributes listed as RequestedAttribute in the SP metadata (mapped names).
    requested_attributes: list[str] = Field(
        default_factory=lambda: [
            "subject-id",
            "eduPersonPrincipalName",
            "displayName",
            "mail",
            "eduPersonEntitlement",
            "eduPersonScopedAffiliation",
        ]
    )
    # Attributes whose values are user@scope and must match the IdP's shibmd:Scope.
    scoped_attributes: list[str] = Field(
        default_factory=lambda: [
            "subject-id",
            "pairwise-id",
            "eduPersonPrincipalName",
            "eduPersonScopedAffiliation",
        ]
    )
    federations: list[FederationSource] = Field(default_factory=list)
    # eduPersonEntitlement (AARC-G002) -> VO memberships, only from these authorities.
    entitlement_authorities: list[EntitlementAuthority] = Field(default_factory=list)
    # eduPersonScopedAffiliation (member@example.org) -> membership of the VO named by the
    # scope (already checked against the IdP's shibmd:Scope); never of a local VO.
    affiliation_memberships: bool = True
    metadata_validity: int = Field(7 * 86400, ge=3600, description="validUntil of SP metadata")


class LoggingSettings(Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["json", "text"] = "json"
    access_log: bool = True


class Settings(BaseSettings):
    """All of xtreemgate's configuration."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        case_sensitive=False,
    )

    state_dir: str = "var"
    server: ServerSettings = Field(default_factory=ServerSettings)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    backends: BackendSettings = Field(default_factory=BackendSettings)
    # One section per backend kind, its keys declared by the installed plugins and joined
    # in by settings_model() (here: where they stand in the file, and the keys of [storage]
    # and [vo] the gateway reads itself).
    execution: Section = Field(default_factory=Section)
    vm: Section = Field(default_factory=Section)
    storage: StorageImagesSettings = Field(default_factory=StorageImagesSettings)
    vo: VOSettings = Field(default_factory=VOSettings)
    occi: OCCISettings = Field(default_factory=OCCISettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    ldap: DirectoryConfig = Field(default_factory=DirectoryConfig)
    bes: BESSettings = Field(default_factory=BESSettings)
    saml: SAMLSettings = Field(default_factory=SAMLSettings)
    logging: LoggingSettings = Field(default_factory=LoggingSettings)
    # The site's installed applications, for JSDL that names one instead of a program
    # (UNICORE style): name -> version -> absolute path ("default" when none is asked).
    applications: dict[str, dict[str, str]] = Field(default_factory=dict)

    @field_validator("applications")
    @classmethod
    def _absolute_executables(cls, value: dict[str, dict[str, str]]) -> dict:
        for name, versions in value.items():
            for version, path in versions.items():
                if not path.startswith("/"):
                    raise ValueError(
                        f"applications.{name}.{version}: {path!r} must be an absolute path"
                    )
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The TOML file's values arrive as init arguments; the environment beats them.
        return env_settings, init_settings

    @model_validator(mode="after")
    def _saml_session_needs_saml(self) -> Settings:
        if "saml" in self.auth.chain and not self.saml.enabled:
            raise ValueError(
                "auth.chain names 'saml' (the SAML session cookie) but saml.enabled is false"
            )
        return self

    # Derived values: defaults that depend on other keys.
    @property
    def state_path(self) -> Path:
        return Path(self.state_dir).resolve()

    @property
    def database_url(self) -> str:
        return self.database.url or f"sqlite:///{self.state_path / 'xtreemgate.db'}"

    @property
    def public_url(self) -> str:
        return (self.server.public_url or f"http://{self.server.host}:{self.server.port}").rstrip(
            "/"
        )

    @property
    def negotiate_service(self) -> str:
        """The GSS service name Negotiate accepts tickets for ("" = any in the keytab)."""
        service = self.auth.negotiate.service
        if service == "*":
            return ""
        if service:
            return service
        from urllib.parse import urlsplit

        host = urlsplit(self.server.public_url).hostname if self.server.public_url else None
        return f"HTTP@{host or this_host()}"

    @property
    def saml_entity_id(self) -> str:
        return self.saml.entity_id or f"{self.public_url}/saml/metadata"

    @property
    def token_issuer(self) -> str:
        """Stable across restarts and listen ports: tokens must outlive a port change."""
        return (
            self.auth.tokens.issuer
            or self.server.public_url.rstrip("/")
            or f"urn:xtreemgate:{this_host()}"
        )


@functools.cache
def this_host() -> str:
    """This machine's FQDN, asked once per process: getfqdn() may ask DNS, and derived
    settings (the token issuer) are read on every request."""
    return socket.getfqdn()


class ConfigError(Exception):
    """The configuration cannot be used; the message names each bad key and why."""

    def __init__(self, problems: list[str], source: str):
        self.problems = problems
        self.source = source
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"invalid configuration ({source}):\n{lines}")


def _env_name(loc: tuple[Any, ...]) -> str:
    return ENV_PREFIX + "__".join(str(part).upper() for part in loc)


def _describe(error: dict[str, Any]) -> str:
    loc = tuple(p for p in error["loc"] if not isinstance(p, int))
    key = ".".join(str(p) for p in error["loc"]) or "(top level)"
    message = error["msg"]
    if error["type"] == "extra_forbidden":
        message = "unknown key (check the spelling against xtreemgate.example.toml)"
    elif "input" in error and not isinstance(error["input"], dict):
        message = f"{message} (got {error['input']!r})"
    return f"{key}: {message} [env {_env_name(loc)}]"


def config_path(explicit: str | os.PathLike[str] | None = None) -> Path | None:
    """The file to read: explicit path, then $XTREEMGATE_CONFIG, then ./xtreemgate.toml."""
    if explicit:
        return Path(explicit)
    if os.environ.get(ENV_CONFIG_PATH):
        return Path(os.environ[ENV_CONFIG_PATH])
    default = Path(DEFAULT_CONFIG_NAME)
    return default if default.exists() else None


class SettingsConflict(ValueError):
    """Installed plugins declare settings that cannot be joined into one configuration."""


@functools.cache
def settings_model() -> type[Settings]:
    """:class:`Settings` with the sections of every installed plugin (read once per
    process from the entry points; ``settings_model.cache_clear()`` reads them again).

    A section several parties declare (plugins of one kind; the gateway and a plugin) is
    one model that inherits all of theirs; a deeper path (``execution.site``) is a
    sub-section of its parent."""
    tree = _SectionNode()
    for path, models in registry.declared_sections().items():
        node = tree
        for part in path.split("."):
            node = node.children.setdefault(part, _SectionNode())
        node.models.extend(models)
    fields: dict[str, Any] = {}
    for name, node in tree.children.items():
        own = Settings.model_fields.get(name)
        gateway_part = own.annotation if own is not None else Section
        if not (isinstance(gateway_part, type) and issubclass(gateway_part, Section)):
            raise SettingsConflict(f"config key {name} is the gateway's, not a plugin's section")
        if gateway_part is not Section:  # the keys of this section the gateway reads itself
            node.models.insert(0, gateway_part)
        fields[name] = _field(node.join(name))
    return create_model("Settings", __base__=Settings, __module__=__name__, **fields)


class _SectionNode:
    """One config section while the plugins' declarations are joined."""

    def __init__(self) -> None:
        self.models: list[type[Section]] = []
        self.children: dict[str, _SectionNode] = {}

    def join(self, path: str) -> type[Section]:
        models = tuple(dict.fromkeys(self.models)) or (Section,)
        _check_disjoint(path, models)
        for name in self.children:
            if any(name in model.model_fields for model in models):
                raise SettingsConflict(f"config key {path}.{name} is a key and a section")
        subsections = {
            name: _field(child.join(f"{path}.{name}")) for name, child in self.children.items()
        }
        if len(models) == 1 and not subsections:
            return models[0]
        title = "".join(part.title() for part in path.replace("_", ".").split(".")) + "Section"
        return create_model(title, __base__=models, __module__=__name__, **subsections)


def _field(model: type[Section]) -> tuple[type[Section], Any]:
    """A section field: its defaults when the file leaves it out (unless it needs keys)."""
    needs_keys = any(f.is_required() for f in model.model_fields.values())
    return model, (Field() if needs_keys else Field(default_factory=model))


def _check_disjoint(path: str, models: tuple[type[Section], ...]) -> None:
    """Two models may share a key only through one class that declares it (a kind's
    shared settings); otherwise one would silently win over the other."""
    owners: dict[str, type] = {}
    for model in models:
        for key in model.model_fields:
            owner = next(c for c in model.__mro__ if key in inspect.get_annotations(c))
            if owners.setdefault(key, owner) is not owner:
                raise SettingsConflict(
                    f"config key {path}.{key} is declared twice: by "
                    f"{owners[key].__module__}.{owners[key].__qualname__} and "
                    f"{owner.__module__}.{owner.__qualname__}"
                )


def load_settings(path: str | os.PathLike[str] | None = None, **overrides: Any) -> Settings:
    """Read, merge and validate the configuration, or raise :class:`ConfigError`."""
    file = config_path(path)
    source = f"{file} + environment" if file else "built-in defaults + environment"
    data: dict[str, Any] = {}
    if file is not None:
        try:
            data = tomllib.loads(file.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ConfigError([f"config file not found: {file}"], source) from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError([f"not valid TOML: {exc}"], source) from exc
    _merge(data, overrides)
    try:
        model = settings_model()
    except (registry.BrokenPlugin, SettingsConflict) as exc:
        raise ConfigError([str(exc)], source) from exc
    try:
        return model(**data)
    except ValidationError as exc:
        raise ConfigError([_describe(e) for e in exc.errors()], source) from exc


def _merge(into: dict[str, Any], extra: dict[str, Any]) -> None:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value
