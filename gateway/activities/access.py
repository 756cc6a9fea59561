"""Who may do what to one activity: the question every job front end (BES, this REST
API, the portal, TES next) asks VO policy about a stored record, answered the same way
for all of them. Each front end words the refusal in its own protocol.

A refusal says why only to a caller who may read the activity: to anyone else an
activity is as unknown as an id that names none (a reason names its owner and VO)."""

from __future__ import annotations

from backends.contracts.interfaces import VOBackend
from backends.contracts.model import PolicyDecision, Principal
from backends.store.activities import ActivityRecord, ActivityStore


class UnknownActivity(LookupError):
    """No activity has that id."""


class ActivityRefused(PermissionError):
    """VO policy does not let the caller do that to the activity; ``decision`` says why."""

    def __init__(self, record: ActivityRecord, decision: PolicyDecision) -> None:
        super().__init__(decision.reason)
        self.record = record
        self.decision = decision


def decide(
    vo: VOBackend, principal: Principal, action: str, record: ActivityRecord
) -> PolicyDecision:
    """VO policy's answer for ``action`` on the activity (its owner and VO)."""
    return vo.decide(principal, action, record.resource())


def hidden(vo: VOBackend, principal: Principal, action: str, record: ActivityRecord) -> bool:
    """Whether a refusal of ``action`` must answer as for an unknown id: the caller may
    not even read the activity."""
    return action == "read" or not decide(vo, principal, "read", record).permitted


def authorised(
    store: ActivityStore, vo: VOBackend, principal: Principal, activity_id: str, action: str
) -> ActivityRecord:
    """The record, if it exists and the caller may ``action`` it; else raises
    :class:`UnknownActivity` (also for an activity the caller may not read) or
    :class:`ActivityRefused`."""
    record = store.get(activity_id)
    if record is None:
        raise UnknownActivity(activity_id)
    decision = decide(vo, principal, action, record)
    if not decision.permitted:
        if hidden(vo, principal, action, record):
            raise UnknownActivity(activity_id)
        raise ActivityRefused(record, decision)
    return record
