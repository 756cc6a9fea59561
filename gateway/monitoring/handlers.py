"""Operations about the gateway itself: /healthz and /metrics."""

from __future__ import annotations

from dataclasses import asdict
from importlib.metadata import PackageNotFoundError, version

import flask

from gateway import runtime
from gateway.responses import json_response

try:
    VERSION = version("xtreemgate")
except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
    VERSION = "0+unknown"


def healthz() -> tuple[dict, int, dict]:
    checks = runtime.current().health()
    healthy = all(check.ok for check in checks.values())
    body = {
        "status": "healthy" if healthy else "unhealthy",
        "version": VERSION,
        "checks": {name: asdict(check) for name, check in checks.items()},
    }
    return json_response(body, 200 if healthy else 503)


def metrics() -> flask.Response:
    exposition = flask.current_app.extensions["xtreemgate.metrics"].exposition()
    return flask.Response(exposition, mimetype="text/plain; version=0.0.4; charset=utf-8")
