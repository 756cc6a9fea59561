"""VO backends: VOs, memberships, policy decisions, account mapping, accounting.

What other code calls on the ``sql`` implementation (:class:`backends.vo.sql.SQLVOBackend`):

- ``decide(principal, action, resource) -> PolicyDecision`` — every front end, before it
  acts; default deny, the reason names the rule (and ``.vo`` the VO it went through);
- ``memberships_of(name)`` / ``membership_epoch(name)`` — gateway/auth (the membership
  resolver; VO token revocation);
- ``account_for(principal, vo="", role="") -> LocalAccount`` — execution front ends,
  before submitting (own account, else a persisted pool lease);
- ``record(category, principal, action, resource, *, vo, outcome, reason, quantity,
  unit)`` — front ends, for every execution ("execution") and data access ("data");
- ``use_account_source(source)`` / ``use_activity_probe(probe)`` — to replace where
  accounts come from (the site directory arrives through ``BackendContext.directory``)
  and how running work under an account is seen;
- management (VOs, groups, roles, managers, members, resources, policies, usage) for the
  VO REST API in gateway/vo.

``sql.py`` is only the plugin class; each job is a module of its own, on one set of
sessions (``sessions.py``, which also moves the change counter):

- ``organisations.py`` — VOs, their groups, roles and managers;
- ``members.py`` — memberships: requests, approval, suspension, expiry, roles, removal;
- ``memberships.py`` — what a principal holds now (cached) and the revocation epochs;
- ``resources.py`` — the resources owners offer to VOs;
- ``policies.py`` — the versioned policy documents (owner, vo, user);
- ``decisions.py`` — the compiled index decide() answers from, without the database;
- ``policy.py`` — the rule language: validation, compilation, how the levels combine;
- ``mapping.py`` and ``accounts.py`` — which account work runs as; account sources, leases;
- ``audit.py`` — the append-only audit trail and per-VO usage;
- ``names.py``, ``errors.py``, ``schema.py`` — the name rules, the refusals, the policy
  schema.
"""
