"""OGSA-BES endpoint: two figures, each beside a baseline measured in the same run.

1. CreateActivity requests/s through a real ``xtreemgate serve`` (local execution backend,
   a real /bin/true per activity, bearer token) beside a minimal SOAP echo handler on
   plain Flask + lxml, both served the same way (uvicorn, one worker, Flask through
   a2wsgi), both loaded with ``wrk`` on 127.0.0.1. Aim: gateway >= 0.5x the echo.
2. One GetActivityStatuses call naming 1000 activities beside 1000 calls naming one each
   (one keep-alive connection). Aim: the batch >= 20x faster.

Run: ``.venv/bin/python benchmarks/bench_bes.py [--seconds 5] [--connections 8]``.
Everything runs in a temporary folder and is stopped at the end.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness import free_port, stop, wait_until_up, wrk

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.services import prepare_state

SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
BES = "http://schemas.ggf.org/bes/2006/08/bes-factory"
XG = "urn:xtreemgate:bes"
PASSWORD = "benchmark password"

CREATE = f"""<?xml version="1.0" encoding="UTF-8"?>
<soap:Envelope xmlns:soap="{SOAP}" xmlns:bes="{BES}"
  xmlns:jsdl="http://schemas.ggf.org/jsdl/2005/11/jsdl"
  xmlns:posix="http://schemas.ggf.org/jsdl/2005/11/jsdl-posix"><soap:Body>
<bes:CreateActivity><bes:ActivityDocument><jsdl:JobDefinition><jsdl:JobDescription>
<jsdl:Application><posix:POSIXApplication><posix:Executable>/bin/true</posix:Executable>
</posix:POSIXApplication></jsdl:Application></jsdl:JobDescription></jsdl:JobDefinition>
</bes:ActivityDocument></bes:CreateActivity></soap:Body></soap:Envelope>"""


# -- the baseline: a minimal SOAP echo on plain Flask + lxml --------------------------
def serve_echo(port: int) -> None:
    import flask
    import uvicorn
    from a2wsgi import WSGIMiddleware
    from lxml import etree

    app = flask.Flask("soap-echo")

    @app.post("/bes")
    def echo() -> flask.Response:
        parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
        envelope = etree.fromstring(flask.request.get_data(), parser)
        payload = envelope.find(f"{{{SOAP}}}Body")[0]
        out = etree.Element(f"{{{SOAP}}}Envelope", nsmap={"soap": SOAP})
        body = etree.SubElement(out, f"{{{SOAP}}}Body")
        etree.SubElement(body, payload.tag + "Response")
        return flask.Response(
            etree.tostring(out, xml_declaration=True, encoding="utf-8"),
            content_type="text/xml; charset=utf-8",
        )

    uvicorn.run(
        WSGIMiddleware(app), host="127.0.0.1", port=port, log_level="warning", access_log=False
    )


# -- helpers ----------------------------------------------------------------------------
def status_request(ids: list[str], base: str) -> bytes:
    eprs = "".join(
        f"<bes:ActivityIdentifier><wsa:Address>{base}/bes/activities/{i}</wsa:Address>"
        f"<wsa:ReferenceParameters><xg:ActivityIdentifier>{i}</xg:ActivityIdentifier>"
        f"</wsa:ReferenceParameters></bes:ActivityIdentifier>"
        for i in ids
    )
    return (
        f'<soap:Envelope xmlns:soap="{SOAP}" xmlns:bes="{BES}" '
        f'xmlns:wsa="http://www.w3.org/2005/08/addressing" xmlns:xg="{XG}"><soap:Body>'
        f"<bes:GetActivityStatuses>{eprs}</bes:GetActivityStatuses></soap:Body></soap:Envelope>"
    ).encode()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--serve-echo", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_echo:
        serve_echo(args.serve_echo)
        return
    if not shutil.which("wrk"):
        raise SystemExit("wrk is missing: apt-get install wrk")
    import requests

    folder = Path(tempfile.mkdtemp(prefix="bench-bes-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("XTREEMGATE_")}
    env.update(
        XTREEMGATE_STATE_DIR=str(folder / "state"),
        XTREEMGATE_LOGGING__ACCESS_LOG="false",
        XTREEMGATE_LOGGING__LEVEL="WARNING",
    )
    xtreemgate = prepare_state(env, {"alice": PASSWORD})
    token = subprocess.run(
        [xtreemgate, "token", "issue", "alice"], env=env, text=True, check=True, capture_output=True
    ).stdout.strip()
    gw_port, echo_port = free_port(), free_port()
    procs = [
        subprocess.Popen(
            [xtreemgate, "serve", "--port", str(gw_port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        ),
        subprocess.Popen(
            [sys.executable, __file__, "--serve-echo", str(echo_port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        ),
    ]
    gateway, echo = f"http://127.0.0.1:{gw_port}", f"http://127.0.0.1:{echo_port}"
    auth = {"Authorization": f"Bearer {token}"}
    try:
        wait_until_up(f"{gateway}/healthz", procs[0])
        wait_until_up(f"{echo}/bes", procs[1], method="POST")

        # 1. CreateActivity beside the echo (echo first, then the gateway, then echo again)
        def load(url: str, headers: dict[str, str]) -> float:
            return wrk(
                url,
                seconds=args.seconds,
                connections=args.connections,
                threads=2,
                headers=headers,
                body=CREATE,
            )

        echo_rps = load(f"{echo}/bes", {})
        create_rps = load(f"{gateway}/bes", auth)
        echo_rps = max(echo_rps, load(f"{echo}/bes", {}))
        # CreateActivity answers once an activity is recorded Pending; the launcher may
        # still be starting processes. Wait for it, and say the end-to-end rate too.
        db = sqlite3.connect(f"file:{folder / 'state' / 'xtreemgate.db'}?mode=ro", uri=True)
        drain_started = time.perf_counter()
        while db.execute("SELECT count(*) FROM activities WHERE backend_id = ''").fetchone()[0]:
            time.sleep(0.1)
        drained = time.perf_counter() - drain_started
        total = db.execute("SELECT count(*) FROM activities").fetchone()[0]
        db.close()
        print(f"CreateActivity (local backend, real process each): {create_rps:8.1f} req/s")
        print(
            f"  of which handed to the backend within the run + {drained:.1f} s: {total} "
            f"activities, {total / (args.seconds + drained):.1f} launched/s end to end"
        )
        print(f"baseline: SOAP echo on plain Flask + lxml:         {echo_rps:8.1f} req/s")
        print(f"ratio: {create_rps / echo_rps:.2f}x (aim >= 0.5x)")

        # 2. One batch of 1000 beside 1000 singles
        session = requests.Session()
        listing = session.get(f"{gateway}/api/v1/activities/?limit=1000", headers=auth).json()
        ids = [a["id"] for a in listing["activities"]]
        while len(ids) < 1000:  # a slow machine: top up to 1000 activities
            session.post(
                f"{gateway}/bes", data=CREATE, headers={**auth, "Content-Type": "text/xml"}
            )
            ids.append("")
            ids = [
                a["id"]
                for a in session.get(
                    f"{gateway}/api/v1/activities/?limit=1000", headers=auth
                ).json()["activities"]
            ]
        ids = ids[:1000]
        headers = {**auth, "Content-Type": "text/xml; charset=utf-8"}
        batch_body = status_request(ids, gateway)
        timings = []
        for _ in range(3):
            started = time.perf_counter()
            response = session.post(f"{gateway}/bes", data=batch_body, headers=headers)
            timings.append(time.perf_counter() - started)
            assert (
                response.status_code == 200 and response.text.count("<bes-factory:Response") == 1000
            )
        singles = [status_request([i], gateway) for i in ids]
        started = time.perf_counter()
        for body in singles:
            response = session.post(f"{gateway}/bes", data=body, headers=headers)
            assert response.status_code == 200
        single_total = time.perf_counter() - started
        batch = min(timings)
        print(
            f"GetActivityStatuses, 1 call x 1000 EPRs: {batch * 1000:8.1f} ms "
            f"(first call, refreshing from the backend: {timings[0] * 1000:.1f} ms)"
        )
        print(f"baseline: 1000 calls x 1 EPR:             {single_total * 1000:8.1f} ms")
        print(f"ratio: {single_total / batch:.1f}x faster (aim >= 20x)")
    finally:
        stop(procs)
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
