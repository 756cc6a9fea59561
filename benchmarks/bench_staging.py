"""Staging a 1 GiB file from one GlusterFS volume to another, beside ``cp`` of the same
file in the same run, and the peak memory of the staging process (flat: the same for a
64 MiB and a 1 GiB file, because staging streams in fixed chunks).

The stage-in copies volume A -> a job's working folder, the stage-out that folder ->
volume B, both through backends/execution/staging.py exactly as a job's supervisor runs
them (a fresh process each, so its peak RSS is its own). The baseline is
``cp A/file work/`` and ``cp work/file B/``. Rounds alternate staging and cp; medians
are printed with every round.

Needs root, glusterfs-server and glusterfs-client; starts glusterd if none answers (and
stops it afterwards), and removes the two volumes it made.
"""

from __future__ import annotations

import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from backends.contracts.interfaces import BackendContext  # noqa: E402
from backends.storage.glusterfs import GlusterStorageBackend  # noqa: E402

GiB = 1024**3
ROUNDS = 3

STAGE = """
import sys
from pathlib import Path
from backends.execution.staging import StagingLimits, TransferOptions, stage_in, stage_out
direction, work, name, url, root = sys.argv[1:6]
limits = StagingLimits(max_bytes=1 << 40, timeout=3600)
step = stage_in if direction == "in" else stage_out
step(Path(work), name, url, TransferOptions(local_root=root), limits)
"""


def gluster_answers() -> bool:
    done = subprocess.run(["gluster", "--mode=script", "volume", "list"], capture_output=True)
    return done.returncode == 0


def timed(argv: list[str]) -> tuple[float, int]:
    """Seconds and peak RSS (KiB) of one child process."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=ROOT)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    if status != 0:
        raise SystemExit(f"{argv[:3]} failed with status {status}")
    return elapsed, usage.ru_maxrss


def fill(path: Path, size: int) -> None:
    block = os.urandom(1024 * 1024)
    with path.open("wb") as out:
        for _ in range(size // len(block)):
            out.write(block)


def main() -> None:
    if os.geteuid() != 0 or not shutil.which("glusterd"):
        raise SystemExit("needs root and glusterfs-server glusterfs-client")
    folder = Path(tempfile.mkdtemp(prefix="xg-bench-staging-"))
    glusterd = None
    if not gluster_answers():
        pidfile = folder / "glusterd.pid"
        subprocess.run(["glusterd", "-p", str(pidfile)], check=True)
        while not gluster_answers():
            time.sleep(0.1)
        glusterd = int(pidfile.read_text())
    options = SimpleNamespace(
        server=socket.gethostname(),
        brick_root=str(folder / "bricks"),
        mount_root=str(folder / "mounts"),
    )
    storage = GlusterStorageBackend(BackendContext(None, folder / "state", options))
    names = [f"xgbench-{uuid.uuid4().hex[:6]}-{side}" for side in ("a", "b")]
    python = sys.executable
    try:
        for name in names:
            storage.create_volume(name, "bench", None)
        a, b = (storage.local_root(n) for n in names)
        work = folder / "work"
        work.mkdir()
        peaks: dict[int, int] = {}
        for size in (64 * 1024**2, GiB):
            fill(a / "file", size)
            stage_t: list[float] = []
            cp_t: list[float] = []
            peak = 0
            for _ in range(ROUNDS if size == GiB else 1):
                for target in (work / "file", b / "file"):
                    target.unlink(missing_ok=True)
                t_in, rss_in = timed(
                    [
                        python,
                        "-c",
                        STAGE,
                        "in",
                        str(work),
                        "file",
                        storage.url(names[0], "file"),
                        str(a),
                    ]
                )
                t_out, rss_out = timed(
                    [
                        python,
                        "-c",
                        STAGE,
                        "out",
                        str(work),
                        "file",
                        storage.url(names[1], "file"),
                        str(b),
                    ]
                )
                stage_t.append(t_in + t_out)
                peak = max(peak, rss_in, rss_out)
                for target in (work / "file", b / "file"):
                    target.unlink(missing_ok=True)
                c_in, _ = timed(["cp", str(a / "file"), str(work / "file")])
                c_out, _ = timed(["cp", str(work / "file"), str(b / "file")])
                cp_t.append(c_in + c_out)
            peaks[size] = peak
            mib = size / 1024**2
            s, c = statistics.median(stage_t), statistics.median(cp_t)
            print(f"{mib:.0f} MiB volume A -> job folder -> volume B (GlusterFS FUSE):")

            def rounds(times: list[float]) -> str:
                return ", ".join(f"{t:.2f}s" for t in times)

            print(f"  staging {mib / s:7.1f} MiB/s  (rounds: {rounds(stage_t)})")
            print(f"  cp      {mib / c:7.1f} MiB/s  (rounds: {rounds(cp_t)})")
            print(f"  staging / cp throughput: {c / s:.2f}x")
            print(f"  peak RSS of a staging process: {peak / 1024:.1f} MiB")
        small, big = peaks[64 * 1024**2], peaks[GiB]
        print(f"peak RSS 1 GiB vs 64 MiB file: {big / 1024:.1f} vs {small / 1024:.1f} MiB (flat)")
    finally:
        for name in names:
            try:
                storage.delete_volume(name)
            except Exception as exc:
                print(f"could not remove volume {name}: {exc}", file=sys.stderr)
        storage.close()
        if glusterd:
            os.kill(glusterd, 15)
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
