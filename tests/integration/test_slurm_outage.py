"""slurmctld stopped while clients call CreateActivity on a real gateway over HTTP.

``xtreemgate serve`` runs as its own process with the Slurm backend on the session's
cluster (tests/slurm_cluster.py). Hold mode (the default): every acknowledged activity is
retried with backoff until the controller is back, then is exactly one Slurm job and runs
to Finished. Refuse mode (``execution.slurm.controller_down = "refuse"``): CreateActivity
answers a SOAP Server fault saying the controller is down, and nothing is recorded.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import requests

from tests import bes_messages as m
from tests.conftest import PASSWORD, basic
from tests.services import prepare_state
from tests.slurm_cluster import wait_for

pytestmark = pytest.mark.service


def serve(gateway_server, tmp_path: Path, slurm_cluster, **slurm: str) -> str:
    """A gateway process with the Slurm backend and a user alice; its base URL."""
    work = slurm_cluster.directory / f"outage-{uuid.uuid4().hex[:8]}"
    work.mkdir(mode=0o755)
    python = shutil.which("python3", path="/usr/bin:/bin") or sys.executable
    env = {k: v for k, v in os.environ.items() if not k.startswith("XTREEMGATE_")}
    env.update(
        XTREEMGATE_STATE_DIR=str(tmp_path / "state"),
        XTREEMGATE_LOGGING__FORMAT="text",
        XTREEMGATE_LOGGING__ACCESS_LOG="false",
        XTREEMGATE_BACKENDS__EXECUTION="slurm",
        XTREEMGATE_EXECUTION__SLURM__WORK_DIR=str(work),
        XTREEMGATE_EXECUTION__SLURM__SLURM_CONF=str(slurm_cluster.conf),
        XTREEMGATE_EXECUTION__SLURM__POLL_INTERVAL_SECONDS="0.2",
        XTREEMGATE_EXECUTION__SLURM__PYTHON=python,
        **{f"XTREEMGATE_EXECUTION__SLURM__{k.upper()}": v for k, v in slurm.items()},
    )
    prepare_state(env, {"alice": PASSWORD})
    return gateway_server(env)


def soap(url: str, body: str) -> requests.Response:
    return requests.post(
        f"{url}/bes",
        data=m.envelope(body),
        headers={"Content-Type": "text/xml", **basic("alice")},
        timeout=30,
    )


def create(url: str, *command: str) -> str:
    response = soap(url, m.create(m.job(*command)))
    assert response.status_code == 200, response.text
    return m.body_of(response.content).findtext(
        "bes:ActivityIdentifier/wsa:ReferenceParameters/xg:ActivityIdentifier", namespaces=m.NS
    )


def states(url: str, ids: list[str]) -> dict[str, tuple[str, str]]:
    response = soap(url, m.batch("GetActivityStatuses", [m.epr_xml(activity_id=i) for i in ids]))
    assert response.status_code == 200, response.text
    found = {}
    for one, activity_id in zip(m.body_of(response.content), ids, strict=True):
        status = one.find("bes:ActivityStatus", m.NS)
        found[activity_id] = (status.get("state"), status.findtext("xg:Reason", "", m.NS))
    return found


def slurm_jobs_named(slurm_cluster: Any, *activity_ids: str) -> list[str]:
    """Every job (array tasks one by one) Slurm holds, queued or finished, submitted for
    these activities: a batch of several is one array named after its first activity."""
    names = slurm_cluster.run("squeue", "-h", "-r", "-t", "all", "-o", "%i|%j").stdout.split()
    wanted = {f"xg-{a}" for a in activity_ids}
    return [n.split("|")[0] for n in names if n.split("|", 1)[1] in wanted]


def test_held_and_retried_while_the_controller_is_down(gateway_server, tmp_path, slurm_cluster):
    url = serve(
        gateway_server,
        tmp_path,
        slurm_cluster,
        submit_retries="6",
        submit_backoff_seconds="0.5",
        command_timeout_seconds="10",
    )
    slurm_cluster.stop_controller()
    try:
        started = time.monotonic()
        ids = [create(url, "/bin/echo", f"job {i}") for i in range(3)]
        assert time.monotonic() - started < 10  # acknowledged at once, not after retries
        assert {s for s, _ in states(url, ids).values()} == {"Pending"}
        time.sleep(2)  # the launcher's sbatch attempts fail meanwhile
    finally:
        slurm_cluster.start_controller()

    def finished() -> dict[str, tuple[str, str]] | None:
        now = states(url, ids)
        return (
            now if all(s in ("Finished", "Failed", "Cancelled") for s, _ in now.values()) else None
        )

    final = wait_for(finished, 120, 0.5)
    assert final, states(url, ids)
    assert {s for s, _ in final.values()} == {"Finished"}, final
    # exactly one Slurm job (or array task) per acknowledged activity, none twice
    assert len(slurm_jobs_named(slurm_cluster, *ids)) == len(ids), ids


def test_refused_with_a_fault_while_the_controller_is_down(gateway_server, tmp_path, slurm_cluster):
    url = serve(gateway_server, tmp_path, slurm_cluster, controller_down="refuse")
    slurm_cluster.stop_controller()
    try:
        response = soap(url, m.create(m.job("/bin/true")))
        assert response.status_code == 500, response.text
        fault = m.body_of(response.content)
        assert fault.findtext("faultcode").endswith("Server")
        text = fault.findtext("faultstring")
        assert "controller does not answer" in text and "try again later" in text, text
        listed = requests.get(f"{url}/api/v1/activities/", headers=basic("alice"), timeout=10)
        assert listed.json()["total"] == 0  # nothing recorded, nothing to lose
    finally:
        slurm_cluster.start_controller()
    # back: accepted again once the cached answer of the last ping has expired
    time.sleep(1.1)
    activity_id = create(url, "/bin/true")
    done = wait_for(lambda: states(url, [activity_id])[activity_id][0] == "Finished", 60, 0.3)
    assert done, states(url, [activity_id])
    assert len(slurm_jobs_named(slurm_cluster, activity_id)) == 1
