"""A flow command's start-up, overlapped: Prefect's temporary server boots in a process of its
own while this one imports the command's modules and Keras."""

from __future__ import annotations

import atexit
import contextlib
import importlib
import logging
import os
import random
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

# What each flow command imports before its flow starts: its flows, Great Expectations where
# it validates an input (~2 s, else paid inside the flow's validate step, after the server is
# up) and Keras (every one of them trains or loads a network; importing TensorFlow is ~3 s).
PRELOAD = {"run": ("flows.training", "great_expectations"),
           "backfill": ("flows.backfill", "flows.daily", "flows.training", "great_expectations"),
           "predict": ("flows.predict",)}


# Prefect gives its temporary server 20 s to answer; on a machine busy with other work (2
# cores training a market) it took longer and a scheduled run failed before it began. A value
# the user set wins.
SERVER_STARTUP_TIMEOUT_S = "120"


class TemporaryServer:
    """Prefect's temporary server, started as Prefect starts it (``SubprocessASGIServer``:
    uvicorn on ``prefect.server.api.server:create_app``, UI off, a free port in 8000-8999) but
    without importing the server's modules into this process: Prefect's class lives in them,
    and importing them to start a process of its own cost the command ~2.4 s of CPU while it
    imported Keras (BENCHMARKS.md (f), "The generated 501's new day").

    ``start`` returns the API's URL once it answers, or None when it does not (then nothing it
    started is left running, and Prefect's client starts its own server when the flow begins,
    reporting any error). Stopped at exit, after Prefect's own exit handlers (its log workers
    send their last lines to it), since it starts before any flow.
    """

    PORTS = range(8000, 9000)
    PORT_IN_USE = 3  # uvicorn's exit status when it cannot bind its port

    def __init__(self) -> None:
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float) -> str | None:
        """Start the server; its API URL once ``/api/health`` answers within ``timeout_s``."""
        import httpx

        deadline = time.monotonic() + timeout_s
        url = self._spawn()
        logging.getLogger("prefect").info(  # Prefect's own words for its temporary server
            "Starting temporary server on %s\nSee https://docs.prefect.io/v3/concepts/server"
            "#how-to-guides for more information on running a dedicated Prefect server.",
            url.removesuffix("/api"))
        atexit.register(self.stop)
        with httpx.Client(timeout=5) as client:
            while time.monotonic() < deadline:
                if self.process is not None and self.process.poll() == self.PORT_IN_USE:
                    url = self._spawn()  # another process took the port first
                    continue
                with contextlib.suppress(httpx.HTTPError):
                    if client.get(f"{url}/health").status_code == 200:
                        return url
                time.sleep(0.1)
        self.stop()
        return None

    def stop(self) -> None:
        """Stop the server process (if it runs)."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def _spawn(self) -> str:
        import prefect  # its package's folder; the server's modules are not imported here

        port = self._free_port()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--app-dir", str(prefect.__module_path__.parent),
             "--factory", "prefect.server.api.server:create_app", "--host", "127.0.0.1",
             "--port", str(port), "--log-level", "error", "--lifespan", "on"],
            env={**os.environ, "PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1",
                 "PREFECT__SERVER_FINAL": "1"})
        return f"http://127.0.0.1:{port}/api"

    def _free_port(self) -> int:
        for _ in range(20):
            port = random.choice(self.PORTS)
            with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
                try:
                    sock.bind(("127.0.0.1", port))
                except OSError:
                    continue
            return port
        raise RuntimeError("no free port in 8000-8999 for Prefect's temporary server")


_SETTINGS = contextlib.ExitStack()  # the started server's settings, for the process's life


def _use(url: str) -> None:
    """Point this process (and the processes it starts) at ``url``; the server's UI is off, so
    no "View at" link is printed for it, as with Prefect's own temporary server."""
    from prefect.settings import PREFECT_API_URL, PREFECT_UI_URL, temporary_settings

    os.environ["PREFECT_API_URL"], os.environ["PREFECT_UI_URL"] = url, ""
    _SETTINGS.enter_context(temporary_settings({PREFECT_API_URL: url, PREFECT_UI_URL: ""}))


@contextlib.contextmanager
def _booting(needed: bool) -> Iterator[None]:
    """With no PREFECT_API_URL, a temporary server boots while the block runs; the block's end
    waits until it answers."""
    if not needed:
        yield
        return
    import threading

    timeout_s = float(os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS",
                                            SERVER_STARTUP_TIMEOUT_S))
    server, answer = TemporaryServer(), []
    booting = threading.Thread(target=lambda: answer.append(server.start(timeout_s)),
                               name="closecast-prefect-server", daemon=True)
    booting.start()
    yield
    booting.join()
    if answer and answer[0] is not None:
        _use(answer[0])


def preload(command: str) -> None:
    """Import the command's modules and Keras; with no PREFECT_API_URL, a temporary Prefect
    server boots meanwhile (the flow would start one anyway, then wait for it to answer), and
    this returns once it answers."""
    modules = PRELOAD.get(command)
    if modules is None:
        return
    from prefect.settings import get_current_settings

    with _booting(not get_current_settings().api.url):
        for name in (*modules, "keras"):
            importlib.import_module(name)
