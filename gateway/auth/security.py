"""Connexion's security hook, handing every declared HTTP scheme to the one chain.

The OpenAPI documents declare ``basicAuth`` and ``bearerAuth`` (for clients and Swagger
UI); whichever connexion tries first, the chain runs once per request, in configured order.
"""

from __future__ import annotations

from typing import Any

import anyio.to_thread
from connexion.exceptions import ClientProblem, OAuthProblem, ServerError
from connexion.lifecycle import ConnexionRequest
from connexion.security import NO_VALUE, AbstractSecurityHandler

from backends.contracts.model import Principal
from gateway.auth.chain import AuthChain, AuthenticationFailed, AuthRequest
from gateway.auth.memberships import MembershipResolver

SCOPE_KEY = "xtreemgate.auth"
# Headers the authenticator wants on the answer; a dict the middleware below puts in the
# scope and reads back (connexion copies the scope, not this dict).
RESPONSE_HEADERS_KEY = "xtreemgate.auth.response_headers"


def unused(*_args: Any) -> None:
    """Named by the spec's x-*InfoFunc keys; the chain handler replaces it."""


def auth_request(request: ConnexionRequest) -> AuthRequest:
    scope = request.scope
    client = scope.get("client") or ("", 0)
    return AuthRequest(
        headers={k.lower(): v for k, v in request.headers.items()},
        remote_addr=client[0],
        transport_secure=scope.get("scheme") == "https",
    )


def security_map(
    chain: AuthChain, resolver: MembershipResolver | None = None
) -> dict[str, type[AbstractSecurityHandler]]:
    """The handler connexion calls; the principal it yields carries its VO memberships."""

    async def verify(request: ConnexionRequest) -> Any:
        scope = request.scope
        if SCOPE_KEY in scope:  # a second scheme of the same operation: same answer
            outcome = scope[SCOPE_KEY]
        else:
            view = auth_request(request)
            authenticator = chain.select(view)
            try:
                if authenticator is None:
                    outcome = None
                elif authenticator.blocking(view):
                    outcome = await anyio.to_thread.run_sync(authenticator.authenticate, view)
                else:
                    outcome = authenticator.authenticate(view)
            except AuthenticationFailed as exc:
                outcome = exc
            if isinstance(outcome, Principal) and resolver is not None:
                if resolver.blocking(outcome):
                    outcome = await anyio.to_thread.run_sync(resolver.enrich, outcome)
                else:
                    outcome = resolver.enrich(outcome)
            scope[SCOPE_KEY] = outcome
            if outcome is not None and not isinstance(outcome, AuthenticationFailed):
                scope.get(RESPONSE_HEADERS_KEY, {}).update(view.response_headers)
        if isinstance(outcome, AuthenticationFailed):
            detail = f"{outcome.mechanism}: {outcome.reason}"
            if outcome.status == 403:
                raise ClientProblem(403, "Forbidden", detail=detail)
            if outcome.status >= 500:
                raise ServerError(outcome.status, "Service Unavailable", detail=detail)
            raise OAuthProblem(detail=detail)
        if outcome is None:
            return NO_VALUE
        return {"sub": outcome.name, "principal": outcome}

    class ChainSecurityHandler(AbstractSecurityHandler):
        def get_fn(self, security_scheme: dict, required_scopes: list) -> Any:
            return verify

    return {
        "basic": ChainSecurityHandler,
        "bearer": ChainSecurityHandler,
        "negotiate": ChainSecurityHandler,
    }


class AuthResponseHeaders:
    """ASGI middleware: adds the headers an authenticator asked for to the answer."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra: dict[str, str] = {}
        scope[RESPONSE_HEADERS_KEY] = extra

        async def send_with_headers(message: dict) -> None:
            if message["type"] == "http.response.start" and extra:
                headers = list(message.get("headers", []))
                headers += [(k.encode("latin-1"), v.encode("latin-1")) for k, v in extra.items()]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def current_principal() -> Principal:
    """The caller of the operation being handled (the operation declares security)."""
    from connexion import context

    return context.context["token_info"]["principal"]
