"""``[execution]`` keys every execution plugin reads: whom jobs run as, and data staging."""

from __future__ import annotations

from pydantic import Field

from backends.contracts.settings import Section


class ExecutionSettings(Section):
    """The ``[execution]`` keys shared by the local and the Slurm plugins."""

    # When the gateway runs as root, a job with no mapped account runs as this one
    # (never as root). Empty: such jobs are refused.
    default_account: str = "nobody"
    # Folders file:// staging URLs may point into (as the job's account). Empty: file://
    # staging is refused.
    file_staging_roots: list[str] = Field(default_factory=list)
    staging_max_bytes: int = Field(10 * 1024**3, ge=0, description="bytes per file")
    staging_timeout_seconds: float = Field(3600, gt=0, description="per file, whole transfer")
    staging_io_timeout_seconds: float = Field(60, gt=0, description="without progress")
    # CA certificates (PEM) that https staging servers are verified with; default: the
    # system's. TLS is always verified.
    staging_ca_file: str = ""

    def staging_limits(self) -> dict[str, object]:
        """The limits a job's stager is given (backends/execution/staging.py)."""
        return {
            "max_bytes": self.staging_max_bytes,
            "timeout": float(self.staging_timeout_seconds),
            "io_timeout": float(self.staging_io_timeout_seconds),
            "file_roots": list(self.file_staging_roots),
            "ca_file": self.staging_ca_file,
        }
