"""Slurm accounting from slurmdbd: reconciling finished jobs squeue has forgotten.

Figure: a gateway restarted after N jobs finished (and squeue forgot them) asks about all
N: ONE status() call (one ``squeue --json`` + ONE ``sacct`` over slurmdbd for all N),
and its time. Baseline in the same run: ``sacct -j <id>`` one job at a time (for 50 of
them, extrapolated to N), which is what a per-job monitor would cost.

A real one-node cluster with MariaDB and slurmdbd (tests/slurm_cluster.py,
``slurmdbd=True``, ``MinJobAge=2``); the jobs are one ``sbatch --array`` of ``true``.
Run as root: ``.venv/bin/python benchmarks/bench_slurm_accounting.py [--jobs 300]``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from backends.contracts.interfaces import BackendContext  # noqa: E402
from backends.contracts.model import JobState  # noqa: E402
from backends.execution.slurm.backend import SlurmExecutionBackend  # noqa: E402
from backends.execution.slurm.settings import SlurmSettings  # noqa: E402
from tests.slurm_cluster import start_cluster, wait_for  # noqa: E402

SAMPLE = 50


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=300)
    args = parser.parse_args()
    directory = Path(tempfile.mkdtemp(prefix="bench-slurmdbd-"))
    os.chmod(directory, 0o755)  # noqa: S103 - slurmd's jobs pass through it
    cluster = start_cluster(directory, slurmdbd=True, overrides={"MinJobAge": "2"})
    try:
        out = cluster.run(
            "sbatch", "--parsable", f"--array=0-{args.jobs - 1}", "-o", "/dev/null", "--wrap=true"
        ).stdout
        job = out.strip().split(";")[0]
        ids = [f"{job}_{i}" for i in range(args.jobs)]
        started = time.monotonic()
        gone = wait_for(
            lambda: not cluster.run("squeue", "-h", "-j", job, check=False).stdout.strip(),
            timeout=600,
            interval=1,
        )
        assert gone, "the array did not finish within 10 minutes"
        print(
            f"{args.jobs} array tasks ran and were forgotten by squeue in "
            f"{time.monotonic() - started:.0f} s"
        )
        work = directory / "work"
        work.mkdir()
        slurm = SlurmSettings(work_dir=str(work), slurm_conf=str(cluster.conf))
        backend = SlurmExecutionBackend(
            BackendContext(None, directory, SimpleNamespace(slurm=slurm, default_account="nobody"))
        )
        backend.accounting.source()  # the one-time scontrol show config, not in the figure
        # slurmctld may still be sending the last records: until then some are not final
        wait_for(lambda: all(s.state.terminal for s in backend.status(ids[-5:]).values()), 60)
        backend = SlurmExecutionBackend(
            BackendContext(None, directory, SimpleNamespace(slurm=slurm, default_account="nobody"))
        )
        backend.accounting.source()
        began = time.perf_counter()
        answer = backend.status(ids)
        one_call = time.perf_counter() - began
        finished = sum(1 for s in answer.values() if s.state is JobState.FINISHED)
        assert finished == args.jobs, f"only {finished} of {args.jobs} Finished"
        began = time.perf_counter()
        for task in ids[:SAMPLE]:
            cluster.run("sacct", "-X", "-n", "-P", "-j", task, "-o", "JobID,State,ExitCode")
        per_job = (time.perf_counter() - began) / SAMPLE
        print(
            f"reconcile {args.jobs} finished jobs from slurmdbd, one status() call "
            f"(1 squeue + 1 sacct): {one_call * 1000:.0f} ms"
        )
        print(
            f"baseline, sacct -j one job at a time: {per_job * 1000:.1f} ms per job, "
            f"{per_job * args.jobs * 1000:.0f} ms for {args.jobs} "
            f"(measured on {SAMPLE}, extrapolated)"
        )
        print(f"speed-up: {per_job * args.jobs / one_call:.1f}x")
    finally:
        cluster.stop()
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
