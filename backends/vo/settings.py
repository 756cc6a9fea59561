"""``[vo]`` as the SQL VO plugin reads it: policy refresh, membership cache, account
pools and own accounts, leases, audit. (The gateway's own ``[vo]`` keys, tokens and
federation, are declared in gateway/config.py; the section is the union of both.)"""

from __future__ import annotations

from pydantic import Field, field_validator

from backends.contracts.settings import Section
from backends.vo.accounts import expand_accounts


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
        expand_accounts(value)  # raises ValueError naming the bad entry
        return value


class SQLVOSettings(Section):
    """The SQL VO backend's keys of ``[vo]``."""

    # How often each process asks the database whether policies/VOs changed (one
    # SELECT of a counter); changes made by this process apply at once.
    refresh_interval: float = Field(1.0, ge=0.0, le=300.0)
    # A principal's memberships are remembered this long per process.
    membership_cache_seconds: float = Field(5.0, ge=0.0, le=3600.0)
    # Owner-only compatibility: any authenticated user may create/list at a factory.
    # Set false so that only VO policy grants creating work.
    open_factory: bool = True
    # A pool lease not used this long is released (unless its holder still has work).
    lease_idle_seconds: int = Field(7 * 86400, ge=1)
    # Pools per VO ("cms") or per VO and role ("cms:production").
    pools: dict[str, VOPoolSettings] = Field(default_factory=dict)
    # Principals with an account of their own: name -> "username:uid:gid[:home]".
    own_accounts: dict[str, str] = Field(default_factory=dict)
    # Audit records are written by a background thread at most this often, in batches.
    audit_flush_seconds: float = Field(0.5, ge=0.01, le=60.0)
