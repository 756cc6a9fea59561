"""The Slurm execution plugin: every activity a Slurm job, through the CLI tools."""
