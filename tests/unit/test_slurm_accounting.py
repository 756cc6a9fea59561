"""sacct answers read back as BES statuses, and the accounting settings (no cluster)."""

from __future__ import annotations

import pytest

from backends.contracts.model import JobState
from backends.execution.slurm.accounting import Accounting, parse_sacct
from backends.execution.slurm.cli import SlurmCLI
from backends.execution.slurm.settings import SlurmSettings
from gateway.config import ConfigError, load_settings


def test_sacct_lines_become_statuses_with_reasons():
    out = (
        "11|COMPLETED|0:0|2026-11-25T10:00:00|2026-11-25T10:00:02\n"
        "12|FAILED|3:0|2026-11-25T10:00:00|2026-11-25T10:00:02\n"
        "13|TIMEOUT|0:15|2026-11-25T10:00:00|2026-11-25T10:01:30\n"
        "14|OUT_OF_MEMORY|0:125|2026-11-25T10:00:00|2026-11-25T10:00:09\n"
        "15|NODE_FAIL|0:0|2026-11-25T10:00:00|2026-11-25T10:00:09\n"
        "16|CANCELLED by 0|0:15|2026-11-25T10:00:00|2026-11-25T10:00:09\n"
        "17_2|COMPLETED|0:0|2026-11-25T10:00:00|2026-11-25T10:00:02\n"
    )
    found, unfinished = parse_sacct(out)
    assert not unfinished
    assert found["11"].state is JobState.FINISHED and found["11"].exit_code == 0
    assert found["12"].state is JobState.FAILED and found["12"].reason == "exited with status 3"
    assert "TIMEOUT" in found["13"].reason and found["13"].state is JobState.FAILED
    assert "ran out of memory" in found["14"].reason
    assert "NODE_FAIL" in found["15"].reason
    assert found["16"].state is JobState.CANCELLED and found["16"].reason == "cancelled by root"
    assert found["17_2"].finished_at is not None


def test_an_end_slurmdbd_has_not_received_is_not_final():
    """slurmctld sends a job's end later when slurmdbd was away: End is Unknown and the
    exit code 0:0 is not the job's; such a record must not become a verdict."""
    found, unfinished = parse_sacct("21|FAILED|0:0|2026-11-25T10:00:00|Unknown\n")
    assert unfinished == {"21"}
    assert found["21"].state is JobState.FAILED


def test_unknown_uid_is_named_by_number():
    found, _ = parse_sacct("31|CANCELLED by 4123456|0:15|2026-11-25T10:00:00|2026-11-25T10:00:01\n")
    assert found["31"].reason == "cancelled by uid 4123456"


def test_mode_is_checked():
    with pytest.raises(ValueError, match="auto, slurmdbd, jobcomp"):
        Accounting(SlurmCLI({}, {}, 1), "mysql")
    assert Accounting(SlurmCLI({}, {}, 1), "slurmdbd").source() == "slurmdbd"


def test_missing_sacct_leaves_the_jobs_pending_with_why():
    """A fault the real tools cannot be made to produce on demand: sacct not there."""
    accounting = Accounting(SlurmCLI({"sacct": "/nonexistent/sacct"}, {}, 5), "slurmdbd")
    answer = accounting.finished(["41", "42_1"])
    assert not answer.statuses
    assert set(answer.pending) == {"41", "42_1"}
    assert "slurmdbd" in answer.pending["41"] and "missing" in answer.pending["41"]
    assert "slurmdbd" in accounting.describe() and "missing" in accounting.describe()


def test_config_accounting_values(tmp_path):
    assert SlurmSettings().accounting == "auto"
    path = tmp_path / "x.toml"
    path.write_text('[execution.slurm]\naccounting = "mysql"\n')
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    assert "execution.slurm.accounting: Input should be 'auto', 'slurmdbd' or 'jobcomp'" in str(
        caught.value
    )
    path.write_text('[execution.slurm]\naccounting = "jobcomp"\nsacct_completion_file = false\n')
    with pytest.raises(ConfigError, match="sacct_completion_file is false"):
        load_settings(path)
