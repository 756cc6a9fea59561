"""The answers the framework makes on OCCI paths (401 from the security hook, 404 for a
path no route matches, 405, 415 from connexion's validation), made OCCI answers.

Connexion answers them as ``application/problem+json`` before any OCCI handler runs, so
without this an OCCI client gets neither ``Server: … OCCI/1.2`` (GFD.223 §3.5) nor a
rendering it reads, and connexion's 405 ``Allow`` names only the methods of the route it
matched first. Here such an answer keeps its status (and its ``WWW-Authenticate``) and
gets the OCCI refusal's shape: the reason in ``text/plain`` (``text/occi`` for a client
that takes only that), the Server header, and an ``Allow`` listing every method
openapi/occi.yaml declares for the path.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, MutableMapping
from functools import cache
from typing import Any

import yaml

from gateway.occi.errors import OCCIError
from gateway.occi.negotiation import choose
from gateway.resources import data_dir

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[
    [Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]
]

_METHODS = ("get", "put", "post", "delete", "patch")


@cache
def _routes() -> tuple[tuple[re.Pattern[str], tuple[str, ...]], ...]:
    """(path pattern, methods) of every route in openapi/occi.yaml."""
    with open(data_dir("openapi") / "occi.yaml", encoding="utf-8") as f:
        paths = yaml.safe_load(f)["paths"]
    out = []
    for template, item in paths.items():
        escaped = re.escape(template).replace(r"\{location\}", ".+")  # format: path
        pattern = re.sub(r"\\\{[^}]+\\\}", "[^/]+", escaped)
        methods = [m.upper() for m in _METHODS if m in item]
        if "GET" in methods:
            methods.insert(1, "HEAD")
        out.append((re.compile(pattern + "$"), tuple(methods)))
    return tuple(out)


@cache
def _prefixes() -> frozenset[str]:
    """First path segments the OCCI document owns (``compute``, ``-``, ``mixins``…)."""
    return frozenset(p.pattern.split("/")[1].replace("\\", "") for p, _ in _routes())


def allowed(path: str) -> tuple[str, ...]:
    """Every method the OCCI document declares for ``path`` (empty: no OCCI route)."""
    found: list[str] = []
    for pattern, methods in _routes():
        if pattern.match(path):
            found += [m for m in methods if m not in found]
    return tuple(found)


def is_occi(scope: Scope) -> bool:
    """A request under a path the OCCI document owns (``/compute/…``, ``/-/``…)."""
    return scope.get("path", "").strip("/").split("/")[0] in _prefixes()


def _reason(body: bytes, status: int) -> str:
    try:
        doc = json.loads(body)
    except ValueError:
        doc = None
    if isinstance(doc, dict):
        reason = str(doc.get("detail") or doc.get("title") or "")
    else:
        reason = body.decode("utf-8", "replace").strip()
    return reason or f"HTTP {status}"


class OCCIFrameworkAnswers:
    """ASGI middleware: the framework's answers on OCCI paths, in OCCI's shape."""

    def __init__(self, app: ASGIApp, server: str) -> None:
        self.app = app
        self.server = server.encode("latin-1")

    async def __call__(
        self,
        scope: Scope,
        receive: Callable[[], Awaitable[Message]],
        send: Callable[[Message], Awaitable[None]],
    ) -> None:
        if scope["type"] != "http" or not is_occi(scope):
            await self.app(scope, receive, send)
            return
        held: dict[str, Any] = {}

        async def reshape(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                ours = any(k.lower() == b"server" and b"OCCI/" in v for k, v in headers)
                if ours or message["status"] < 400:
                    if not ours:
                        headers.append((b"server", self.server))
                    await send({**message, "headers": headers})
                    return
                held["start"], held["body"] = message, b""
                return
            if "start" not in held:
                await send(message)
                return
            held["body"] += message.get("body", b"")
            if not message.get("more_body"):
                await send_occi(held["start"], held["body"])

        async def send_occi(start: Message, body: bytes) -> None:
            status = start["status"]
            reason = _reason(body, status)
            kept = [
                (k, v) for k, v in start.get("headers", []) if k.lower() in (b"www-authenticate",)
            ]
            methods = allowed(scope.get("path", ""))
            if status == 405 and methods:
                kept.append((b"allow", ", ".join(methods).encode()))
            if status == 404 and not methods:
                reason = f"{scope.get('path', '')} is no OCCI location here (see GET /-/)"
            media = _media(scope)
            text = (reason.rstrip("\n") + "\n").encode("utf-8")
            kept += [
                (b"server", self.server),
                (b"content-type", f"{media}; charset=utf-8".encode()),
                (b"content-length", str(len(text)).encode()),
            ]
            await send({"type": "http.response.start", "status": status, "headers": kept})
            body = b"" if scope.get("method") == "HEAD" else text
            await send({"type": "http.response.body", "body": body})

        await self.app(scope, receive, reshape)


def _media(scope: Scope) -> str:
    """text/occi for a client that takes only that; text/plain, OCCI's refusal, else."""
    accept = next((v.decode("latin-1") for k, v in scope["headers"] if k.lower() == b"accept"), "")
    try:
        chosen = choose(accept, listing=True)
    except OCCIError:  # nothing acceptable: the reason in text/plain
        return "text/plain"
    return "text/occi" if chosen == "text/occi" else "text/plain"
