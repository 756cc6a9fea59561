"""What the execution plugins refuse before a job is recorded, beyond their own limits:
staging URLs that the job's stager would refuse at run time (``file:`` URLs where file
staging is off or outside ``execution.file_staging_roots``). Shared by every plugin that
stages with ``backends/execution/staging.py``."""

from __future__ import annotations

from collections.abc import Iterable

from backends.contracts.interfaces import InvalidSpec
from backends.contracts.model import JobSpec
from backends.execution.staging import StagingError, check_file_url


def admit_staging(job: JobSpec, file_roots: Iterable[str]) -> None:
    """InvalidSpec (``field`` ``stage_in`` or ``stage_out``) naming the file and the
    URL of the first transfer that would be refused when the job runs."""
    roots = list(file_roots)
    for field, specs in (("stage_in", job.stage_in), ("stage_out", job.stage_out)):
        for spec in specs:
            url = spec.source if field == "stage_in" else spec.target
            try:
                check_file_url(url, roots)
            except StagingError as exc:
                raise InvalidSpec(f"{spec.filename}: {exc}", field=field) from exc
