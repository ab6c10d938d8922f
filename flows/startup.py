"""A flow command's start-up, overlapped: Prefect's temporary server boots in a process of its
own while this one imports the command's modules and Keras."""

from __future__ import annotations

import contextlib
import importlib
import os
import threading

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


def _boot(server) -> None:
    """Start Prefect's temporary server; if the start fails, stop what it started.

    A start can fail after its server process is up: on a busy machine the health check's
    request times out (httpx.ReadTimeout). Prefect's client starts the server again when the
    flow begins, and reports its error, so nothing is reported from here; but the process of
    the failed start must go. Left running it answered the flow on its port (the second start
    could not bind it) and outlived the command, holding its stdout open: a caller waiting for
    the output hung (the year replay, 2026-12-06)."""
    try:
        server.start()
    except Exception:
        with contextlib.suppress(Exception):
            server.stop()  # terminates the process and forgets the instance: a fresh start next


def preload(command: str) -> None:
    """Import the command's modules and Keras; with no PREFECT_API_URL, Prefect's temporary
    server boots meanwhile (the flow would start it anyway, then wait ~3 s for it to answer),
    and this returns once it answers."""
    modules = PRELOAD.get(command)
    if modules is None:
        return
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS",
                          SERVER_STARTUP_TIMEOUT_S)
    from prefect.settings import get_current_settings

    booting = None
    if not get_current_settings().api.url:
        from prefect.server.api.server import SubprocessASGIServer

        booting = threading.Thread(target=_boot, args=(SubprocessASGIServer(),),
                                   name="closecast-prefect-server", daemon=True)
        booting.start()
    for name in (*modules, "keras"):
        importlib.import_module(name)
    if booting is not None:
        booting.join()
