"""How an activity's state is rendered: BES state, staging substates in the HPC File
Staging namespace, exit code and reason as extension elements."""

from __future__ import annotations

from datetime import UTC, datetime

from lxml import etree

from backends.contracts.model import JobState
from backends.store.activities import ActivityRecord
from gateway.bes.factory import activity_status
from gateway.bes.namespaces import XG
from gateway.xmlns import HPCP_FS


def record(state: JobState, substate: str = "", exit_code=None, reason="") -> ActivityRecord:
    now = datetime.now(UTC)
    return ActivityRecord(
        "a", "alice", "", state, substate, exit_code, reason, "", "local", "a", now, now
    )


def test_staging_substates_are_hpc_file_staging_elements():
    status = activity_status(record(JobState.RUNNING, "Staging-In"))
    assert status.get("state") == "Running"
    assert [child.tag for child in status] == [f"{{{HPCP_FS}}}Staging-In"]
    out = activity_status(record(JobState.RUNNING, "Staging-Out"))
    assert out[0].tag == f"{{{HPCP_FS}}}Staging-Out"


def test_other_substates_exit_code_and_reason_are_extensions():
    status = activity_status(record(JobState.FAILED, "Odd sub/state", 137, "killed"))
    assert [etree.QName(c).localname for c in status] == ["Odd_sub_state", "ExitCode", "Reason"]
    assert {etree.QName(c).namespace for c in status} == {XG}
    assert status.findtext(f"{{{XG}}}ExitCode") == "137"
