"""VO backends: VOs, memberships, policy decisions, account mapping."""
