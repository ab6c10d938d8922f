"""Shared by the benchmark scripts: machine facts, a quiet-machine wait, peak RSS."""

from __future__ import annotations

import os
import platform
import resource
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

QUIET_LOAD = 1.5
ROOT = Path(__file__).resolve().parent.parent
REAL = ROOT / "tests" / "data"  # the real files the repository carries (tests/data/README.md)
# Every real symbol the project has, and its file: the Kaggle sample's two, two Yahoo exports.
REAL_FILES = {"AAL": ROOT / "data" / "sample" / "prices-split-adjusted.csv",
              "ZION": ROOT / "data" / "sample" / "prices-split-adjusted.csv",
              "AMZN": REAL / "AMZN.csv", "WEN": REAL / "WEN.csv"}


def child_env(prefect_home: Path, api_url: str | None) -> dict[str, str]:
    """Environment of a `closecast` child process: this checkout on the path, its own
    PREFECT_HOME (a temporary server per process) or the given Prefect API, quiet libraries."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PREFECT_HOME": str(prefect_home),
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "GX_ANALYTICS_ENABLED": "false",
           "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("PREFECT_API_URL", None)
    if api_url:
        env["PREFECT_API_URL"] = api_url
    return env


def timed_child(args: list[str], env: dict[str, str]) -> tuple[float, str]:
    """Wall seconds and stdout of one child process run from the checkout; raise with its
    stderr tail if it fails."""
    started = time.perf_counter()
    done = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True)
    seconds = round(time.perf_counter() - started, 2)
    if done.returncode != 0:
        raise RuntimeError(f"{args} failed ({done.returncode}): {done.stderr[-2000:]}")
    return seconds, done.stdout


def wait_for_quiet(limit_s: float = 180.0, poll_s: float = 20.0) -> dict:
    """Wait (up to ``limit_s``) until the 1-minute load average is at most QUIET_LOAD."""
    first = os.getloadavg()[0]
    waited = 0.0
    while os.getloadavg()[0] > QUIET_LOAD and waited < limit_s:
        time.sleep(poll_s)
        waited += poll_s
    return {"loadavg_1m_first_seen": round(first, 2), "waited_for_quiet_s": waited,
            "loadavg_1m_start": round(os.getloadavg()[0], 2)}


def machine(start: dict) -> dict:
    """Platform, CPU and the load averages around a measurement."""
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as handle:
            names = [line.split(":", 1)[1].strip() for line in handle
                     if line.startswith("model name")]
        model = names[0] if names else model
    except OSError:
        pass
    return {"platform": platform.platform(), "python": platform.python_version(),
            "cpu_model": model, "cpu_count": os.cpu_count(), **start,
            "loadavg_1m_end": round(os.getloadavg()[0], 2)}


def peak_rss_mib(who: int = resource.RUSAGE_SELF) -> float:
    """Peak resident set size (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(who).ru_maxrss
    return round(peak / (1024 * 1024 if sys.platform == "darwin" else 1024), 1)


def free_port() -> int:
    """A TCP port nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(work: Path) -> tuple[subprocess.Popen, str, Path, float]:
    """``prefect server start`` in the background; its API URL, PREFECT_HOME and ready time."""
    prefect_home = work / "prefect-server"
    api = f"http://127.0.0.1:{free_port()}/api"
    port = api.rsplit(":", 1)[1].split("/")[0]
    server = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host",
                               "127.0.0.1", "--port", port], env=child_env(prefect_home, None),
                              cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    started = time.perf_counter()
    while time.perf_counter() - started < 180:
        try:
            urllib.request.urlopen(f"{api}/health", timeout=2)
            break
        except OSError:
            time.sleep(0.5)
    else:
        server.terminate()
        raise RuntimeError("prefect server did not answer /health within 180 s")
    return server, api, prefect_home, round(time.perf_counter() - started, 2)
