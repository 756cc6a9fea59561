"""Connexion's security hook, handing every declared HTTP scheme to the one chain.

The OpenAPI documents declare ``basicAuth`` and ``bearerAuth`` (for clients and Swagger
UI); whichever connexion tries first, the chain runs once per request, in configured order.
"""

from __future__ import annotations

from typing import Any

import anyio.to_thread
from connexion.exceptions import OAuthProblem
from connexion.lifecycle import ConnexionRequest
from connexion.security import NO_VALUE, AbstractSecurityHandler

from backends.model import Principal
from gateway.auth.chain import AuthChain, AuthenticationFailed, AuthRequest

SCOPE_KEY = "xtreemgate.auth"


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


def security_map(chain: AuthChain) -> dict[str, type[AbstractSecurityHandler]]:
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
            scope[SCOPE_KEY] = outcome
        if isinstance(outcome, AuthenticationFailed):
            raise OAuthProblem(detail=f"{outcome.mechanism}: {outcome.reason}")
        if outcome is None:
            return NO_VALUE
        return {"sub": outcome.name, "principal": outcome}

    class ChainSecurityHandler(AbstractSecurityHandler):
        def get_fn(self, security_scheme: dict, required_scopes: list) -> Any:
            return verify

    return {"basic": ChainSecurityHandler, "bearer": ChainSecurityHandler}


def current_principal() -> Principal:
    """The caller of the operation being handled (the operation declares security)."""
    from connexion import context

    return context.context["token_info"]["principal"]
