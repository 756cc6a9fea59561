"""The app factory: a connexion 3 app (Flask flavour) routed and validated from openapi/."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from connexion import FlaskApp
from connexion.lifecycle import ConnexionRequest, ConnexionResponse
from connexion.middleware import MiddlewarePosition
from connexion.options import SwaggerUIOptions
from connexion.problem import problem

from gateway import runtime as runtime_module
from gateway.auth.security import security_map
from gateway.config import Settings, load_settings
from gateway.logs import configure_logging
from gateway.observability import Metrics, ObservabilityMiddleware
from gateway.resources import data_dir

log = logging.getLogger("xtreemgate")

# The gateway's own document; each front end adds its own beside it.
# Each document has its own base path (servers.url), and with it its own openapi.json.
# (connexion 3.3 chains documents sharing a base path so that of three or more only the
# first and the last are reachable, and serves only one openapi.json there.)
API_DOCUMENTS = ("gateway.yaml", "saml.yaml", "portal.yaml")


def create_app(settings: Settings | None = None, *, configure_logs: bool = True) -> FlaskApp:
    settings = settings or load_settings()
    if configure_logs:
        configure_logging(settings.logging)
    rt = runtime_module.build_runtime(settings)
    rt.keyring.ensure()
    metrics = Metrics()

    @contextlib.asynccontextmanager
    async def lifespan(_app: Any) -> AsyncIterator[None]:
        log.info("xtreemgate serving at %s", settings.public_url)
        if rt.saml is not None:
            rt.saml.start()  # federation metadata loads and refreshes in the background
        yield
        rt.close()

    app = FlaskApp(
        __name__,
        specification_dir=data_dir("openapi"),
        security_map=security_map(rt.chain),
        swagger_ui_options=SwaggerUIOptions(swagger_ui_path="/ui"),
        lifespan=lifespan,
    )
    app.app.extensions[runtime_module.EXTENSION] = rt
    app.app.extensions["xtreemgate.metrics"] = metrics
    for document in API_DOCUMENTS:
        # Each document's blueprint needs its own name: they all live at base path "/".
        app.add_api(
            document,
            name=document.rsplit(".", 1)[0],
            strict_validation=True,
            validate_responses=False,
        )
    app.add_middleware(
        ObservabilityMiddleware,
        position=MiddlewarePosition.BEFORE_EXCEPTION,
        metrics=metrics,
        access_log=settings.logging.access_log,
    )
    challenges = rt.chain.challenges()

    def unauthorized(_request: ConnexionRequest, exc: Exception) -> ConnexionResponse:
        """401 with a challenge per accepted mechanism (RFC 9110 §11.6.1)."""
        detail = getattr(exc, "detail", None) or "authentication required"
        if detail == "No authorization token provided":
            detail = "no credentials: send " + " or ".join(c.split(" ", 1)[0] for c in challenges)
        offered = list(challenges)
        if detail.startswith("bearer: "):  # RFC 6750 §3: say the token itself was refused
            reason = detail[len("bearer: ") :].replace('"', "'")
            offered = [
                f'{c}, error="invalid_token", error_description="{reason}"'
                if c.startswith("Bearer")
                else c
                for c in offered
            ]
        response = problem(401, "Unauthorized", detail)
        response.headers = {**(response.headers or {}), "WWW-Authenticate": ", ".join(offered)}
        return response

    app.add_error_handler(401, unauthorized)
    return app


def create_asgi() -> FlaskApp:
    """Entry point for uvicorn/gunicorn workers (``--factory gateway.app:create_asgi``)."""
    return create_app()
