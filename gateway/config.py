"""The gateway's configuration: one TOML file, every key overridable from the environment.

A key ``section.key`` in the file is ``XTREEMGATE_SECTION__KEY`` in the environment (nested
sections use ``__`` too); the environment wins over the file. Everything is validated at
start: an unknown key, a wrong type or a bad value stops the gateway with a message that
names the key and says what is wrong (see :class:`ConfigError`).
"""

from __future__ import annotations

import os
import socket
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

ENV_PREFIX = "XTREEMGATE_"
ENV_CONFIG_PATH = "XTREEMGATE_CONFIG"
DEFAULT_CONFIG_NAME = "xtreemgate.toml"


class Section(BaseModel):
    """A config section: unknown keys are errors, so a typo never goes unnoticed."""

    model_config = ConfigDict(extra="forbid")


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


class ExecutionSettings(Section):
    work_dir: str = ""  # default: <state_dir>/activities


class VMSettings(Section):
    # libvirt URIs of the hypervisor hosts; the embedded default needs no daemon.
    uris: list[str] = Field(default_factory=lambda: ["test:///default"])


class StorageSettings(Section):
    root: str = ""  # default: <state_dir>/volumes


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


class AuthSettings(Section):
    # Authenticators tried in this order; the first that finds its credential decides.
    # "saml" is the SAML login session cookie (needs saml.enabled).
    chain: list[Literal["bearer", "basic", "saml"]] = Field(
        default_factory=lambda: ["bearer", "basic"]
    )
    realm: str = "xtreemgate"
    # A verified Basic credential is remembered this long, so the KDF runs once, not per
    # request. 0 disables the cache.
    basic_cache_seconds: int = Field(60, ge=0, le=3600)
    tokens: TokenSettings = Field(default_factory=TokenSettings)


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
    execution: ExecutionSettings = Field(default_factory=ExecutionSettings)
    vm: VMSettings = Field(default_factory=VMSettings)
    storage: StorageSettings = Field(default_factory=StorageSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    saml: SAMLSettings = Field(default_factory=SAMLSettings)
    logging: LoggingSettings = Field(default_factory=LoggingSettings)

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
    def saml_entity_id(self) -> str:
        return self.saml.entity_id or f"{self.public_url}/saml/metadata"

    @property
    def token_issuer(self) -> str:
        """Stable across restarts and listen ports: tokens must outlive a port change."""
        return (
            self.auth.tokens.issuer
            or self.server.public_url.rstrip("/")
            or f"urn:xtreemgate:{socket.getfqdn()}"
        )


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
        return Settings(**data)
    except ValidationError as exc:
        raise ConfigError([_describe(e) for e in exc.errors()], source) from exc


def _merge(into: dict[str, Any], extra: dict[str, Any]) -> None:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value
