"""Requests/s of the OCCI front end beside baselines measured in the same run.

* GET /-/ (the query interface) and GET /compute/ with 5000 VMs, each through a real
  ``xtreemgate serve`` (uvicorn, one worker, Basic auth), beside a plain Flask handler
  returning the very same bytes on the same server setup (uvicorn + a2wsgi, one worker).
* For the listing also libvirt's own answer: listAllDomains() plus every domain's XML.

The hypervisor is libvirt's test driver loaded from a node file holding the 5000 domains;
their ownership records go straight into the gateway's store. Loads only 127.0.0.1 with
``wrk`` (bounded: a few seconds per figure).

    .venv/bin/python benchmarks/bench_occi.py [--seconds 4] [--rounds 3] [--vms 5000]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from harness import free_port, stop, wait_until_up, wrk

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.services import prepare_state

PASSWORD = "bench password 1"
COMPUTE = "http://schemas.ogf.org/occi/infrastructure#compute"


def node_xml(ids: list[str]) -> str:
    """A test-driver host holding ``ids`` as domains the gateway made (the backend's own
    domain XML, with its metadata) and the storage pool the backend's health check wants."""
    from backends.contracts.model import VMSpec
    from backends.vm.libvirt.domain_xml import build_domain

    domains = "".join(
        build_domain(i, VMSpec(name=f"vm{n}", memory_mib=512), domain_type="test")
        for n, i in enumerate(ids)
    )
    return (
        "<node><cpu><nodes>1</nodes><sockets>1</sockets><cores>2</cores><threads>1</threads>"
        "<active>2</active><mhz>2000</mhz><model>x86_64</model></cpu>"
        "<memory>67108864</memory>"
        "<pool type='dir'><name>default-pool</name>"
        "<uuid>dfe224cb-28fb-8dd0-c4b2-64eb3f0f4566</uuid>"
        "<capacity unit='GiB'>100</capacity><allocation unit='GiB'>0</allocation>"
        "<available unit='GiB'>100</available><target><path>/default-pool</path></target>"
        f"</pool>{domains}</node>"
    )


def fetch(url: str, headers: dict[str, str]) -> bytes:
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=30) as r:
        return r.read()


def libvirt_listings(uri: str, seconds: float) -> tuple[float, int]:
    import libvirt

    conn = libvirt.open(uri)
    count, done, start = 0, 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        domains = conn.listAllDomains()
        count = sum(1 for d in domains if d.XMLDesc(0))
        done += 1
    rate = done / (time.perf_counter() - start)
    conn.close()
    return rate, count


def baseline_server(port: int, folder: str, framework: str) -> None:
    """The captured bodies served on uvicorn, one worker: by a plain Flask app via a2wsgi
    (as connexion runs Flask), or by a bare connexion FlaskApp (the gateway's framework
    without its auth, middleware and OCCI code)."""
    import flask
    import uvicorn

    bodies = {p.stem: p.read_bytes() for p in Path(folder).glob("*.body")}

    def query() -> flask.Response:
        return flask.Response(bodies["query"], mimetype="text/plain")

    def compute() -> flask.Response:
        return flask.Response(bodies["compute"], mimetype="text/plain")

    if framework == "flask":
        from a2wsgi import WSGIMiddleware

        app = flask.Flask("baseline")
        app.get("/-/")(query)
        app.get("/compute/")(compute)
        served = WSGIMiddleware(app)
    else:
        import connexion

        globals().update(bench_query=query, bench_compute=compute)
        ok = {
            "200": {
                "description": "the bytes",
                "content": {"text/plain": {"schema": {"type": "string"}}},
            }
        }
        spec = {
            "openapi": "3.0.3",
            "info": {"title": "baseline", "version": "1"},
            "paths": {
                "/-/": {"get": {"operationId": f"{__name__}.bench_query", "responses": ok}},
                "/compute/": {"get": {"operationId": f"{__name__}.bench_compute", "responses": ok}},
            },
        }
        served = connexion.FlaskApp(__name__)
        served.add_api(spec, strict_validation=True, validate_responses=False)
    uvicorn.run(
        served,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        server_header=False,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--vms", type=int, default=5000)
    parser.add_argument(
        "--baseline-server",
        nargs=3,
        metavar=("PORT", "FOLDER", "FRAMEWORK"),
        help=argparse.SUPPRESS,
    )
    args = parser.parse_args()
    if args.baseline_server:
        baseline_server(
            int(args.baseline_server[0]), args.baseline_server[1], args.baseline_server[2]
        )
        return
    if not shutil.which("wrk"):
        raise SystemExit("wrk is not installed (apt-get install wrk)")

    folder = Path(tempfile.mkdtemp(prefix="xg-bench-occi-"))
    procs: list[subprocess.Popen] = []
    try:
        ids = [str(uuid.uuid4()) for _ in range(args.vms)]
        node = folder / "node.xml"
        node.write_text(node_xml(ids))
        env = {
            **os.environ,
            "XTREEMGATE_STATE_DIR": str(folder / "state"),
            "XTREEMGATE_VM__URIS": json.dumps([f"test://{node}"]),
            "XTREEMGATE_LOGGING__ACCESS_LOG": "false",
            "XTREEMGATE_LOGGING__LEVEL": "WARNING",
            "XTREEMGATE_VM__OVERCOMMIT": "1000",  # 5000 x 512 MiB on a 64 GiB test host
        }
        xg = prepare_state(env, {"alice": PASSWORD})

        from backends.store import Database
        from backends.store.tables.occi import OCCIEntity

        db = Database(f"sqlite:///{folder / 'state' / 'xtreemgate.db'}")
        start = datetime.now(UTC)
        with db.session() as session:
            session.add_all(
                OCCIEntity(
                    id=i,
                    kind=COMPUTE,
                    owner="alice",
                    vo="",
                    title=f"vm{n}",
                    summary="",
                    mixins=[],
                    source="",
                    target="",
                    links=[],
                    attributes={},
                    created=start + timedelta(microseconds=n),
                )
                for n, i in enumerate(ids)
            )
        db.dispose()

        port = free_port()
        gateway = subprocess.Popen(
            [xg, "serve", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        procs.append(gateway)
        wait_until_up(f"http://127.0.0.1:{port}/healthz", gateway)
        auth = {"Authorization": "Basic " + base64.b64encode(f"alice:{PASSWORD}".encode()).decode()}
        gw = f"http://127.0.0.1:{port}"
        query_body = fetch(f"{gw}/-/", auth)
        listing_body = fetch(f"{gw}/compute/", auth)
        listed = listing_body.decode().count("X-OCCI-Location: /compute/")
        if listed != args.vms:
            raise SystemExit(f"the gateway listed {listed} VMs, expected {args.vms}")
        (folder / "query.body").write_bytes(query_body)
        (folder / "compute.body").write_bytes(listing_body)

        bases = {}
        for framework in ("flask", "connexion"):
            bport = free_port()
            proc = subprocess.Popen(
                [sys.executable, __file__, "--baseline-server", str(bport), str(folder), framework],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            procs.append(proc)
            bases[framework] = f"http://127.0.0.1:{bport}"
            wait_until_up(f"{bases[framework]}/-/", proc)
            assert fetch(f"{bases[framework]}/compute/", {}) == listing_body

        # The machine may be shared: alternate the servers in short rounds and report the
        # medians, so that a burst of someone else's load hits all of them alike.
        results = []
        for label, path, body in (
            ("GET /-/", "/-/", query_body),
            (f"GET /compute/ ({args.vms} VMs)", "/compute/", listing_body),
        ):
            targets = {"gateway": (gw, auth), **{k: (v, {}) for k, v in bases.items()}}
            for base, headers in targets.values():
                wrk(f"{base}{path}", seconds=1, headers=headers)  # warm up
            rates: dict[str, list[float]] = {name: [] for name in targets}
            for _ in range(args.rounds):
                for name, (base, headers) in targets.items():
                    rates[name].append(wrk(f"{base}{path}", seconds=args.seconds, headers=headers))
            medians = {name: statistics.median(r) for name, r in rates.items()}
            results.append((label, len(body), medians))
        virt_rate, virt_count = libvirt_listings(f"test://{node}", args.seconds)

        print(
            f"OCCI front end, {os.cpu_count()} CPUs, wrk -t1 -c8, median of {args.rounds} "
            f"alternating {args.seconds}s rounds, one uvicorn worker each"
        )
        print(
            f"{'request':<26}{'bytes':>8}{'gateway':>10}{'plain Flask':>13}{'ratio':>7}"
            f"{'bare connexion':>16}{'ratio':>7}   (req/s)"
        )
        for label, size, m in results:
            print(
                f"{label:<26}{size:>8}{m['gateway']:>10.1f}{m['flask']:>13.1f}"
                f"{m['gateway'] / m['flask']:>7.2f}{m['connexion']:>16.1f}"
                f"{m['gateway'] / m['connexion']:>7.2f}"
            )
        gateway_listing = results[1][2]["gateway"]
        print(
            f"libvirt listAllDomains + XMLDesc of {virt_count} domains (in-process, no HTTP): "
            f"{virt_rate:.1f} listings/s; gateway / libvirt = {gateway_listing / virt_rate:.1f}x"
        )
        print(
            "plain Flask: the same bytes from a Flask handler (uvicorn + a2wsgi); bare "
            "connexion: from a connexion FlaskApp without the gateway's auth and middleware"
        )
    finally:
        stop(procs)
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
