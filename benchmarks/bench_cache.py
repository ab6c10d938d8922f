"""Benchmark (c): a cold ``closecast run`` on the sample against an identical, cached rerun (JSON).

Each run is ``python -m flows.cli run --home TMP`` in a child process (wall time of the whole
process: Python, imports, Prefect's API, the flow). Both runs share one fresh closecast home and
one fresh PREFECT_HOME. Without a Prefect API, every ``closecast run`` starts Prefect's temporary
local server first; that fixed cost is measured on its own (``prefect_overhead_s``: the same
child process running one empty flow). ``--server`` also repeats the pair against a
``prefect server start`` already running (PREFECT_API_URL set), as a deployment would run.

    python benchmarks/bench_cache.py [--epochs N] [--server]

Target: the rerun takes at most 25% of the cold run's wall time.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from _common import child_env, machine, start_server, timed_child, wait_for_quiet  # noqa: E402

TARGET = 0.25
EMPTY_FLOW = "from prefect import flow\nflow(name='empty')(lambda: None)()\n"


def cold_and_rerun(work: Path, epochs: int | None, env: dict[str, str]) -> dict:
    """A cold run on a fresh home, then the identical run again, then one empty flow."""
    run = [sys.executable, "-m", "flows.cli", "run", "--home", str(work / "home")]
    if epochs:
        run += ["--epochs", str(epochs)]
    cold = timed_child(run, env)[0]
    rerun = timed_child(run, env)[0]
    overhead = timed_child([sys.executable, "-c", EMPTY_FLOW], env)[0]
    return {"cold_s": cold, "rerun_s": rerun, "rerun_over_cold": round(rerun / cold, 3),
            "prefect_overhead_s": overhead,
            "rerun_minus_overhead_s": round(rerun - overhead, 2),
            "pass": rerun / cold <= TARGET}


def with_server(work: Path, epochs: int | None) -> dict:
    """The same pair against a ``prefect server start`` started (and stopped) here."""
    server, api, prefect_home, ready = start_server(work)
    try:
        result = cold_and_rerun(work / "served", epochs, child_env(prefect_home, api))
        return {"server_ready_s": ready, **result}
    finally:
        server.terminate()
        server.wait(timeout=30)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, help="override the model's epochs (quick mode)")
    parser.add_argument("--server", action="store_true",
                        help="also measure against a running `prefect server start`")
    args = parser.parse_args(argv)
    start = wait_for_quiet()
    with tempfile.TemporaryDirectory(prefix="closecast-bench-cache-") as tmp:
        work = Path(tmp)
        temporary = cold_and_rerun(work, args.epochs, child_env(work / "prefect", None))
        served = with_server(work, args.epochs) if args.server else None
    result = {"benchmark": "cache", "input": "embedded sample", "epochs": args.epochs or "default",
              "temporary_server": temporary, "running_server": served,
              "target_rerun_over_cold_max": TARGET, "pass": temporary["pass"],
              "machine": machine(start)}
    print(json.dumps(result))  # noqa: T201
    return 0


if __name__ == "__main__":
    sys.exit(main())
