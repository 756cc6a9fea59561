"""``[execution.slurm]``: the Slurm plugin's own keys (the CLI tools, polling, retries,
accounting), and ``[execution]`` as the Slurm plugin reads it."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from backends.contracts.settings import Section
from backends.execution.settings import ExecutionSettings


class SlurmSettings(Section):
    """The Slurm execution backend (backends.execution = "slurm"): the CLI tools."""

    # The folder every node sees at the same path (jobs run and stage there); default
    # <state_dir>/slurm, which only a one-host cluster can use.
    work_dir: str = ""
    partition: str = ""  # "" = the cluster's default partition
    # Partitions a JSDL queue hint may name (the others are refused); empty = every
    # partition sinfo reports.
    partitions: list[str] = Field(default_factory=list)
    slurm_conf: str = ""  # SLURM_CONF for the tools; "" = theirs (/etc/slurm/slurm.conf)
    sbatch: str = "sbatch"
    squeue: str = "squeue"
    scancel: str = "scancel"
    sacct: str = "sacct"
    sinfo: str = "sinfo"
    scontrol: str = "scontrol"
    srun: str = "srun"  # as the compute nodes see it (SPMD jobs run through it)
    runuser: str = "runuser"  # a root gateway submits as the mapped account through it
    # One squeue --json for all jobs at most this often, however many are asked about.
    poll_interval_seconds: float = Field(2.0, ge=0, le=3600)
    command_timeout_seconds: float = Field(30.0, gt=0, le=3600)
    # While slurmctld cannot be reached, sbatch is retried this many times, waiting
    # submit_backoff_seconds, then twice as long each time; then the activity fails with
    # the reason (never silently lost).
    submit_retries: int = Field(3, ge=0, le=100)
    submit_backoff_seconds: float = Field(1.0, ge=0, le=600)
    # "hold": CreateActivity accepts jobs while slurmctld is down (held and retried as
    # above); "refuse": it answers a SOAP Server fault saying so, and records nothing.
    controller_down: Literal["hold", "refuse"] = "hold"
    sdiag: str = "sdiag"  # how many records slurmctld still owes slurmdbd
    # Where finished jobs squeue has forgotten are read: "slurmdbd" (sacct from the
    # accounting database), "jobcomp" (sacct -c on the job-completion file), or "auto":
    # slurmdbd when the controller's AccountingStorageType is accounting_storage/slurmdbd,
    # the job-completion file otherwise.
    accounting: Literal["auto", "slurmdbd", "jobcomp"] = "auto"
    # With "auto" and no slurmdbd: false for sites that keep no job-completion file
    # either (a job squeue has forgotten is then reported lost).
    sacct_completion_file: bool = True
    # The interpreter the compute nodes run data staging with; default the gateway's.
    python: str = ""
    # SPMD variation (GFD.115 name, lower case) -> srun --mpi plugin, beyond the defaults.
    mpi_plugins: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _accounting_consistent(self) -> SlurmSettings:
        if self.accounting == "jobcomp" and not self.sacct_completion_file:
            raise ValueError(
                'accounting = "jobcomp" reads the job-completion file, but '
                'sacct_completion_file is false: set accounting to "slurmdbd" or '
                '"auto", or sacct_completion_file to true'
            )
        return self


class SlurmExecutionSettings(ExecutionSettings):
    """``[execution]`` for the Slurm plugin: the shared keys, and its own in ``slurm``."""

    slurm: SlurmSettings = Field(default_factory=SlurmSettings)
