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
from starlette.formparsers import MultiPartException

from gateway import runtime as runtime_module
from gateway.auth.security import AuthResponseHeaders, security_map
from gateway.bes.handlers import BESPaths
from gateway.bes.handlers import mount as mount_bes
from gateway.config import Settings, load_settings
from gateway.monitoring.logs import configure_logging
from gateway.monitoring.middleware import Metrics, ObservabilityMiddleware
from gateway.occi.framework import OCCIFrameworkAnswers
from gateway.occi.handlers import SERVER as OCCI_SERVER
from gateway.resources import data_dir

log = logging.getLogger("xtreemgate")

# The gateway's own document; each front end adds its own beside it.
API_DOCUMENTS = (
    "gateway.yaml",
    "activities.yaml",
    "vo.yaml",
    "occi.yaml",
    "saml.yaml",
    "portal.yaml",
    "storage.yaml",
)
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def api_document() -> dict[str, Any]:
    """The API_DOCUMENTS as one OpenAPI document served at "/": connexion serves one spec
    (and one Swagger UI) per base path, and several routers at "/" shadow each other, so
    the documents are joined, each staying its own file. A document's server URL becomes
    a prefix of its paths and its global security moves onto its operations; a component
    that another document defines differently is renamed <document>_<name> in this one.
    A path defined twice stops the start."""
    import copy

    import yaml

    merged: dict[str, Any] = {}
    for document in API_DOCUMENTS:
        spec = yaml.safe_load((data_dir("openapi") / document).read_text(encoding="utf-8"))
        if not merged:
            merged = spec
            continue
        spec = _rename_clashing_components(spec, merged, document.removesuffix(".yaml"))
        base = (spec.get("servers") or [{"url": "/"}])[0]["url"].rstrip("/")
        for path, item in spec.get("paths", {}).items():
            full = base + path
            if full in merged["paths"]:
                raise ValueError(f"{document}: path {full} is already defined")
            item = copy.deepcopy(item)
            for method in HTTP_METHODS:
                if method in item and "security" not in item[method] and "security" in spec:
                    item[method]["security"] = spec["security"]
            merged["paths"][full] = item
        for section, entries in spec.get("components", {}).items():
            merged.setdefault("components", {}).setdefault(section, {}).update(entries)
        known = {tag["name"] for tag in merged.setdefault("tags", [])}
        merged["tags"] += [tag for tag in spec.get("tags", []) if tag["name"] not in known]
    return merged


def _rename_clashing_components(spec: dict, merged: dict, prefix: str) -> dict:
    """``spec`` with each component that ``merged`` holds differently renamed, and every
    reference to it rewritten (security schemes must agree but for their prose)."""
    import json

    text = json.dumps(spec)
    for section, entries in spec.get("components", {}).items():
        for name, value in entries.items():
            existing = merged.get("components", {}).get(section, {}).get(name)
            if existing is None or _same_component(section, existing, value):
                continue
            if section == "securitySchemes":
                raise ValueError(f"{prefix}: security scheme {name} differs from the gateway's")
            text = text.replace(
                f'"#/components/{section}/{name}"', f'"#/components/{section}/{prefix}_{name}"'
            )
            renamed = json.loads(text)
            components = renamed["components"][section]
            components[f"{prefix}_{name}"] = components.pop(name)
            text = json.dumps(renamed)
    return json.loads(text)


def _same_component(section: str, first: Any, second: Any) -> bool:
    """Equal, or (for security schemes) equal but for the prose."""
    if section == "securitySchemes":
        first, second = (
            {k: v for k, v in scheme.items() if k != "description"} for scheme in (first, second)
        )
    return first == second


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
        rt.open()  # again after a close: a runtime served a second time
        if rt.saml is not None:
            rt.saml.start()  # federation metadata loads and refreshes in the background
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
    app.add_api(api_document(), strict_validation=True, validate_responses=False)
    mount_bes(app)  # SOAP is not OpenAPI: a plain route that calls the auth chain itself
    app.add_middleware(BESPaths, position=MiddlewarePosition.BEFORE_EXCEPTION)
    app.add_middleware(
        ObservabilityMiddleware,
        position=MiddlewarePosition.BEFORE_EXCEPTION,
        metrics=metrics,
        access_log=settings.logging.access_log,
    )
    app.add_middleware(AuthResponseHeaders, position=MiddlewarePosition.BEFORE_EXCEPTION)
    app.add_middleware(  # 401/404/405/415 on OCCI paths in OCCI's shape (#16.10)
        OCCIFrameworkAnswers, position=MiddlewarePosition.BEFORE_EXCEPTION, server=OCCI_SERVER
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
    app.add_error_handler(MultiPartException, form_refused)
    return app


def form_refused(_request: ConnexionRequest, exc: Exception) -> ConnexionResponse:
    """The framework's own form parser (Starlette's, which wraps python-multipart's
    errors in this one) refuses a body on any route: a field over its 1 MiB, too many
    fields, broken multipart. Its reason as a problem document (413 for a size, else
    400), never a 500 that loses it."""
    reason = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    too_big = "maximum size" in reason or "Too many" in reason
    status, title = (413, "Content Too Large") if too_big else (400, "Bad Request")
    return problem(status, title, f"the request's form body cannot be read: {reason}")


def create_asgi() -> FlaskApp:
    """Entry point for uvicorn/gunicorn workers (``--factory gateway.app:create_asgi``)."""
    return create_app()
