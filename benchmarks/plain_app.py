"""The baseline app: plain Flask returning fixed bytes, served under the same uvicorn."""

from __future__ import annotations

import os
from pathlib import Path

from a2wsgi import WSGIMiddleware
from flask import Flask, Response


def create() -> WSGIMiddleware:
    body = Path(os.environ["XG_BENCH_BODY"]).read_bytes()
    content_type = os.environ["XG_BENCH_TYPE"]
    app = Flask("plain")

    @app.get(os.environ["XG_BENCH_PATH"])
    def answer() -> Response:
        return Response(body, content_type=content_type)

    return WSGIMiddleware(app)
