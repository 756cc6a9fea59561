"""Upload and download of one file through the storage REST API of a served gateway
(POSIX volume, ``curl -T`` and ``curl -o`` over loopback), beside ``cp`` of the same file
on the same file system in the same run; and the server's peak RSS (VmHWM) after each
size, which stays flat when the transfers stream (it would grow by the file otherwise).

    .venv/bin/python benchmarks/bench_storage_api.py [MiB]   # default 512; also 64

Rounds alternate API and cp; medians are printed with every round.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from harness import server  # noqa: E402

from tests.services import prepare_state  # noqa: E402

MiB = 1024 * 1024
ROUNDS = 3
PASSWORD = "bench storage 42"


def peak_rss(port: int) -> int:
    """VmHWM of the process serving ``port`` (server.workers = 1), in MiB."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"serve" in argv and str(port).encode() in argv:
                for line in (entry / "status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1]) // 1024
    raise SystemExit(f"no process serves port {port}")


def fill(path: Path, size: int) -> None:
    block = os.urandom(MiB)
    with path.open("wb") as out:
        for _ in range(size // MiB):
            out.write(block)


def timed(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    sizes = sorted({64, int(sys.argv[1]) if len(sys.argv) > 1 else 512})
    xtreemgate = str(Path(sys.executable).with_name("xtreemgate"))
    curl = shutil.which("curl") or sys.exit("needs curl (apt-get install curl)")
    folder = Path(tempfile.mkdtemp(prefix="xg-bench-storage-api-"))
    env = {
        "XTREEMGATE_STATE_DIR": str(folder / "state"),
        "XTREEMGATE_LOGGING__ACCESS_LOG": "false",
    }
    full_env = {**{k: v for k, v in os.environ.items() if not k.startswith("XTREEMGATE_")}, **env}
    prepare_state(full_env, {"root": PASSWORD}, "--site-admin")
    try:
        with server([xtreemgate, "serve", "--port", "{port}"], env, "/healthz") as url:
            port = int(url.rsplit(":", 1)[1])
            auth = ("root", PASSWORD)
            requests.post(f"{url}/api/v1/vos", json={"name": "bench"}, auth=auth, timeout=30)
            made = requests.post(
                f"{url}/api/v1/volumes", json={"name": "b1", "vo": "bench"}, auth=auth, timeout=30
            )
            made.raise_for_status()
            volume_dir = Path(made.json()["url"].removeprefix("file://"))
            print(f"server peak RSS at start: {peak_rss(port)} MiB")
            for size in sizes:
                source = folder / f"source-{size}.bin"
                fill(source, size * MiB)
                target = f"{url}/api/v1/volumes/b1/files/f{size}.bin"
                user = f"root:{PASSWORD}"
                runs: dict[str, list[float]] = {
                    k: [] for k in ("up", "cp-in", "cp-sync", "down", "cp-out")
                }
                for _ in range(ROUNDS):
                    runs["up"].append(timed([curl, "-sSf", "-u", user, "-T", str(source), target]))
                    copy = volume_dir / "cp.bin"
                    runs["cp-in"].append(timed(["cp", str(source), str(copy)]))
                    copy.unlink()
                    # the API's upload is durable before it answers (fsync, then rename)
                    runs["cp-sync"].append(
                        timed(["sh", "-c", f"cp {source} {copy} && sync {copy}"])
                    )
                    back = folder / "back.bin"
                    runs["down"].append(timed([curl, "-sSf", "-u", user, "-o", str(back), target]))
                    runs["cp-out"].append(timed(["cp", str(volume_dir / "cp.bin"), str(back)]))
                    back.unlink()
                    (volume_dir / "cp.bin").unlink()
                print(f"\n{size} MiB, {ROUNDS} rounds (MiB/s, median; every round in brackets)")
                for api, base in (("up", "cp-in"), ("up", "cp-sync"), ("down", "cp-out")):
                    a = size / statistics.median(runs[api])
                    b = size / statistics.median(runs[base])
                    rounds = ", ".join(f"{size / t:.0f}" for t in runs[api])
                    print(
                        f"  {'upload (PUT)' if api == 'up' else 'download (GET)':<15} {a:7.0f} "
                        f"[{rounds}]   {base:<8} {b:7.0f}   ratio {a / b:.2f}x"
                    )
                print(f"  server peak RSS after the {size} MiB transfers: {peak_rss(port)} MiB")
                source.unlink()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
