"""Which local account a principal's work runs as: (principal, VO, role) → account.

The principal's own account where the account source knows one; otherwise a lease on an
account of the pool of the VO (or of the VO's role, where that role has a pool of its
own). A site that configures no pool at all (the embedded defaults) maps nothing:
:class:`NoAccountPools`, and the work runs as ``execution.default_account``. Where
accounts come from and how leases are kept is backends/vo/accounts.py.
"""

from __future__ import annotations

from backends.contracts.model import LocalAccount, Principal
from backends.vo.accounts import AccountSource, LeaseManager
from backends.vo.errors import Invalid, NoAccountPools


def map_account(
    source: AccountSource,
    leases: LeaseManager,
    principal: Principal,
    vo: str,
    role: str,
    *,
    pools_configured: bool = True,
) -> LocalAccount:
    """The principal's own account, else a lease from the VO's (role's) pool."""
    own = source.own_account(principal.name)
    if own is not None:
        return own
    if not pools_configured:
        raise NoAccountPools(
            f"{principal.name} has no account of their own and this site configures no "
            "account pool ([vo.pools], or a directory's): work runs as "
            "execution.default_account"
        )
    if not vo:
        vos = principal.vos()
        if len(vos) != 1:
            raise Invalid(
                f"{principal.name} has no account of their own; name the VO to map to "
                f"(member of: {', '.join(vos) or 'none'})"
            )
        vo = vos[0]
    mine = [m for m in principal.memberships if m.vo == vo]
    if not mine:
        raise Invalid(f"{principal.name} is not an active member of VO {vo}")
    if role and not any(role in m.roles for m in mine):
        raise Invalid(f"{principal.name} does not hold role {role!r} in VO {vo}")
    pool = source.pool(vo, role)
    shared = [a.username for a in source.pool(vo)]
    key = f"{vo}:{role}" if role and [a.username for a in pool] != shared else vo
    return leases.lease(principal.name, key, pool)


def release_idle(source: AccountSource, leases: LeaseManager) -> int:
    """Give back every idle lease whose holder runs nothing; returns how many."""
    released = 0
    for key in sorted({lease.pool for lease in leases.leases()}):
        vo, _, role = key.partition(":")
        released += leases.release_idle(source.pool(vo, role))
    return released
