"""What every HTTP benchmark here needs: a server in its own process on a free loopback
port, waiting for it to answer and stopping it, a plain-Flask baseline served the same
way, and wrk to load them.

Figures are only compared within one run: both sides are measured alternately, several
rounds each, and the median is reported, so a noisy neighbour hits both.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

HERE = Path(__file__).resolve().parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until_up(
    url: str,
    proc: subprocess.Popen,
    *,
    method: str = "GET",
    headers: Mapping[str, str] | None = None,
    seconds: float = 60,
) -> None:
    """Return once ``url`` answers at all (an HTTP error is an answer); stop the run
    with the server's stderr if it exits first, or if it does not answer in time."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited: {proc.stderr.read().decode() if proc.stderr else ''}")
        request = urllib.request.Request(url, method=method, headers=dict(headers or {}))
        try:
            with urllib.request.urlopen(request, timeout=2):
                return
        except urllib.error.HTTPError:
            return  # it answers
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not answer within {seconds:g} s")


def stop(procs: Iterable[subprocess.Popen]) -> None:
    """Terminate each server; kill the ones still there after 10 s."""
    for proc in procs:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


@contextmanager
def server(argv: Sequence[str], env: dict[str, str], probe_path: str) -> Iterator[str]:
    """Start ``argv`` (with ``{port}`` filled in), wait for ``probe_path``, stop it after."""
    port = free_port()
    log = tempfile.TemporaryFile()  # noqa: SIM115 - a pipe nobody reads stalls a server
    proc = subprocess.Popen(
        [a.format(port=port) for a in argv],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                log.seek(0)
                raise RuntimeError(f"{argv[0]} exited: {log.read().decode()[-2000:]}")
            try:
                with urllib.request.urlopen(url + probe_path, timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{url}{probe_path} did not answer in 60 s") from None
                time.sleep(0.1)
        yield url
    finally:
        stop([proc])
        log.close()


def uvicorn_argv(factory: str, *, app_dir: str = "") -> list[str]:
    """One uvicorn worker, no access log: the serving stack of both sides of a comparison."""
    argv = [sys.executable, "-m", "uvicorn", "--factory", factory, "--port", "{port}"]
    argv += ["--no-access-log", "--log-level", "warning"]
    return argv + (["--app-dir", app_dir] if app_dir else [])


def plain_flask_server(body: bytes, content_type: str, path: str) -> AbstractContextManager[str]:
    """The baseline: a plain Flask handler returning ``body`` at ``path``, on uvicorn."""
    body_file = HERE / ".plain-body"
    body_file.write_bytes(body)
    env = {"XG_BENCH_BODY": str(body_file), "XG_BENCH_TYPE": content_type, "XG_BENCH_PATH": path}
    return server(uvicorn_argv("plain_app:create", app_dir=str(HERE)), env, path)


def wrk(
    url: str,
    *,
    seconds: int = 5,
    connections: int = 8,
    threads: int = 1,
    headers: Mapping[str, str] | None = None,
    body: str | None = None,
    content_type: str = "text/xml; charset=utf-8",
) -> float:
    """Requests per second that wrk measured: GET, or POST of ``body`` (through a Lua
    script); a non-2xx answer makes it an error."""
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install wrk")
    argv = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency"]
    for name, value in (headers or {}).items():
        argv += ["-H", f"{name}: {value}"]
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        if body is not None:
            script.write(
                f'wrk.method = "POST"\nwrk.body = [==[{body}]==]\n'
                f'wrk.headers["Content-Type"] = "{content_type}"\n'
            )
            script.flush()
            argv += ["-s", script.name]
        out = subprocess.run([*argv, url], capture_output=True, text=True, check=True).stdout
    if "Non-2xx" in out:
        raise RuntimeError(f"wrk saw error answers from {url}:\n{out}")
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))


def alternate(measures: dict[str, Callable[[], float]], rounds: int = 3) -> dict[str, list[float]]:
    """Each measure ``rounds`` times, interleaved; the first round of each is a warm-up."""
    for measure in measures.values():
        measure()
    results: dict[str, list[float]] = {name: [] for name in measures}
    for _ in range(rounds):
        for name, measure in measures.items():
            results[name].append(measure())
    return results


def report(title: str, results: dict[str, list[float]], unit: str, baseline: str) -> None:
    medians = {name: statistics.median(values) for name, values in results.items()}
    print(f"\n{title}")
    for name, value in medians.items():
        runs = ", ".join(f"{v:.0f}" for v in results[name])
        ratio = value / medians[baseline]
        print(f"  {name:<40} {value:>10.0f} {unit}  ({ratio:.2f}x baseline)  runs: {runs}")
