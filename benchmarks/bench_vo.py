"""Policy decisions/s with 1000 VOs and 100k members, and VO token verifications/s,
each beside a baseline measured in the same run.

Data is generated into a SQLite database in a temp folder (bulk inserts): 1000 VOs with
their default policy, 100 000 memberships (100 000 principals, one VO each, a tenth with a
role), one cluster per VO registered by one of 100 owners, every owner with a deny rule,
and a user policy for 1% of the principals. Decisions go through ``SQLVOBackend.decide``
(compiled index + audit record queued); the baselines are the owner-only decide that
came before it and a bare dict lookup of the same membership. Token verification is
``VOTokenService.verify`` (first sight: signature; reuse: cached claims + revocation
epoch check) beside a bare ``jwt.decode`` of the same token with the same key.

    .venv/bin/python benchmarks/bench_vo.py [--rounds 5] [--decisions 20000]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jwt
from sqlalchemy import insert

from backends.contracts.interfaces import BackendContext
from backends.contracts.model import Decision, PolicyDecision, Principal, Resource
from backends.store import Database, migrate
from backends.store.tables.vo import (
    VO,
    PolicyVersion,
    VOGroup,
    VOMember,
    VOResource,
    VORole,
    VOState,
)
from backends.vo.policy import DEFAULT_VO_POLICY
from backends.vo.settings import SQLVOSettings
from backends.vo.sql import SQLVOBackend
from gateway.auth.tokens import KeyRing, TokenService
from gateway.auth.vo_tokens import VOTokenService
from gateway.config import TokenSettings, VOSettings

N_VOS, N_MEMBERS, N_OWNERS = 1000, 100_000, 100


def generate(db: Database) -> None:
    now = datetime.now(UTC)
    with db.session() as s:
        s.execute(
            insert(VO),
            [
                {
                    "id": i + 1,
                    "name": f"vo{i:04d}",
                    "description": "",
                    "created_by": "bench",
                    "created_at": now,
                }
                for i in range(N_VOS)
            ],
        )
        s.execute(
            insert(VOGroup), [{"vo_id": i + 1, "path": "", "description": ""} for i in range(N_VOS)]
        )
        s.execute(
            insert(VORole),
            [{"vo_id": i + 1, "name": "production", "description": ""} for i in range(N_VOS)],
        )
        s.execute(
            insert(PolicyVersion),
            [
                {
                    "level": "vo",
                    "scope": f"vo{i:04d}",
                    "version": 1,
                    "document": DEFAULT_VO_POLICY,
                    "author": "bench",
                    "comment": "",
                    "created_at": now,
                }
                for i in range(N_VOS)
            ]
            + [
                {
                    "level": "owner",
                    "scope": f"owner{o:03d}",
                    "version": 1,
                    "author": "bench",
                    "comment": "",
                    "created_at": now,
                    "document": {
                        "rules": [
                            {"id": "no-delete", "effect": "deny", "actions": ["delete", "vm:*"]}
                        ]
                    },
                }
                for o in range(N_OWNERS)
            ]
            + [
                {
                    "level": "user",
                    "scope": f"user{u:06d}",
                    "version": 1,
                    "author": "bench",
                    "comment": "",
                    "created_at": now,
                    "document": {
                        "rules": [
                            {
                                "id": "tokens-read",
                                "effect": "deny",
                                "actions": ["*"],
                                "conditions": {"authenticated_by": ["vo-token"]},
                            }
                        ]
                    },
                }
                for u in range(0, N_MEMBERS, 100)
            ],
        )
        s.execute(
            insert(VOMember),
            [
                {
                    "vo_id": u % N_VOS + 1,
                    "principal": f"user{u:06d}",
                    "group_path": "",
                    "status": "active",
                    "roles": ["production"] if u % 10 == 0 else [],
                    "expires_at": None,
                    "requested_at": now,
                    "decided_by": "bench",
                    "decided_at": now,
                    "comment": "",
                }
                for u in range(N_MEMBERS)
            ],
        )
        s.execute(
            insert(VOResource),
            [
                {
                    "vo_id": i + 1,
                    "kind": "cluster",
                    "resource_id": f"cluster{i:04d}",
                    "owner": f"owner{i % N_OWNERS:03d}",
                    "registered_at": now,
                }
                for i in range(N_VOS)
            ],
        )
        s.execute(VOState.__table__.update().values(version=1))


def owner_only(principal: Principal, action: str, resource: Resource) -> PolicyDecision:
    """The decide() of the owner-only VO backend this one replaced (the old baseline)."""
    if principal.site_admin:
        return PolicyDecision(Decision.PERMIT, f"{principal.name} is a site admin")
    if resource.owner and resource.owner == principal.name:
        return PolicyDecision(Decision.PERMIT, f"{principal.name} owns {resource.kind}")
    if not resource.id and action in ("create", "list", "read-factory"):
        return PolicyDecision(Decision.PERMIT, f"any authenticated user may {action}")
    return PolicyDecision(Decision.DENY, f"{principal.name} may not {action} {resource.kind}")


def rate(fn: Callable[[], int]) -> float:
    start = time.perf_counter()
    n = fn()
    return n / (time.perf_counter() - start)


def rounds(name_fns: dict[str, Callable[[], int]], count: int) -> dict[str, list[float]]:
    """Alternate the contenders round by round, so a noisy neighbour hits all of them."""
    results: dict[str, list[float]] = {name: [] for name in name_fns}
    for _ in range(count):
        for name, fn in name_fns.items():
            results[name].append(rate(fn))
    return results


def show(title: str, results: dict[str, list[float]], baseline: str) -> None:
    print(f"\n{title}")
    base = statistics.median(results[baseline])
    for name, values in results.items():
        median = statistics.median(values)
        each = " ".join(f"{v:,.0f}" for v in values)
        print(f"  {name:<44} {median:>12,.0f}/s  ({median / base:5.2f}x baseline)  rounds: {each}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--decisions", type=int, default=20_000)
    parser.add_argument("--tokens", type=int, default=2_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="xg-bench-vo-") as tmp:
        url = f"sqlite:///{tmp}/bench.db"
        migrate.upgrade(url)
        db = Database(url)
        started = time.perf_counter()
        generate(db)
        policies = N_OWNERS + N_VOS + N_MEMBERS // 100
        print(
            f"generated {N_VOS} VOs, {N_MEMBERS:,} members, {N_VOS} resources, "
            f"{policies} policies in {time.perf_counter() - started:.1f} s"
        )
        backend = SQLVOBackend(
            BackendContext(db.engine, Path(tmp), SQLVOSettings(membership_cache_seconds=3600))
        )
        started = time.perf_counter()
        index = backend.index()
        print(
            f"compiled the policy index in {time.perf_counter() - started:.2f} s "
            f"({len(index.vo)} VO, {len(index.owner)} owner, {len(index.user)} user policies)"
        )

        rng = random.Random(7)
        users = [rng.randrange(N_MEMBERS) for _ in range(args.decisions)]
        started = time.perf_counter()
        principals = {
            u: Principal(
                f"user{u:06d}", "basic", memberships=backend.memberships_of(f"user{u:06d}")
            )
            for u in set(users)
        }
        print(
            f"resolved memberships of {len(principals):,} principals from the store in "
            f"{time.perf_counter() - started:.2f} s"
        )
        actions = ["submit", "read", "delete", "submit", "vm:start"]
        requests = []
        for i, u in enumerate(users):
            vo = u % N_VOS if i % 4 else rng.randrange(N_VOS)  # a quarter ask outside their VO
            requests.append(
                (principals[u], actions[i % len(actions)], Resource("cluster", f"cluster{vo:04d}"))
            )
        membership = {(p.name, m.vo) for p in principals.values() for m in p.memberships}
        offered = {("cluster", f"cluster{i:04d}"): f"vo{i:04d}" for i in range(N_VOS)}
        permits = sum(backend.decide(p, a, r).permitted for p, a, r in requests)
        print(
            f"{permits:,} of {len(requests):,} requests permitted (the others denied with a reason)"
        )

        def decide_all() -> int:
            for p, a, r in requests:
                backend.decide(p, a, r)
            return len(requests)

        def owner_only_all() -> int:
            for p, a, r in requests:
                owner_only(p, a, r)
            return len(requests)

        def dict_lookup_all() -> int:
            for p, _a, r in requests:
                _ = (p.name, offered[(r.kind, r.id)]) in membership
            return len(requests)

        results = rounds(
            {
                "SQLVOBackend.decide (3 levels, audited)": decide_all,
                "owner-only decide (previous backend)": owner_only_all,
                "bare dict lookup of the membership": dict_lookup_all,
            },
            args.rounds,
        )
        show(
            f"policy decisions ({N_VOS} VOs, {N_MEMBERS:,} members, {len(requests):,} per round)",
            results,
            "owner-only decide (previous backend)",
        )
        started = time.perf_counter()
        backend.audit.flush()
        drained = time.perf_counter() - started
        print(f"  audit: the writer thread's backlog drained {drained:.2f} s after the last round")

        keyring = KeyRing(db, TokenSettings())
        keyring.ensure()
        tokens = TokenService(keyring, TokenSettings(), "https://gw.example.org")
        vo_tokens = VOTokenService(
            tokens, VOSettings(), backend.membership_epoch, authority="gw.example.org"
        )
        holder = principals[users[0]]
        issued = [vo_tokens.issue(holder.name, holder.memberships)[0] for _ in range(args.tokens)]
        key = keyring.signing_key()
        one = issued[0]

        def verify_fresh() -> int:
            vo_tokens._verified.clear()  # every token seen for the first time
            for t in issued:
                vo_tokens.verify(t)
            return len(issued)

        def verify_reused() -> int:
            for _ in range(args.tokens * 10):
                vo_tokens.verify(one)
            return args.tokens * 10

        def bare_decode() -> int:
            for t in issued:
                jwt.decode(t, key.public, algorithms=[key.algorithm], audience="xtreemgate-vo")
            return len(issued)

        results = rounds(
            {
                "VOTokenService.verify, first sight": verify_fresh,
                "VOTokenService.verify, token reused": verify_reused,
                "bare jwt.decode (ES256), same tokens": bare_decode,
            },
            args.rounds,
        )
        show(
            f"VO token verification ({key.algorithm}, {len(holder.memberships)} membership(s))",
            results,
            "bare jwt.decode (ES256), same tokens",
        )
        backend.close()
        db.dispose()


if __name__ == "__main__":
    main()
