"""Hierarchical policy: the rule language, its compiled form, and the one combiner.

A policy is data: a JSON document ``{"rules": [...]}`` checked against
``schemas/vo-policy.schema.json``. Each rule has an ``effect`` (permit | deny), the
``actions`` it covers (exact names or wildcards such as ``vm:*``), optionally the
``resources`` (``kinds``, ``ids``) and ``conditions`` on the caller (``vos``, ``groups``,
``roles``, ``principals``, ``authenticated_by``). Policies exist at three levels:

- **owner** (scope: the resource owner's name) — applies to every resource they own;
- **vo** (scope: the VO's name) — applies to what members do through that VO;
- **user** (scope: a principal's name) — applies to what that principal's requests do.

:func:`combine` decides, in this order (the first that applies wins):

1. a site admin is permitted;
2. a *deny* of the resource owner's policy that matches → deny (the owner's deny always
   wins, over every VO and over the owner's own fallback);
3. the caller's own user policy: a matching *deny* → deny; if it has *permit* rules, the
   request must match one of them (a user narrows, e.g. ``authenticated_by: [vo-token]``);
4. the owner fallback: an owner may act on what they own;
5. a VO's managers may manage that VO (resource kind ``vo``);
6. the resource owner's *permit* rule that names no VO condition permits directly;
7. the owner-only compatibility rule (``vo.open_factory``): create/list at a factory;
8. through a VO the caller is an active member of (the resource's VO when it names one,
   else each of the caller's VOs): the resource must be offered to that VO (registered
   into it by its owner, belonging to it, or an owner *permit* naming the VO), then the
   VO's policy must have a matching *permit* and no matching *deny* (the VO narrows);
9. otherwise deny, saying what was tried.

Every decision carries the rule that made it, with the policy's level, scope and version.
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from backends.contracts.model import Decision, PolicyDecision, Principal, Resource, VOMembership
from backends.vo.errors import Invalid

LEVELS = ("owner", "vo", "user")
FACTORY_ACTIONS = frozenset({"create", "list", "read-factory"})

# What a fresh VO starts with: its active members may use what owners offer it.
DEFAULT_VO_POLICY: dict[str, Any] = {
    "description": "default: members may do whatever the resource owners offer the VO",
    "rules": [{"id": "members-use-offered-resources", "effect": "permit", "actions": ["*"]}],
}


@lru_cache(maxsize=1)
def _validator() -> Any:
    import jsonschema

    from backends.vo.schema import policy_schema

    schema = policy_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def validate_document(document: Any) -> dict[str, Any]:
    """The document if it follows the schema; :class:`Invalid` naming where it does not."""
    errors = sorted(_validator().iter_errors(document), key=lambda e: list(e.absolute_path))
    if errors:
        problems = "; ".join(
            f"{'/'.join(str(p) for p in e.absolute_path) or '(document)'}: {e.message}"
            for e in errors[:5]
        )
        raise Invalid(f"policy does not follow schemas/vo-policy.schema.json: {problems}")
    return json.loads(json.dumps(document))


class Patterns:
    """Names or shell wildcards, matched with one set lookup or one regex."""

    __slots__ = ("any", "exact", "regex")

    def __init__(self, patterns: Iterable[str] | None) -> None:
        patterns = list(patterns) if patterns is not None else ["*"]
        self.any = "*" in patterns
        self.exact = frozenset(p for p in patterns if not any(c in p for c in "*?["))
        wild = [fnmatch.translate(p) for p in patterns if p not in self.exact]
        self.regex = re.compile("|".join(wild)) if wild and not self.any else None

    def __call__(self, value: str) -> bool:
        if self.any or value in self.exact:
            return True
        return bool(self.regex and self.regex.match(value))


@dataclass(frozen=True)
class Rule:
    """One compiled rule; ``label`` is what a decision names."""

    label: str
    effect: Decision
    actions: Patterns
    kinds: Patterns
    ids: Patterns
    vos: Patterns | None
    groups: tuple[str, ...] | None
    roles: Patterns | None
    principals: Patterns | None
    authenticated_by: frozenset[str] | None

    @property
    def names_vo(self) -> bool:
        return self.vos is not None or self.groups is not None or self.roles is not None

    def covers(self, action: str, resource: Resource) -> bool:
        return self.actions(action) and self.kinds(resource.kind) and self.ids(resource.id)

    def _membership_matches(self, m: VOMembership) -> bool:
        if self.vos is not None and not self.vos(m.vo):
            return False
        if self.groups is not None and not any(
            g == "" or m.group == g or m.group.startswith(g + "/") for g in self.groups
        ):
            return False
        return self.roles is None or any(self.roles(r) for r in m.roles)

    def applies_to(self, principal: Principal, vo: str | None = None) -> bool:
        """Whether the caller meets the conditions (through ``vo`` only, when given)."""
        if self.principals is not None and not self.principals(principal.name):
            return False
        if self.authenticated_by is not None and (
            principal.authenticated_by not in self.authenticated_by
        ):
            return False
        if not self.names_vo:
            return True
        return any(
            self._membership_matches(m) for m in principal.memberships if vo is None or m.vo == vo
        )


@dataclass(frozen=True)
class CompiledPolicy:
    level: str
    scope: str
    version: int
    permits: tuple[Rule, ...]
    denies: tuple[Rule, ...]

    def first(
        self,
        rules: Sequence[Rule],
        principal: Principal,
        action: str,
        resource: Resource,
        vo: str | None = None,
    ) -> Rule | None:
        for rule in rules:
            if rule.covers(action, resource) and rule.applies_to(principal, vo):
                return rule
        return None


def compile_policy(
    level: str, scope: str, version: int, document: Mapping[str, Any]
) -> CompiledPolicy:
    permits: list[Rule] = []
    denies: list[Rule] = []
    for position, raw in enumerate(document.get("rules", []), start=1):
        name = raw.get("id") or f"#{position}"
        conditions = raw.get("conditions", {})
        resources = raw.get("resources", {})
        optional = {
            key: Patterns(conditions[key]) if key in conditions else None
            for key in ("vos", "roles", "principals")
        }
        rule = Rule(
            label=f"rule '{name}' of the {level} policy of {scope} (v{version})",
            effect=Decision(raw["effect"]),
            actions=Patterns(raw["actions"]),
            kinds=Patterns(resources.get("kinds")),
            ids=Patterns(resources.get("ids")),
            groups=tuple(g.strip("/") for g in conditions["groups"])
            if "groups" in conditions
            else None,
            authenticated_by=frozenset(conditions["authenticated_by"])
            if "authenticated_by" in conditions
            else None,
            **optional,
        )
        (permits if rule.effect is Decision.PERMIT else denies).append(rule)
    return CompiledPolicy(level, scope, version, tuple(permits), tuple(denies))


@dataclass(frozen=True)
class Offer:
    """Who owns a registered resource and which VOs it is offered to."""

    owner: str
    vos: frozenset[str]


@dataclass
class PolicyIndex:
    """Everything decide() needs, in memory: rebuilt when the store's counter moves."""

    version: int = -1
    owner: dict[str, CompiledPolicy] = field(default_factory=dict)
    vo: dict[str, CompiledPolicy] = field(default_factory=dict)
    user: dict[str, CompiledPolicy] = field(default_factory=dict)
    offers: dict[tuple[str, str], Offer] = field(default_factory=dict)
    managers: dict[str, frozenset[str]] = field(default_factory=dict)


def _permit(reason: str) -> PolicyDecision:
    return PolicyDecision(Decision.PERMIT, reason)


def _deny(reason: str) -> PolicyDecision:
    return PolicyDecision(Decision.DENY, reason)


def standing_offer(index: PolicyIndex, resource: Resource) -> Offer | None:
    """The registration of ``resource``, if it agrees with what the resource's backend
    says: ownership comes from the backend, never from whoever registered it. With an
    owner from the backend (an activity's, a VM's record), only that owner's offer
    stands; with only a VO (a volume belongs to its VO), only an offer into that VO
    does, so a registration into another VO makes its registrant neither owner nor user.
    """
    offer = index.offers.get((resource.kind, resource.id)) if resource.id else None
    if offer is None:
        return None
    if resource.owner:
        return offer if offer.owner == resource.owner else None
    if resource.vo:
        return offer if resource.vo in offer.vos else None
    return offer


def combine(
    index: PolicyIndex,
    principal: Principal,
    action: str,
    resource: Resource,
    *,
    open_factory: bool = True,
) -> PolicyDecision:
    """The decision for one request (see the module docstring for the order)."""
    who = principal.name
    what = f"{resource.kind} {resource.id}".strip()
    if principal.site_admin:
        return _permit(f"{who} is a site admin")
    offer = standing_offer(index, resource)
    owner = resource.owner or (offer.owner if offer else "")
    owner_policy = index.owner.get(owner) if owner else None
    if owner_policy is not None:
        rule = owner_policy.first(owner_policy.denies, principal, action, resource)
        if rule is not None:
            return _deny(f"{action} on {what} denied by {rule.label} (an owner's deny wins)")
    user_policy = index.user.get(who)
    if user_policy is not None:
        rule = user_policy.first(user_policy.denies, principal, action, resource)
        if rule is not None:
            return _deny(f"{action} on {what} denied by {rule.label}")
        if user_policy.permits and not user_policy.first(
            user_policy.permits, principal, action, resource
        ):
            return _deny(
                f"{action} on {what} is outside what the user policy of {who} "
                f"(v{user_policy.version}) permits"
            )
    if owner and owner == who:
        return _permit(f"{who} owns {what} (owner rule; no deny in the owner's policy)")
    if resource.kind == "vo" and who in index.managers.get(resource.id, ()):
        return _permit(f"{who} manages VO {resource.id}")
    if owner_policy is not None:
        for rule in owner_policy.permits:
            if not rule.names_vo and rule.covers(action, resource) and rule.applies_to(principal):
                return _permit(f"{action} on {what} permitted by {rule.label}")
    if open_factory and not resource.id and action in FACTORY_ACTIONS:
        return _permit(f"any authenticated user may {action} (owner-only rule, vo.open_factory)")
    notes: list[str] = []
    candidates = [resource.vo] if resource.vo else principal.vos()
    for vo in candidates:
        if not any(m.vo == vo for m in principal.memberships):
            notes.append(f"{who} is not an active member of VO {vo}")
            continue
        if offer is not None and vo in offer.vos:
            offered = f"{what} is registered into VO {vo} by {offer.owner}"
        elif resource.vo == vo:
            offered = f"{what} belongs to VO {vo}"
        else:
            grant = None
            if owner_policy is not None:
                grant = owner_policy.first(owner_policy.permits, principal, action, resource, vo)
            if grant is None:
                notes.append(f"{what or resource.kind} is not offered to VO {vo}")
                continue
            offered = f"offered to VO {vo} by {grant.label}"
        vo_policy = index.vo.get(vo)
        if vo_policy is None:
            notes.append(f"VO {vo} has no policy")
            continue
        rule = vo_policy.first(vo_policy.denies, principal, action, resource, vo)
        if rule is not None:
            notes.append(f"denied by {rule.label}")
            continue
        rule = vo_policy.first(vo_policy.permits, principal, action, resource, vo)
        if rule is None:
            notes.append(f"no rule of the vo policy of {vo} (v{vo_policy.version}) permits it")
            continue
        return PolicyDecision(
            Decision.PERMIT, f"{action} on {what} permitted by {rule.label}; {offered}", vo
        )
    if not candidates:
        notes.append(f"{who} has no VO membership")
    detail = "; ".join(notes) if notes else "no rule applies"
    return PolicyDecision(
        Decision.DENY,
        f"default deny: no rule permits {who} to {action} {what} ({detail})",
        resource.vo or (candidates[0] if len(candidates) == 1 else ""),
    )
