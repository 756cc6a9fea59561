"""The model's plain form: what the execution plugins write into job.json/staging.json."""

import json

from backends.contracts.model import Bounds, JobSpec, StagingSpec, to_plain


def test_job_spec_becomes_json_ready_data_keyed_by_field_name() -> None:
    job = JobSpec(
        executable="/bin/echo",
        arguments=("a", "b"),
        environment={"X": "1"},
        stage_in=(StagingSpec(filename="in", source="http://h/in", password="s"),),
        total_cpu_count_bounds=Bounds(lower=1, upper=4),
    )
    plain = to_plain(job)
    assert isinstance(plain, dict)
    assert plain["arguments"] == ["a", "b"]
    assert plain["environment"] == {"X": "1"}
    assert plain["stage_in"][0]["source"] == "http://h/in"
    assert plain["stage_in"][0]["password"] == "s"  # the supervisor needs it
    assert plain["total_cpu_count_bounds"] == {"lower": 1, "upper": 4}
    assert json.loads(json.dumps(plain)) == plain


def test_a_job_read_back_from_its_plain_form_is_the_same_job() -> None:
    """#16.13: a recorded activity's job is handed over again from this form."""
    from backends.contracts.model import job_from_plain

    job = JobSpec(
        executable="/bin/echo",
        arguments=("a", "b"),
        environment={"X": "1"},
        candidate_hosts=("h1",),
        stage_in=(StagingSpec(filename="in", source="http://h/in", password="s"),),
        stage_out=(StagingSpec(filename="out", target="ftp://h/out"),),
        total_cpu_count_bounds=Bounds(lower=1, upper=4),
        queue="gpu",
    )
    assert job_from_plain(json.loads(json.dumps(to_plain(job)))) == job
