"""Slurm execution backend: two figures, each beside a baseline measured in the same run.

1. 500 JSDL jobs through a real ``xtreemgate serve`` (BES CreateActivity over HTTP, 8
   client threads, Slurm backend on a real one-node cluster) until all 500 are queued in
   Slurm, beside a sequential ``sbatch`` loop over the same 500 job scripts (the script
   the gateway writes for that JSDL, the same sbatch options). Aim >= 1x. The two
   alternate for ``--rounds`` rounds (the machine is shared: both see the same load);
   every round and the medians are printed, with the CPU seconds of the gateway, its
   client and slurmctld. Then the same 500 as one JSDL parameter sweep (one request,
   one Slurm job array).
2. The monitor's cost with 5000 tracked jobs: ONE status() call (one ``squeue --json``)
   and its time, beside asking squeue about jobs one at a time (``squeue -j <id>`` for 50
   of them, extrapolated to 5000).

The partition is set DOWN while jobs are submitted, so jobs queue but do not run: the
figures are about submission and monitoring, not a 2-CPU node's scheduling.

Run as root (slurmd must):
``.venv/bin/python benchmarks/bench_slurm.py [--jobs 500] [--rounds 3] [--workers 1]``.
Everything runs in a temporary folder and is stopped at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_bes import CREATE  # noqa: E402
from harness import free_port, stop, wait_until_up  # noqa: E402

from backends.contracts.interfaces import BackendContext  # noqa: E402
from backends.contracts.model import JobSpec  # noqa: E402
from backends.execution.slurm import job as slurm_job  # noqa: E402
from backends.execution.slurm.backend import SlurmExecutionBackend  # noqa: E402
from backends.execution.slurm.settings import SlurmSettings  # noqa: E402
from tests.services import prepare_state  # noqa: E402
from tests.slurm_cluster import start_cluster  # noqa: E402

PASSWORD = "benchmark password"


def queued(cluster, prefix: str) -> int:
    out = cluster.run("squeue", "-h", "-o", "%j").stdout.split()
    return sum(1 for name in out if name.startswith(prefix))


def queued_tasks(cluster, prefix: str) -> int:
    """Queued jobs, counting each task of a pending array (squeue -r: one line each)."""
    out = cluster.run("squeue", "-h", "-r", "-o", "%j").stdout.split()
    return sum(1 for name in out if name.startswith(prefix))


def loop_scripts(folder: Path, count: int) -> list[Path]:
    """The job script the gateway writes for CREATE's JSDL, in a folder of its own each."""
    scripts = []
    for i in range(count):
        job = folder / f"job-{i}"
        (job / slurm_job.LOGS).mkdir(parents=True)
        text = slurm_job.script(JobSpec("/bin/true"), job, sys.executable, {}, "srun")
        (job / "job.sh").write_text(text)
        scripts.append(job / "job.sh")
    return scripts


def sweep_request(count: int) -> bytes:
    """CreateActivity with one JSDL document whose GFD.149 sweep makes ``count`` jobs."""
    sweep = (
        '<sweep:Sweep xmlns:sweep="http://schemas.ogf.org/jsdl/2009/03/sweep" '
        'xmlns:fn="http://schemas.ogf.org/jsdl/2009/03/sweep/functions"><sweep:Assignment>'
        "<sweep:DocumentNode><sweep:NamespaceBinding "
        'ns="http://schemas.ggf.org/jsdl/2005/11/jsdl-posix" prefix="p"/>'
        "<sweep:Match>//p:Argument[1]</sweep:Match></sweep:DocumentNode>"
        f'<fn:LoopInteger start="1" end="{count}" step="1"/></sweep:Assignment></sweep:Sweep>'
    )
    body = CREATE.replace(
        "<posix:Executable>/bin/true</posix:Executable>",
        "<posix:Executable>/bin/echo</posix:Executable><posix:Argument>0</posix:Argument>",
    ).replace("</jsdl:JobDescription>", "</jsdl:JobDescription>" + sweep)
    return body.encode()


def children_cpu() -> float:
    """CPU time of this process's reaped children (the loop's sbatch processes)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def cpu_seconds(pid: int) -> float:
    """CPU time of a process, its reaped children (sbatch, runuser) and its live children
    (server worker processes), from /proc."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if int(stat.parent.name) == pid or int(fields[1]) == pid:
            total += sum(int(v) for v in fields[11:15]) / ticks
    return total


def loop_round(cluster, folder: Path, count: int) -> tuple[float, list[str]]:
    """Baseline: a sequential sbatch loop over ``count`` job scripts (the script the
    gateway writes for the same JSDL, with the same sbatch options; as root directly,
    without the gateway's runuser). Returns its time and the Slurm ids."""
    scripts = loop_scripts(folder, count)
    options = slurm_job.sbatch_options(JobSpec("/bin/true"), "", slurm_job.MPI_PLUGINS)
    ids = []
    started = time.perf_counter()
    for i, script in enumerate(scripts):
        done = cluster.run(
            "sbatch",
            *options,
            f"--job-name=loop-{folder.name}-{i}",
            f"--output={script.parent}/slurm-%j.out",
            str(script),
        )
        ids.append(done.stdout.strip())
    return time.perf_counter() - started, ids


def gateway_round(cluster, gateway: str, token: str, count: int, clients: int, already: int):
    """``count`` CreateActivity requests (one JSDL job each) from ``clients`` threads, each
    request on a new connection as a plain client makes it; timed until Slurm holds all
    of them (``already`` xg- tasks were queued before). Returns (all queued, answered)."""
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "text/xml; charset=utf-8"}

    def create(_: int) -> int:
        request = urllib.request.Request(
            f"{gateway}/bes", data=CREATE.encode(), headers=headers, method="POST"
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status

    started, cpu = time.perf_counter(), time.process_time()
    with ThreadPoolExecutor(clients) as pool:
        codes = set(pool.map(create, range(count)))
    answered = time.perf_counter() - started
    client_cpu = time.process_time() - cpu
    if codes != {200}:
        raise SystemExit(f"CreateActivity answered HTTP {sorted(codes)}")
    deadline = time.monotonic() + 600
    while queued_tasks(cluster, "xg-") < already + count:
        if time.monotonic() > deadline:
            raise SystemExit("the gateway's jobs did not all reach Slurm within 600 s")
        time.sleep(0.05)
    return time.perf_counter() - started, answered, client_cpu


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of each")
    parser.add_argument("--tracked", type=int, default=5000)
    parser.add_argument("--clients", type=int, default=8, help="client threads")
    parser.add_argument("--workers", type=int, default=1, help="server worker processes")
    parser.add_argument("--launch-workers", type=int, default=2, help="bes.launch_workers")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root: the benchmark starts slurmd")
    folder = Path(tempfile.mkdtemp(prefix="bench-slurm-"))
    folder.chmod(0o755)
    cluster = start_cluster(folder)
    procs: list[subprocess.Popen] = []
    try:
        cluster.run("scontrol", "update", "PartitionName=debug", "State=DOWN")
        work = folder / "work"
        work.mkdir(mode=0o755)
        env = {k: v for k, v in os.environ.items() if not k.startswith("XTREEMGATE_")}
        env.update(
            XTREEMGATE_STATE_DIR=str(folder / "state"),
            XTREEMGATE_LOGGING__ACCESS_LOG="false",
            XTREEMGATE_LOGGING__LEVEL="WARNING",
            XTREEMGATE_BACKENDS__EXECUTION="slurm",
            XTREEMGATE_EXECUTION__SLURM__WORK_DIR=str(work),
            XTREEMGATE_EXECUTION__SLURM__SLURM_CONF=str(cluster.conf),
            XTREEMGATE_BES__LAUNCH_WORKERS=str(args.launch_workers),
        )
        xtreemgate = prepare_state(env, {"alice": PASSWORD})
        token = subprocess.run(
            [xtreemgate, "token", "issue", "alice"],
            env=env,
            text=True,
            check=True,
            capture_output=True,
        ).stdout.strip()
        port = free_port()
        procs.append(
            subprocess.Popen(
                [xtreemgate, "serve", "--port", str(port), "--workers", str(args.workers)],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
        )
        gateway = f"http://127.0.0.1:{port}"
        wait_until_up(f"{gateway}/healthz", procs[0])
        gateway_round(cluster, gateway, token, 8, args.clients, 0)  # warm-up, not timed

        # -- 1. alternating rounds: the sbatch loop, then the gateway, same 500 jobs -------
        loops, rounds, loop_ids, cpu = [], [], [], []
        slurmctld = int((folder / "slurmctld.pid").read_text())
        server = procs[0].pid
        for r in range(args.rounds):
            before = (cpu_seconds(slurmctld), children_cpu())
            seconds, ids = loop_round(cluster, folder / f"loop{r}", args.jobs)
            loop_cpu = (cpu_seconds(slurmctld) - before[0], children_cpu() - before[1])
            loops.append(seconds)
            loop_ids += ids
            before = (cpu_seconds(slurmctld), cpu_seconds(server))
            rounds.append(
                gateway_round(cluster, gateway, token, args.jobs, args.clients, 8 + r * args.jobs)
            )
            cpu.append(
                (*loop_cpu, cpu_seconds(slurmctld) - before[0], cpu_seconds(server) - before[1])
            )
        db = sqlite3.connect(f"file:{folder / 'state' / 'xtreemgate.db'}?mode=ro", uri=True)
        failed = db.execute("SELECT count(*) FROM activities WHERE state = 'Failed'").fetchone()
        db.close()
        submissions = queued(cluster, "xg-")
        total = args.rounds * args.jobs + 8
        print(
            f"{args.jobs} JSDL jobs through the gateway into Slurm (BES CreateActivity over "
            f"HTTP, {args.clients} client threads, {args.workers} server worker process(es), "
            f"{args.rounds} rounds alternating with the loop):"
        )
        for r, ((queued_after, answered, client), loop) in enumerate(
            zip(rounds, loops, strict=True)
        ):
            ctld_loop, sbatch, ctld_gateway, server_cpu = cpu[r]
            print(
                f"  round {r + 1}: answered in {answered:5.2f} s, all queued in Slurm after "
                f"{queued_after:5.2f} s; sbatch loop {loop:5.2f} s; "
                f"speed {loop / queued_after:4.2f}x"
            )
            print(
                f"    CPU s: gateway {server_cpu:4.2f} (with its sbatch), its client "
                f"{client:4.2f}, slurmctld {ctld_gateway:4.2f} | loop: sbatch {sbatch:4.2f}, "
                f"slurmctld {ctld_loop:4.2f}"
            )
        gateway_median = statistics.median(q for q, _, _ in rounds)
        loop_median = statistics.median(loops)
        print(
            f"  median: all queued after {gateway_median:5.2f} s "
            f"({args.jobs / gateway_median:5.0f} jobs/s); {total} activities, {failed[0]} "
            f"failed, in {submissions} Slurm submissions (single jobs or job arrays)"
        )
        print(
            f"baseline: sequential sbatch loop, {args.jobs} jobs: median {loop_median:5.2f} s "
            f"({args.jobs / loop_median:5.0f} jobs/s)"
        )
        print(f"  gateway / loop speed (medians): {loop_median / gateway_median:4.2f}x")

        # -- 1b. the same 500 as ONE JSDL parameter sweep: one CreateActivity, one array
        already = queued_tasks(cluster, "xg-")
        started = time.perf_counter()
        request = urllib.request.Request(
            f"{gateway}/bes",
            data=sweep_request(args.jobs),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "text/xml"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=120) as response:
            assert response.status == 200
        answered = time.perf_counter() - started
        deadline = time.monotonic() + 600
        while queued_tasks(cluster, "xg-") < already + args.jobs and time.monotonic() < deadline:
            time.sleep(0.05)
        sweep_seconds = time.perf_counter() - started
        print(
            f"{args.jobs} jobs as one JSDL parameter sweep (one CreateActivity -> one job "
            f"array): answered in {answered:5.2f} s, queued after {sweep_seconds:5.2f} s"
        )
        print(f"  sweep / loop speed: {loop_median / sweep_seconds:6.1f}x")

        # -- 2. the monitor: 5000 tracked jobs, one poll ----------------------------------
        options = SimpleNamespace(
            slurm=SlurmSettings(work_dir=str(work), slurm_conf=str(cluster.conf)),
            default_account="nobody",
        )
        backend = SlurmExecutionBackend(BackendContext(None, folder, options))
        db = sqlite3.connect(f"file:{folder / 'state' / 'xtreemgate.db'}?mode=ro", uri=True)
        while db.execute("SELECT count(*) FROM activities WHERE backend_id = ''").fetchone()[0]:
            time.sleep(0.1)  # queued in Slurm a moment before the ids are committed
        ids = [row[0] for row in db.execute("SELECT backend_id FROM activities")]
        db.close()
        # the loops' jobs, then more distinct jobs (not one array): squeue really lists
        # one record per job
        ids += loop_ids[: max(0, args.tracked - len(ids))]
        for i in range(args.tracked - len(ids)):
            ids.append(
                cluster.run(
                    "sbatch",
                    "--parsable",
                    f"--job-name=tracked-{i}",
                    "--output=/dev/null",
                    "--wrap=/bin/true",
                ).stdout.strip()
            )
        backend.invalidate()
        started = time.perf_counter()
        answer = backend.status(ids)
        poll_seconds = time.perf_counter() - started
        unanswered = [i for i in ids if i not in answer]
        if unanswered:
            print(f"  no status for {len(unanswered)} ids, e.g. {unanswered[:5]}")
        sample = ids[:: max(1, len(ids) // 50)][:50]  # array tasks and single jobs
        started = time.perf_counter()
        for backend_id in sample:
            json.loads(cluster.run("squeue", "--json", "-j", backend_id).stdout)
        one_each = (time.perf_counter() - started) / max(1, len(sample))
        records = len(json.loads(cluster.run("squeue", "--json").stdout)["jobs"])
        print(
            f"monitor: {len(ids)} tracked jobs ({records} squeue records), ONE status() call = "
            f"{backend.polls} squeue "
            f"call(s): {poll_seconds * 1000:7.1f} ms, {len(answer)} statuses"
        )
        print(
            f"baseline: squeue --json -j <id> one job at a time: {one_each * 1000:6.1f} ms "
            f"each ({len(sample)} asked), {one_each * len(ids):6.1f} s for {len(ids)}"
        )
    finally:
        stop(procs)
        cluster.stop()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
