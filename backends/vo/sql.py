"""The ``sql`` VO backend: the plugin that puts the VO parts together on the SQL store.

Each job is a part of its own, and this class only builds them on one
:class:`~backends.vo.sessions.Sessions` and hands each contract method to the part that
does it: VOs, groups, roles and managers (:mod:`~backends.vo.organisations`), members
(:mod:`~backends.vo.members`), what a principal holds now and the revocation epochs
(:mod:`~backends.vo.memberships`), the resource registry (:mod:`~backends.vo.resources`),
the policy store (:mod:`~backends.vo.policies`), the decision index that decide() answers
from without the database (:mod:`~backends.vo.decisions`), account mapping and leases
(:mod:`~backends.vo.mapping`, :mod:`~backends.vo.accounts`) and the audit trail
(:mod:`~backends.vo.audit`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import datetime
from typing import Concatenate, Generic, ParamSpec, TypeVar, overload

from sqlalchemy import func, select

from backends.contracts.interfaces import BackendContext, VOBackend
from backends.contracts.model import HealthReport, LocalAccount, Principal
from backends.store.tables.vo import VO, AuditRecord
from backends.vo.accounts import (
    AccountSource,
    ActivityProbe,
    ConfigAccountSource,
    LeaseManager,
    ldap_account_source,
    processes_running_as,
)
from backends.vo.audit import AuditWriter, Usage
from backends.vo.decisions import DecisionIndex
from backends.vo.mapping import map_account, release_idle
from backends.vo.members import Members
from backends.vo.memberships import Memberships
from backends.vo.organisations import Organisations
from backends.vo.policies import PolicyStore
from backends.vo.resources import ResourceRegistry
from backends.vo.sessions import Sessions, version
from backends.vo.settings import SQLVOSettings

T = TypeVar("T")
P = ParamSpec("P")
R = TypeVar("R")


class _Part(Generic[T, P, R]):
    """A method of the backend that is the method of one of its parts, as it stands there
    (same signature, same docstring): ``add_member = _Part("members", Members.add_member)``
    answers ``backend.members.add_member``. The bound method is kept on the instance at
    first use (the parts are built once, in ``__init__``), so that decide() costs no more
    than a method of the backend itself."""

    def __init__(self, part: str, method: Callable[Concatenate[T, P], R]) -> None:
        self.part = part
        self.method = method.__name__
        self.attribute = self.method
        functools.update_wrapper(self, method)

    def __set_name__(self, owner: type, name: str) -> None:
        self.attribute = name

    @overload
    def __get__(self, backend: None, owner: type | None = None) -> _Part[T, P, R]: ...
    @overload
    def __get__(self, backend: object, owner: type | None = None) -> Callable[P, R]: ...
    def __get__(
        self, backend: object | None, owner: type | None = None
    ) -> _Part[T, P, R] | Callable[P, R]:
        if backend is None:
            return self
        bound = getattr(getattr(backend, self.part), self.method)
        backend.__dict__[self.attribute] = bound
        return bound


class SQLVOBackend(VOBackend):
    name = "sql"
    settings = SQLVOSettings

    def __init__(self, context: BackendContext[SQLVOSettings]) -> None:
        super().__init__(context)
        options = SQLVOSettings.of(context.settings)
        self.db = Sessions(context.engine)
        self.refresh_interval = float(options.refresh_interval)
        self.membership_ttl = float(options.membership_cache_seconds)
        self.open_factory = options.open_factory
        self.accounts: AccountSource = ConfigAccountSource(options.pools, options.own_accounts)
        if context.directory is not None:  # the site directory first, then the config
            self.accounts = ldap_account_source(context.directory, self.accounts)
        # no pool anywhere (the embedded defaults): members' work runs as the default account
        self.pools_configured = bool(options.pools) or context.directory is not None
        self.leases = LeaseManager(self.db, options.lease_idle_seconds, processes_running_as)
        self.audit = AuditWriter(self.db, float(options.audit_flush_seconds))
        self.decisions = DecisionIndex(
            self.db,
            self.audit,
            refresh_interval=self.refresh_interval,
            open_factory=self.open_factory,
        )
        self.memberships = Memberships(self.db, self.decisions, self.membership_ttl)
        self.organisations = Organisations(self.db)
        self.members = Members(self.db)
        self.resources = ResourceRegistry(self.db)
        self.policies = PolicyStore(self.db)

    # -- wiring hooks --------------------------------------------------------------------
    def use_account_source(self, source: AccountSource) -> None:
        """Where own and pool accounts come from, instead of the config and the directory."""
        self.accounts = source
        self.pools_configured = True

    def use_activity_probe(self, probe: ActivityProbe) -> None:
        """Whether an account's last holder still has running work (execution records)."""
        self.leases.probe = probe

    def health(self) -> HealthReport:
        try:
            with self.db.session() as session:
                at = version(session)
                vos = session.scalar(select(func.count()).select_from(VO))
        except Exception as exc:
            return HealthReport(False, f"VO store unreachable: {exc}")
        if at is None:
            return HealthReport(False, "VO tables missing: run 'xtreemgate db upgrade'")
        return HealthReport(True, "VO store reachable", {"vos": vos, "policy_version": at})

    def close(self) -> None:
        self.audit.close()

    # -- decisions, from the compiled index ----------------------------------------------
    decide = _Part("decisions", DecisionIndex.decide)
    index = _Part("decisions", DecisionIndex.current)
    is_manager = _Part("decisions", DecisionIndex.is_manager)
    resource_owner = _Part("decisions", DecisionIndex.resource_owner)

    # -- what a principal holds now ------------------------------------------------------
    memberships_of = _Part("memberships", Memberships.memberships_of)
    cached_memberships = _Part("memberships", Memberships.cached_memberships)
    membership_expiry = _Part("memberships", Memberships.membership_expiry)
    membership_epoch = _Part("memberships", Memberships.membership_epoch)
    cached_epoch = _Part("memberships", Memberships.cached_epoch)
    revocations = _Part("memberships", Memberships.revocations)

    # -- VOs, groups, roles, managers ----------------------------------------------------
    create_vo = _Part("organisations", Organisations.create_vo)
    list_vos = _Part("organisations", Organisations.list_vos)
    get_vo = _Part("organisations", Organisations.get_vo)
    delete_vo = _Part("organisations", Organisations.delete_vo)
    add_group = _Part("organisations", Organisations.add_group)
    remove_group = _Part("organisations", Organisations.remove_group)
    add_role = _Part("organisations", Organisations.add_role)
    remove_role = _Part("organisations", Organisations.remove_role)
    add_manager = _Part("organisations", Organisations.add_manager)
    remove_manager = _Part("organisations", Organisations.remove_manager)

    # -- members -------------------------------------------------------------------------
    add_member = _Part("members", Members.add_member)
    update_member = _Part("members", Members.update_member)
    remove_member = _Part("members", Members.remove_member)
    list_members = _Part("members", Members.list_members)
    member = _Part("members", Members.member)

    # -- registered resources ------------------------------------------------------------
    register_resource = _Part("resources", ResourceRegistry.register_resource)
    unregister_resource = _Part("resources", ResourceRegistry.unregister_resource)
    list_resources = _Part("resources", ResourceRegistry.list_resources)

    # -- policies ------------------------------------------------------------------------
    put_policy = _Part("policies", PolicyStore.put_policy)
    get_policy = _Part("policies", PolicyStore.get_policy)
    policy_history = _Part("policies", PolicyStore.policy_history)

    # -- accounts ------------------------------------------------------------------------
    def account_for(self, principal: Principal, vo: str = "", role: str = "") -> LocalAccount:
        """The principal's own account, else a lease from the VO's (role's) pool;
        :class:`NoAccountPools` (NotSupported) where the site configures no pool."""
        return map_account(
            self.accounts, self.leases, principal, vo, role, pools_configured=self.pools_configured
        )

    def release_idle_leases(self) -> int:
        """Housekeeping (e.g. hourly): give back every lease idle for
        ``vo.lease_idle_seconds`` whose holder runs nothing; returns how many. Without it
        an idle lease is given back when its pool runs out."""
        return release_idle(self.accounts, self.leases)

    # -- accounting ----------------------------------------------------------------------
    record = _Part("audit", AuditWriter.record)

    def audit_records(
        self, *, vo: str | None = None, limit: int = 100, before_id: int | None = None
    ) -> list[AuditRecord]:
        """The audit trail, newest first (rows of ``audit_records``)."""
        return self.audit.records(vo=vo, limit=limit, before_id=before_id)

    def usage(
        self, vo: str, since: datetime | None = None, until: datetime | None = None
    ) -> list[Usage]:
        self.organisations.require(vo)
        return self.audit.usage(vo, since, until)
