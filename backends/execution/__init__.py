"""Execution backends: where jobs run (local processes; Slurm)."""
