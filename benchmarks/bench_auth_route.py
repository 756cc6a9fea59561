"""Requests/s of an authenticated JSON route of the gateway (GET /api/v1/whoami with a
bearer token, and with HTTP Basic) beside a plain Flask handler returning the same bytes
on the same server (uvicorn, one worker, uvloop + httptools), in the same run.

    .venv/bin/python benchmarks/bench_auth_route.py [--seconds 5] [--rounds 3]

The gateway side pays for what production pays for: connexion's routing and request
validation, the security hook and the authenticator chain (a cached signature check for
a token, a cached KDF for Basic), the JSON access log line and the Prometheus metrics.
"""

from __future__ import annotations

import argparse
import base64
import os
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

from harness import alternate, plain_flask_server, report, server, uvicorn_argv, wrk

XG = str(Path(sys.executable).with_name("xtreemgate"))
PASSWORD = "benchmark password 1"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="xg-bench-") as state:
        env = {k: v for k, v in os.environ.items() if not k.startswith("XTREEMGATE_")}
        env |= {"XTREEMGATE_STATE_DIR": state, "XTREEMGATE_LOGGING__FORMAT": "json"}
        cli = {"env": env, "check": True, "capture_output": True, "text": True}
        subprocess.run([XG, "db", "upgrade"], **cli)
        subprocess.run([XG, "user", "add", "bench", "--password-stdin"], input=PASSWORD, **cli)
        token = subprocess.run([XG, "token", "issue", "bench"], **cli).stdout.strip()
        basic = base64.b64encode(f"bench:{PASSWORD}".encode()).decode()
        bearer_header = {"Authorization": f"Bearer {token}"}
        basic_header = {"Authorization": f"Basic {basic}"}

        gateway_argv = uvicorn_argv("gateway.app:create_asgi")
        with server(gateway_argv, env, "/healthz") as gateway:
            request = urllib.request.Request(
                gateway + "/api/v1/whoami", headers={"Authorization": f"Bearer {token}"}
            )
            with urllib.request.urlopen(request) as answer:
                body, content_type = answer.read(), answer.headers["Content-Type"]
            with plain_flask_server(body, content_type, "/api/v1/whoami") as plain:
                with urllib.request.urlopen(plain + "/api/v1/whoami") as answer:
                    assert answer.read() == body, "the baseline must send the same bytes"

                def load(url: str, headers: dict[str, str] | None = None):
                    return lambda: wrk(url, seconds=args.seconds, headers=headers)

                results = alternate(
                    {
                        "plain Flask, same bytes (baseline)": load(plain + "/api/v1/whoami"),
                        "gateway, bearer token": load(gateway + "/api/v1/whoami", bearer_header),
                        "gateway, HTTP Basic": load(gateway + "/api/v1/whoami", basic_header),
                    },
                    rounds=args.rounds,
                )
    report(
        f"GET /api/v1/whoami, {len(body)} bytes of JSON, wrk 1 thread 8 connections, "
        f"{args.seconds} s x {args.rounds} rounds, median",
        results,
        "req/s",
        baseline="plain Flask, same bytes (baseline)",
    )


if __name__ == "__main__":
    main()
