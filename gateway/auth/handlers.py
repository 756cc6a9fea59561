"""Handlers of openapi/gateway.yaml's auth operations."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from backends.contracts.entitlements import entitlements_of
from gateway import runtime
from gateway.auth.security import current_principal
from gateway.responses import json_response


def jwks() -> tuple[dict, int, dict]:
    keys = runtime.current().keyring.jwks()
    return json_response(keys, Cache_Control="public, max-age=300")


def whoami() -> tuple[dict, int, dict]:
    """The caller, with the VO memberships the gateway resolved (or the VO token carried)
    and the same as AARC-G002 entitlements."""
    principal = current_principal()
    settings = runtime.current().settings
    entitlements = entitlements_of(
        principal.memberships,
        settings.vo.entitlement_namespace,
        settings.vo.entitlement_authority or settings.token_issuer,
    )
    return json_response(
        {
            "name": principal.name,
            "display_name": principal.display_name,
            "authenticated_by": principal.authenticated_by,
            "site_admin": principal.site_admin,
            "memberships": [asdict(m) for m in principal.memberships],
            "entitlements": entitlements,
        }
    )


def _token_request(body: dict | bytes | None) -> dict:
    """The TokenRequest: connexion has validated it as JSON already, but hands it over as
    bytes when the request named no Content-Type (curl -X POST without -d sends none;
    the spec's default ``{}`` stands in for the missing body)."""
    if isinstance(body, bytes):
        return json.loads(body) if body else {}
    return body or {}


def issue_token(body: dict | bytes | None = None) -> tuple[dict, int, dict]:
    """A token for the caller; a caller holding a token cannot outlive it by exchange."""
    principal = current_principal()
    body = _token_request(body)
    issuer = runtime.current().tokens.issuer
    if principal.authenticated_by == "vo-token" and principal.attributes.get("iss") != issuer:
        detail = "a VO token of another gateway cannot be exchanged for a token of this one"
        body = {"type": "about:blank", "title": "Forbidden", "status": 403, "detail": detail}
        return body, 403, {"Content-Type": "application/problem+json"}
    not_after = None
    if principal.authenticated_by in ("bearer", "vo-token"):
        not_after = principal.attributes.get("exp")
    claims: dict[str, Any] = {"auth": principal.authenticated_by}
    if principal.display_name:
        claims["name"] = principal.display_name
    if principal.site_admin:
        claims["site_admin"] = True
    token, expires_in = runtime.current().tokens.issue(
        principal.name,
        audience=body.get("audience"),
        lifetime=body.get("lifetime"),
        claims=claims,
        not_after=not_after,
    )
    return json_response(
        {"access_token": token, "token_type": "Bearer", "expires_in": expires_in},
        201,
        Cache_Control="no-store",
    )
