"""The VO REST API (openapi/vo.yaml): VOs, groups, members, roles, managers, policies,
registered resources, VO tokens, usage and audit."""
