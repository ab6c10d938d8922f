"""A real `prefect server start` (and other Prefect processes) in subprocesses, always stopped."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def process_env(prefect_home: Path, **extra: str) -> dict[str, str]:
    """Environment of a child process: its own PREFECT_HOME, this checkout on the path."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_HOME=str(prefect_home), PREFECT_SERVER_ANALYTICS_ENABLED="false",
               PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="2", GX_ANALYTICS_ENABLED="false")
    env.update(extra)
    return env


@contextmanager
def running(command: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen]:
    """Run a command in its own process group; on exit, stop the whole group."""
    with open(log, "wb") as out:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out,
                                   stderr=subprocess.STDOUT, start_new_session=True)
        try:
            yield process
        finally:
            stop(process)


def stop(process: subprocess.Popen) -> None:
    """SIGTERM the process group, then SIGKILL whatever is left after 15 s."""
    for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait)
            os.killpg(process.pid, 0)  # children of the group may outlive the leader
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue


def wait_healthy(url: str, process: subprocess.Popen, log: Path, timeout: float = 120) -> None:
    """Poll ``/api/health`` until it answers; fail with the server's log if it never does."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"prefect server exited {process.returncode}:\n"
                               f"{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"{url}/health not up after {timeout} s:\n{log.read_text()[-3000:]}")


@contextmanager
def prefect_server(workdir: Path, database_url: str | None = None,
                   **settings: str) -> Iterator[str]:
    """Start `prefect server start` on a free port, own home and database; yield its API URL.

    ``settings`` are extra PREFECT_* variables for the server (e.g. its basic-auth string).
    """
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    database_url = database_url or f"sqlite+aiosqlite:///{workdir / 'prefect.db'}"
    env = process_env(workdir / "server-home", PREFECT_API_DATABASE_CONNECTION_URL=database_url,
                      PREFECT_UI_ENABLED="false", **settings)
    log = workdir / "server.log"
    command = [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
               "--port", str(port)]
    with running(command, env, log) as process:
        url = f"http://127.0.0.1:{port}/api"
        wait_healthy(url, process, log)
        yield url
