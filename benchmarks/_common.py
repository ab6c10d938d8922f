"""Shared by the benchmark scripts: machine facts, a quiet-machine wait, peak RSS."""

from __future__ import annotations

import os
import platform
import resource
import sys
import time

QUIET_LOAD = 1.5


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
