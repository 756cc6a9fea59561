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
API_DOCUMENTS = ("gateway.yaml", "vo.yaml")


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
        yield
        rt.close()

    app = FlaskApp(
        __name__,
        specification_dir=data_dir("openapi"),
        security_map=security_map(rt.chain, rt.memberships),
        swagger_ui_options=SwaggerUIOptions(swagger_ui_path="/ui"),
        lifespan=lifespan,
    )
    app.app.extensions[runtime_module.EXTENSION] = rt
    app.app.extensions["xtreemgate.metrics"] = metrics
    for document in reversed(API_DOCUMENTS):
        # Documents share the base path "/": each needs its own Flask blueprint name.
        # Connexion's spec/UI middleware serves only one document per base path (the last
        # added), so the first is added last, and the others are served as JSON at
        # /openapi/<name>.json (see _serve_spec).
        name = document.removesuffix(".yaml")
        extra: dict[str, Any] = {}
        if document != API_DOCUMENTS[0]:
            extra["swagger_ui_options"] = SwaggerUIOptions(serve_spec=False, swagger_ui=False)
            _serve_spec(app, document, name)
        app.add_api(document, name=name, strict_validation=True, validate_responses=False, **extra)
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


def _serve_spec(app: FlaskApp, document: str, name: str) -> None:
    import flask
    import yaml

    spec = yaml.safe_load((data_dir("openapi") / document).read_text(encoding="utf-8"))
    app.app.add_url_rule(f"/openapi/{name}.json", f"openapi-{name}", lambda: flask.jsonify(spec))


def create_asgi() -> FlaskApp:
    """Entry point for uvicorn/gunicorn workers (``--factory gateway.app:create_asgi``)."""
    return create_app()
