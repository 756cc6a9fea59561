"""Handlers of openapi/activities.yaml: job control beyond BES (list, read, suspend,
resume, signal, requeue), on the same activity records and policy as the SOAP endpoint."""

from __future__ import annotations

import signal as signals
from collections.abc import Callable
from typing import Any

from connexion.problem import problem

from backends.contracts.interfaces import (
    BackendError,
    ExecutionBackend,
    InvalidState,
    NotSupported,
    UnknownResource,
)
from backends.contracts.model import JobState, JobStatus, Principal
from backends.store.activities import ActivityRecord
from gateway import runtime as runtime_module
from gateway.activities.access import ActivityRefused, UnknownActivity, authorised
from gateway.auth.security import current_principal
from gateway.bes.epr import activity_address
from gateway.bes.handlers import endpoint_url
from gateway.responses import json_response
from gateway.runtime import Runtime


def _render(rt: Runtime, record: ActivityRecord) -> dict[str, Any]:
    base = endpoint_url(rt)
    return {
        "id": record.id,
        "state": record.state.value,
        "substate": record.substate,
        "exit_code": record.exit_code,
        "reason": record.reason,
        "owner": record.owner,
        "vo": record.vo,
        "backend": record.backend,
        "created_at": record.created_at.isoformat(),
        "updated_at": record.updated_at.isoformat(),
        "epr_address": activity_address(base, record.id),
    }


def _refreshed(rt: Runtime, records: list[ActivityRecord]) -> list[ActivityRecord]:
    if not records:
        return records
    try:
        by_id = rt.activities.refresh(records)
    except BackendError:
        return records  # last known state; never guessed
    return [by_id[r.id] for r in records]


def _authorised(
    rt: Runtime, principal: Principal, activity_id: str, action: str
) -> ActivityRecord | Any:
    try:
        return authorised(rt.activity_store, rt.vo, principal, activity_id, action)
    except UnknownActivity:
        return problem(404, "Not Found", f"no activity {activity_id!r}")
    except ActivityRefused as refused:
        return problem(
            403, "Forbidden", f"not allowed to {action} this activity: {refused.decision.reason}"
        )


def list_activities(limit: int = 100, offset: int = 0) -> Any:
    rt = runtime_module.current()
    principal = current_principal()
    store = rt.activity_store
    records = _refreshed(rt, store.list(principal.name, limit=limit, offset=offset))
    return json_response(
        {"activities": [_render(rt, r) for r in records], "total": store.count(principal.name)}
    )


def get_activity(activity_id: str) -> Any:
    rt = runtime_module.current()
    found = _authorised(rt, current_principal(), activity_id, "read")
    if not isinstance(found, ActivityRecord):
        return found
    return json_response(_render(rt, _refreshed(rt, [found])[0]))


def _control(activity_id: str, verb: str, act: Callable[[ExecutionBackend, str], None]) -> Any:
    rt = runtime_module.current()
    found = _authorised(rt, current_principal(), activity_id, "control")
    if not isinstance(found, ActivityRecord):
        return found
    record = _refreshed(rt, [found])[0]
    if record.state.terminal or not record.backend_id:
        return problem(409, "Conflict", f"cannot {verb} activity {activity_id}: {_why(record)}")
    try:
        act(rt.execution, record.backend_id)
    except InvalidState as exc:
        return problem(409, "Conflict", f"cannot {verb} activity {activity_id}: {exc}")
    except UnknownResource as exc:
        return problem(409, "Conflict", f"cannot {verb} activity {activity_id}: {exc}")
    except NotSupported as exc:
        return problem(501, "Not Implemented", str(exc))
    return json_response(_render(rt, _refreshed(rt, [record])[0]))


def _why(record: ActivityRecord) -> str:
    if not record.backend_id and not record.state.terminal:
        return (
            f"it is {record.state.value} and not yet handed to the execution backend; "
            "try again in a moment"
        )
    return f"it is {record.state.value}"


def suspend_activity(activity_id: str) -> Any:
    return _control(activity_id, "suspend", lambda backend, bid: backend.suspend(bid))


def resume_activity(activity_id: str) -> Any:
    return _control(activity_id, "resume", lambda backend, bid: backend.resume(bid))


def signal_activity(activity_id: str, body: dict[str, str]) -> Any:
    signum = int(signals.Signals[body["signal"]])
    return _control(
        activity_id, f"signal ({body['signal']})", lambda backend, bid: backend.signal(bid, signum)
    )


def requeue_activity(activity_id: str) -> Any:
    """Run a Running, Failed or Finished activity again from the start. The record goes
    back to Pending at once, so no front end reports the old run's end as final; a
    Cancelled one stays cancelled (TerminateActivities is for good)."""
    rt = runtime_module.current()
    principal = current_principal()
    found = _authorised(rt, principal, activity_id, "control")
    if not isinstance(found, ActivityRecord):
        return found
    record = _refreshed(rt, [found])[0]
    if record.state in (JobState.PENDING, JobState.CANCELLED) or not record.backend_id:
        why = {
            JobState.PENDING: "it has not started",
            JobState.CANCELLED: "terminated activities stay terminated",
        }.get(record.state, "it never reached the execution backend")
        return problem(
            409,
            "Conflict",
            f"cannot requeue activity {activity_id}: it is {record.state.value} ({why})",
        )
    try:
        rt.execution.requeue(record.backend_id)
    except (InvalidState, UnknownResource) as exc:
        return problem(409, "Conflict", f"cannot requeue activity {activity_id}: {exc}")
    except NotSupported as exc:
        return problem(501, "Not Implemented", str(exc))
    store = rt.activity_store
    store.set_status(record.id, JobStatus(JobState.PENDING, reason=f"requeued by {principal.name}"))
    # as written: Slurm may show the old run COMPLETING for a moment (reported Running)
    return json_response(_render(rt, store.get(record.id) or record))
