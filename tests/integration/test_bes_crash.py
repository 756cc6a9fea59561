"""#16.13: ``kill -9`` of a served gateway under CreateActivity load, then a restart.

Several client threads send CreateActivity to a real ``xtreemgate serve`` (one process on
SQLite, and ``--workers 2`` on PostgreSQL); once a part is acknowledged the whole process
group gets SIGKILL (the job supervisors live in their own sessions and go on, as on a
real host). After a restart every acknowledged activity must run exactly once and end
Finished: none lost, none run twice, none reported wrongly.
"""

from __future__ import annotations

import base64
import os
import signal
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from lxml import etree

from tests import bes_messages as m
from tests import services
from tests.conftest import PASSWORD

CLIENTS = 8
KILL_AFTER = 60  # acknowledgements
JOB = m.job("/bin/sh", "-c", "echo ran >> ran.txt")
AUTH = "Basic " + base64.b64encode(f"alice:{PASSWORD}".encode()).decode()


def post(url: str, body: str, timeout: float = 30) -> bytes:
    request = urllib.request.Request(
        f"{url}/bes",
        data=m.envelope(body),
        headers={"Content-Type": "text/xml; charset=utf-8", "Authorization": AUTH},
    )
    with urllib.request.urlopen(request, timeout=timeout) as answer:
        return answer.read()


def serve(env: dict[str, str], folder: Path, workers: int) -> tuple[services.Service, str]:
    port = services.free_port()
    folder.mkdir(parents=True, exist_ok=True)
    argv = [services.xtreemgate_cli(), "serve", "--port", str(port), "--workers", str(workers)]

    def answers() -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                return True
        except OSError:
            return False

    service = services.start(
        "xtreemgate", argv, directory=folder, port=port, ready=answers, popen={"env": env}
    )
    return service, f"http://127.0.0.1:{port}"


def load_then_kill(url: str, service: services.Service) -> list[str]:
    """CreateActivity from CLIENTS threads until KILL_AFTER are acknowledged, then
    SIGKILL of the gateway's process group while requests are still in flight."""
    acknowledged: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def client() -> None:
        while not stop.is_set():
            try:
                answer = m.body_of(post(url, m.create(JOB)))
            except (OSError, urllib.error.URLError):
                return  # the gateway is gone
            activity = answer.findtext(
                "bes:ActivityIdentifier/wsa:ReferenceParameters/xg:ActivityIdentifier",
                namespaces=m.NS,
            )
            assert activity, etree.tostring(answer)
            with lock:
                acknowledged.append(activity)
                if len(acknowledged) >= KILL_AFTER:
                    stop.set()

    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    assert stop.wait(120), f"only {len(acknowledged)} acknowledged"
    os.killpg(service.pid, signal.SIGKILL)  # serve and its workers, mid-request
    for thread in threads:
        thread.join(60)
    with lock:
        return list(acknowledged)


def states(url: str, ids: list[str]) -> dict[str, str]:
    answer = m.body_of(
        post(url, m.batch("GetActivityStatuses", [m.epr_xml(activity_id=i) for i in ids]))
    )
    found = {}
    for response in answer.findall("bes:Response", m.NS):
        activity = response.findtext(
            "bes:ActivityIdentifier/wsa:ReferenceParameters/xg:ActivityIdentifier",
            namespaces=m.NS,
        )
        status = response.find("bes:ActivityStatus", m.NS)
        found[activity] = status.get("state") if status is not None else "unknown"
    return found


@pytest.mark.parametrize("workers", [1, 2], ids=["one-process-sqlite", "workers-2-postgresql"])
def test_kill_9_under_load_loses_and_doubles_nothing(workers, tmp_path, request):
    env = {k: v for k, v in os.environ.items() if not k.startswith("XTREEMGATE_")}
    env |= {
        "XTREEMGATE_STATE_DIR": str(tmp_path / "state"),
        "XTREEMGATE_LOGGING__FORMAT": "text",
        "XTREEMGATE_BES__HANDOVER_LEASE_SECONDS": "2",
        "XTREEMGATE_BES__LAUNCH_WORKERS": "1",  # a slow hand-over: a queue left behind
    }
    if workers > 1:
        env["XTREEMGATE_DATABASE__URL"] = request.getfixturevalue("postgres_url")
    services.prepare_state(env, {"alice": PASSWORD})
    service, url = serve(env, tmp_path / "first", workers)
    try:
        acknowledged = load_then_kill(url, service)
    finally:
        service.stop()
    service, url = serve(env, tmp_path / "second", workers)
    try:
        deadline = time.monotonic() + 90
        while True:
            seen = states(url, acknowledged)
            if all(s in ("Finished", "Failed", "Cancelled") for s in seen.values()):
                break
            assert time.monotonic() < deadline, sorted(set(seen.values()))
            time.sleep(0.5)
    finally:
        service.stop()
    assert len(seen) == len(acknowledged) >= KILL_AFTER
    wrong = {i: s for i, s in seen.items() if s != "Finished"}
    assert wrong == {}, f"{len(wrong)} of {len(seen)} not Finished"
    work = tmp_path / "state" / "activities"
    runs = {i: (work / i / "work" / "ran.txt").read_text().count("ran") for i in acknowledged}
    assert {i: n for i, n in runs.items() if n != 1} == {}  # each exactly once
    # and nothing the dead process recorded (acknowledged or not) ran twice
    for folder in work.iterdir():
        ran = folder / "work" / "ran.txt"
        if ran.exists():
            assert ran.read_text() == "ran\n", folder.name
