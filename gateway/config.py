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

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
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
    chain: list[Literal["bearer", "basic"]] = Field(default_factory=lambda: ["bearer", "basic"])
    realm: str = "xtreemgate"
    # A verified Basic credential is remembered this long, so the KDF runs once, not per
    # request. 0 disables the cache.
    basic_cache_seconds: int = Field(60, ge=0, le=3600)
    tokens: TokenSettings = Field(default_factory=TokenSettings)


class VOPoolSettings(Section):
    """A pool of POSIX accounts a VO's members lease from. The accounts must exist on
    every resource the VO's work runs on (same name, uid, gid), e.g. made once by the
    site's provisioning; adding or removing a VO member changes nothing there."""

    # Names, or ranges "vo1pool001..vo1pool050" (the numeric suffix counts up).
    accounts: list[str] = Field(default_factory=list)
    uid_start: int = Field(ge=1, description="uid of the first account; the next count up")
    gid: int = Field(ge=0)
    home: str = "/home/{username}"

    @field_validator("accounts")
    @classmethod
    def _ranges(cls, value: list[str]) -> list[str]:
        from backends.vo.accounts import expand_accounts

        expand_accounts(value)  # raises ValueError naming the bad entry
        return value


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
    # How often each process asks the database whether policies/VOs changed (one
    # SELECT of a counter); changes made by this process apply at once.
    refresh_interval: float = Field(1.0, ge=0.0, le=300.0)
    # A principal's memberships are remembered this long per process.
    membership_cache_seconds: float = Field(5.0, ge=0.0, le=3600.0)
    # Owner-only compatibility: any authenticated user may create/list at a factory.
    # Set false so that only VO policy grants creating work.
    open_factory: bool = True
    # AARC-G002 entitlements: urn:<namespace>:group:<vo>...#<authority>
    entitlement_namespace: str = "urn:geant:xtreemgate"
    entitlement_authority: str = ""  # default: the token issuer
    # A pool lease not used this long is released (unless its holder still has work).
    lease_idle_seconds: int = Field(7 * 86400, ge=1)
    # Pools per VO ("cms") or per VO and role ("cms:production").
    pools: dict[str, VOPoolSettings] = Field(default_factory=dict)
    # Principals with an account of their own: name -> "username:uid:gid[:home]".
    own_accounts: dict[str, str] = Field(default_factory=dict)
    # Audit records are written by a background thread at most this often, in batches.
    audit_flush_seconds: float = Field(0.5, ge=0.01, le=60.0)
    tokens: VOTokenSettings = Field(default_factory=VOTokenSettings)
    trusted_issuers: list[TrustedIssuer] = Field(default_factory=list)
    jwks_cache_seconds: int = Field(300, ge=1)
    # An unknown kid re-fetches the issuer's JWKS at most this often.
    jwks_refetch_interval: float = Field(10.0, ge=0.0)
    # How often a remote issuer's revocation list is fetched.
    revocation_refresh: float = Field(15.0, ge=0.0)


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
    vo: VOSettings = Field(default_factory=VOSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
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
