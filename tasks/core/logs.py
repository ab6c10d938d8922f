"""Log-record markers shared by the tasks and the CLI's console, and quiet third-party logs."""

from __future__ import annotations

import os

# Pass as ``extra=`` for detail (per-epoch lines) that the Prefect UI always shows and the
# console only at ``--verbose``.
DETAIL_KEY = "closecast_detail"
DETAIL: dict[str, bool] = {DETAIL_KEY: True}

# Read once, when the library is first imported; a value the user set wins.
QUIET_LIBRARIES = {
    "TF_CPP_MIN_LOG_LEVEL": "3",  # TF C++ logs harmless graph notices at ERROR
    "GX_ANALYTICS_ENABLED": "false",  # GX would post usage statistics
    # Prefect's temporary server (started with this process's environment) would send
    # telemetry; its heartbeat races the first writes to a new SQLite database and logs
    # "database is locked" tracebacks (seen with `closecast predict` run by hand)
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
}


def quiet_libraries() -> None:
    """Silence TensorFlow's C++ notices and GX's analytics; call before importing either."""
    for name, value in QUIET_LIBRARIES.items():
        os.environ.setdefault(name, value)


# A log line names at most this many symbols: a market's 400 would not fit a screen.
NAMED_IN_A_LINE = 10


def named_few(names: list[str], most: int = NAMED_IN_A_LINE) -> str:
    """``A, B, C`` or, past ``most`` names, the first ``most`` and how many more."""
    if len(names) <= most:
        return ", ".join(names)
    return f"{', '.join(names[:most])} and {len(names) - most} more"
