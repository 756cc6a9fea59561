"""Job control, queue hints and staging through the gateway on the real Slurm cluster.

The gateway runs in this process (real HTTP requests through the app) with the Slurm
backend on the session's one-node cluster (tests/slurm_cluster.py): requeue and
hold/release through the job-control REST API, with the BES statuses that follow; the
JSDL queue hint (ARC's jsdl-arc:CandidateTarget/QueueName) choosing a partition or being
refused; stage-in from HTTP and file: URLs and stage-out on the cluster.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from backends.store import migrate
from tests import bes_messages as m
from tests.conftest import basic
from tests.slurm_cluster import SECOND_PARTITION, wait_for
from tests.staging_servers import http_files

pytestmark = pytest.mark.service

API = "/api/v1/activities"
ARC = "http://www.nordugrid.org/ws/schemas/jsdl-arc"


def system_python() -> str:
    python = shutil.which("python3", path="/usr/bin:/bin")
    if python is None:
        pytest.fail("a system python3 is needed: the job's account stages data with it")
    return python


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A folder the job's account (nobody) can read and write, for file: staging."""
    root = Path(tempfile.mkdtemp(prefix="xg-slurm-control-"))
    root.chmod(0o777)  # the job runs as another account
    yield root
    shutil.rmtree(root, ignore_errors=True)


def slurm_app(make_settings, slurm_cluster, shared_dir: Path, **slurm: Any) -> Any:
    from gateway.app import create_app

    work = slurm_cluster.directory / f"ctl-{uuid.uuid4().hex[:8]}"
    work.mkdir(mode=0o755)
    settings = make_settings(
        backends={"execution": "slurm"},
        execution={
            "file_staging_roots": [str(shared_dir)],
            "slurm": {
                "work_dir": str(work),
                "slurm_conf": str(slurm_cluster.conf),
                "poll_interval_seconds": 0.2,
                "python": system_python(),
                **slurm,
            },
        },
    )
    migrate.upgrade(settings.database_url)
    return create_app(settings, configure_logs=False)


@pytest.fixture
def gateway(make_settings, slurm_cluster, shared_dir) -> Iterator[Any]:
    from gateway.auth.users import add_user

    app = slurm_app(make_settings, slurm_cluster, shared_dir)
    runtime = app.app.extensions["xtreemgate"]
    add_user(runtime.db, "alice", "correct horse battery")
    with app.test_client() as client:
        yield client, runtime
    runtime.close()


def create(client, definition: str) -> str:
    response = client.post(
        "/bes",
        content=m.envelope(m.create(definition)),
        headers={"Content-Type": "text/xml", **basic("alice")},
    )
    assert response.status_code == 200, response.text
    return m.body_of(response.content).findtext(
        "bes:ActivityIdentifier/wsa:ReferenceParameters/xg:ActivityIdentifier", namespaces=m.NS
    )


def shell(script: str, extra: str = "") -> str:
    return m.job("/bin/sh", "-c", script, extra=extra)


def rest(client, activity_id: str) -> dict[str, Any]:
    response = client.get(f"{API}/{activity_id}", headers=basic("alice"))
    assert response.status_code == 200, response.text
    return response.json()


def bes_state(client, activity_id: str) -> str:
    response = client.post(
        "/bes",
        content=m.envelope(m.batch("GetActivityStatuses", [m.epr_xml(activity_id=activity_id)])),
        headers={"Content-Type": "text/xml", **basic("alice")},
    )
    assert response.status_code == 200, response.text
    status = m.body_of(response.content).find("bes:Response/bes:ActivityStatus", m.NS)
    return status.get("state")


def wait(client, activity_id: str, *states: str, timeout: float = 60) -> dict[str, Any]:
    body = wait_for(lambda: (b := rest(client, activity_id))["state"] in states and b, timeout)
    assert body, f"{activity_id} never reached {states}: {rest(client, activity_id)}"
    return body


def work_of(runtime, activity_id: str) -> Path:
    return runtime.backends["execution"].work_dir / activity_id / "work"


def post(client, activity_id: str, verb: str):
    return client.post(f"{API}/{activity_id}/{verb}", headers=basic("alice"))


# -- requeue ----------------------------------------------------------------------------


def test_requeue_a_running_and_a_failed_job(gateway):
    """Both go back to Pending at once (REST and BES), run a second time under the same
    Slurm id, and only the second run's end is reported."""
    client, runtime = gateway
    # each run appends a line; the first run waits (running) or fails, the second finishes
    running = create(
        client, shell("echo run >> runs.txt; [ $(wc -l < runs.txt) -ge 2 ] || sleep 60")
    )
    failing = create(client, shell("echo run >> runs.txt; [ $(wc -l < runs.txt) -ge 2 ] || exit 3"))
    wait(client, running, "Running")
    failed = wait(client, failing, "Failed", "Finished")
    assert failed["state"] == "Failed" and failed["exit_code"] == 3, failed

    store = runtime.activity_store
    slurm_ids = {a: store.get(a).backend_id for a in (running, failing)}
    # another gateway process on the same state has seen (and keeps) the old end
    from backends.execution.slurm.backend import SlurmExecutionBackend

    backend = runtime.backends["execution"]
    elsewhere = SlurmExecutionBackend(backend.context)
    assert elsewhere.status([slurm_ids[failing]])[slurm_ids[failing]].state.value == "Failed"
    for activity_id in (running, failing):
        response = post(client, activity_id, "requeue")
        assert response.status_code == 200, response.text
        assert response.json()["state"] == "Pending", response.json()
        assert bes_state(client, activity_id) in ("Pending", "Running")
        assert store.get(activity_id).backend_id == slurm_ids[activity_id]
    # ... and no longer reports it as final
    again = elsewhere.status([slurm_ids[failing]])[slurm_ids[failing]]
    assert again.state.value in ("Pending", "Running"), again
    for activity_id in (running, failing):
        done = wait(client, activity_id, "Finished", "Failed", "Cancelled", timeout=90)
        assert done["state"] == "Finished" and done["exit_code"] == 0, done
        assert (work_of(runtime, activity_id) / "runs.txt").read_text() == "run\nrun\n"
        assert bes_state(client, activity_id) == "Finished"


def test_requeue_refusals(gateway, slurm_cluster):
    client, runtime = gateway
    # Cancelled stays cancelled (Terminate is for good)
    victim = create(client, shell("sleep 60"))
    wait(client, victim, "Running")
    response = client.post(
        "/bes",
        content=m.envelope(m.batch("TerminateActivities", [m.epr_xml(activity_id=victim)])),
        headers={"Content-Type": "text/xml", **basic("alice")},
    )
    assert response.status_code == 200
    wait(client, victim, "Cancelled")
    refused = post(client, victim, "requeue")
    assert refused.status_code == 409
    assert refused.headers["content-type"] == "application/problem+json"
    assert "Cancelled" in refused.json()["detail"]
    # a job Slurm ended itself (scancel behind the gateway's back: its script never
    # finished, so Slurm keeps it from being requeued) is refused with the reason
    other = create(client, shell("sleep 60"))
    wait(client, other, "Running")
    backend_id = runtime.activity_store.get(other).backend_id
    slurm_cluster.run("scancel", backend_id)
    wait(client, other, "Cancelled", "Failed")
    refused = post(client, other, "requeue")
    assert refused.status_code == 409
    assert "cannot requeue" in refused.json()["detail"]
    assert post(client, "no-such-activity", "requeue").status_code == 404


def test_requeue_on_the_local_backend_is_not_implemented(client, alice):
    """Backends that cannot requeue answer as suspend on an unsupported backend: 501."""
    response = client.post(
        "/bes",
        content=m.envelope(m.create(m.job("/bin/sleep", "30"))),
        headers={"Content-Type": "text/xml", **basic(alice)},
    )
    activity_id = m.body_of(response.content).findtext(
        "bes:ActivityIdentifier/wsa:ReferenceParameters/xg:ActivityIdentifier", namespaces=m.NS
    )
    wait(client, activity_id, "Running", timeout=10)
    answer = client.post(f"{API}/{activity_id}/requeue", headers=basic(alice))
    assert answer.status_code == 501
    assert answer.headers["content-type"] == "application/problem+json"
    assert "cannot requeue" in answer.json()["detail"]
    client.post(f"{API}/{activity_id}/signal", json={"signal": "SIGKILL"}, headers=basic(alice))


# -- hold and release (suspend/resume of a pending job) ---------------------------------


def test_suspend_a_running_and_hold_a_pending_job_through_rest(gateway):
    client, _runtime = gateway
    # a job that takes every CPU of the node keeps the next one Pending
    cpus = "<jsdl:Resources><jsdl:TotalCPUCount><jsdl:Exact>4</jsdl:Exact></jsdl:TotalCPUCount></jsdl:Resources>"
    blocker = create(client, shell("sleep 60", extra=cpus))
    wait(client, blocker, "Running")
    # a running job: suspend and resume (scontrol suspend/resume)
    suspended = post(client, blocker, "suspend")
    assert suspended.status_code == 200, suspended.text
    assert suspended.json()["substate"] == "Suspended"
    resumed = post(client, blocker, "resume")
    assert resumed.status_code == 200, resumed.text
    assert resumed.json()["state"] == "Running" and resumed.json()["substate"] == ""
    held = create(client, shell("echo ran > ran.txt"))
    # queued in Slurm (not only recorded): Slurm says why it waits
    queued = wait_for(lambda: (b := rest(client, held))["reason"] and b, 30)
    assert queued and queued["state"] == "Pending", rest(client, held)
    response = post(client, held, "suspend")
    assert response.status_code == 200, response.text
    assert response.json()["state"] == "Pending" and "held" in response.json()["reason"]
    # the CPUs come free; a held job still does not start
    killed = client.post(
        f"{API}/{blocker}/signal", json={"signal": "SIGKILL"}, headers=basic("alice")
    )
    assert killed.status_code == 200
    wait(client, blocker, "Failed", "Cancelled", "Finished")
    time.sleep(3)  # longer than a scheduling pass of the test cluster
    assert rest(client, held)["state"] == "Pending"
    released = post(client, held, "resume")
    assert released.status_code == 200, released.text
    done = wait(client, held, "Finished", "Failed")
    assert done["state"] == "Finished", done


# -- queue hint ---------------------------------------------------------------------------


def queue_hint(name: str) -> str:
    return (
        f'<jsdl:Resources><arc:CandidateTarget xmlns:arc="{ARC}">'
        f"<arc:QueueName>{name}</arc:QueueName></arc:CandidateTarget></jsdl:Resources>"
    )


def test_queue_hint_chooses_the_partition(gateway, slurm_cluster):
    client, runtime = gateway
    activity_id = create(client, m.job("/bin/true", extra=queue_hint(SECOND_PARTITION)))
    done = wait(client, activity_id, "Finished", "Failed")
    assert done["state"] == "Finished", done
    backend_id = runtime.activity_store.get(activity_id).backend_id
    shown = slurm_cluster.run("scontrol", "show", "job", backend_id).stdout
    assert f"Partition={SECOND_PARTITION} " in shown
    # the factory attributes document lists the queues a hint may name
    response = client.post(
        "/bes",
        content=m.envelope("<bes:GetFactoryAttributesDocument/>"),
        headers={"Content-Type": "text/xml", **basic("alice")},
    )
    queues = m.body_of(response.content).findall(
        "bes:FactoryResourceAttributesDocument/xg:Queue", m.NS
    )
    assert [q.text for q in queues] == ["debug", SECOND_PARTITION]


def test_unknown_queue_is_refused_before_anything_is_recorded(gateway):
    client, runtime = gateway
    response = client.post(
        "/bes",
        content=m.envelope(m.create(m.job("/bin/true", extra=queue_hint("nope")))),
        headers={"Content-Type": "text/xml", **basic("alice")},
    )
    assert response.status_code == 500, response.text
    fault = m.body_of(response.content)
    assert "InvalidRequestMessageFault" in m.fault_detail_names(fault)
    text = fault.findtext("faultstring")
    assert "'nope'" in text and "debug" in text and SECOND_PARTITION in text
    assert client.get(f"{API}/", headers=basic("alice")).json()["total"] == 0
    assert not list(runtime.backends["execution"].work_dir.glob("*-*-*"))


def test_queue_allow_list(make_settings, slurm_cluster, shared_dir):
    from gateway.auth.users import add_user

    app = slurm_app(make_settings, slurm_cluster, shared_dir, partitions=["debug"])
    runtime = app.app.extensions["xtreemgate"]
    add_user(runtime.db, "alice", "correct horse battery")
    try:
        with app.test_client() as client:
            response = client.post(
                "/bes",
                content=m.envelope(m.create(m.job("/bin/true", extra=queue_hint("grid")))),
                headers={"Content-Type": "text/xml", **basic("alice")},
            )
            assert response.status_code == 500
            text = m.body_of(response.content).findtext("faultstring")
            assert "not open to grid jobs" in text and "debug" in text
            assert "grid'" in text and ", grid" not in text
            ok = create(client, m.job("/bin/true", extra=queue_hint("debug")))
            assert wait(client, ok, "Finished", "Failed")["state"] == "Finished"
    finally:
        runtime.close()


def test_local_backend_refuses_a_queue_hint(client, alice):
    response = client.post(
        "/bes",
        content=m.envelope(m.create(m.job("/bin/true", extra=queue_hint("debug")))),
        headers={"Content-Type": "text/xml", **basic(alice)},
    )
    assert response.status_code == 500
    fault = m.body_of(response.content)
    assert "InvalidRequestMessageFault" in m.fault_detail_names(fault)
    assert "has no queues" in fault.findtext("faultstring")
    assert client.get(f"{API}/", headers=basic(alice)).json()["total"] == 0


# -- staging on the cluster -------------------------------------------------------------


def test_stage_in_from_http_and_file_then_stage_out(gateway, shared_dir):
    client, runtime = gateway
    remote = shared_dir / "remote"
    remote.mkdir()
    (remote / "numbers.txt").write_text("1\n2\n3\n")
    (shared_dir / "factor.txt").write_text("7\n")
    (shared_dir / "factor.txt").chmod(0o644)
    out = shared_dir / "out"
    out.mkdir()
    out.chmod(0o777)  # the job's account writes the result here
    with http_files(remote) as server:
        staging = (
            "<jsdl:DataStaging><jsdl:FileName>numbers.txt</jsdl:FileName>"
            "<jsdl:CreationFlag>overwrite</jsdl:CreationFlag>"
            f"<jsdl:Source><jsdl:URI>{server.url}/numbers.txt</jsdl:URI></jsdl:Source>"
            "</jsdl:DataStaging>"
            "<jsdl:DataStaging><jsdl:FileName>factor.txt</jsdl:FileName>"
            "<jsdl:CreationFlag>overwrite</jsdl:CreationFlag>"
            f"<jsdl:Source><jsdl:URI>{(shared_dir / 'factor.txt').as_uri()}</jsdl:URI>"
            "</jsdl:Source></jsdl:DataStaging>"
            "<jsdl:DataStaging><jsdl:FileName>product.txt</jsdl:FileName>"
            "<jsdl:CreationFlag>overwrite</jsdl:CreationFlag>"
            f"<jsdl:Target><jsdl:URI>{(out / 'product.txt').as_uri()}</jsdl:URI>"
            "</jsdl:Target></jsdl:DataStaging>"
        )
        script = "f=$(cat factor.txt); while read n; do echo $((n * f)); done < numbers.txt > product.txt"
        activity_id = create(client, shell(script, extra=staging))
        done = wait(client, activity_id, "Finished", "Failed", timeout=90)
    assert done["state"] == "Finished", done
    assert (out / "product.txt").read_text() == "7\n14\n21\n"
    staged = work_of(runtime, activity_id)
    assert (staged / "numbers.txt").read_text() == "1\n2\n3\n"
    # what the gateway wrote for the job's staging step names both sources
    plan = json.loads((staged.parent / "log" / "staging.json").read_text())
    assert [s["source"].split(":")[0] for s in plan["stage_in"]] == ["http", "file"]


def test_failed_stage_in_fails_the_job_with_the_reason(gateway, shared_dir):
    client, _runtime = gateway
    remote = shared_dir / "empty"
    remote.mkdir()
    with http_files(remote) as server:
        staging = (
            "<jsdl:DataStaging><jsdl:FileName>missing.txt</jsdl:FileName>"
            "<jsdl:CreationFlag>overwrite</jsdl:CreationFlag>"
            f"<jsdl:Source><jsdl:URI>{server.url}/missing.txt</jsdl:URI></jsdl:Source>"
            "</jsdl:DataStaging>"
        )
        activity_id = create(client, shell("cat missing.txt", extra=staging))
        done = wait(client, activity_id, "Finished", "Failed", timeout=90)
    assert done["state"] == "Failed", done
    assert "missing.txt" in done["reason"] and "404" in done["reason"], done
