"""Benchmark the data stages (ingest, validate, persist, features) on generated Kaggle-size data.

Prints ONE JSON object on stdout. The input CSV is generated into a temp dir by
``benchmarks/generate_kaggle.py`` in a child process, so neither its time nor its memory counts.
The stages call the plain functions (no Prefect engine):

- ingest:   tasks.data.ingest.read_prices(csv)
- validate: tasks.data.validation.validate_prices(frame, csv, tmp/validation)   (GX suite)
- persist:  tasks.data.lake.upsert_prices(frame, tmp/lake)                       (fresh lake)
- features: tasks.features.datasets.prepare_dataset(lake, s, None, FeatureConfig(), SplitConfig())
            for every symbol

``great_expectations`` is imported (and timed, ``gx_import_s``) before the stages, so that
``validate_s`` is the validation itself; ``totals`` shows the sum with and without that import.
Peak RSS is ``ru_maxrss`` of this process (monotone: ``rss_peak_after_mib`` is the peak so far).
``cpu_seconds`` (this process's user+sys time per stage) and the load averages in ``machine``
tell a slow stage from a busy machine.

    python benchmarks/bench_data.py [--symbols N] [--days N] [--seed S] [--profile]

``--profile`` runs each stage under cProfile and prints the top functions to stderr (timings
then include the profiler's overhead, and the JSON says ``"profiled": true``).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import platform
import pstats
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

TARGETS = {"ingest_validate_persist_s": 30, "peak_rss_mib": 2048}


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (1024 * 1024 if sys.platform == "darwin" else 1024), 1)


class Stages:
    """Times named stages, records the RSS peak after each, and optionally profiles them."""

    def __init__(self, profile: bool, top: int = 30) -> None:
        self.seconds: dict[str, float] = {}
        self.cpu_seconds: dict[str, float] = {}
        self.rss_after: dict[str, float] = {}
        self.profile = profile
        self.top = top

    def run(self, name: str, fn: Callable[[], object]) -> object:
        profiler = cProfile.Profile() if self.profile else None
        started, cpu_started = time.perf_counter(), time.process_time()
        if profiler:
            profiler.enable()
        try:
            return fn()
        finally:
            if profiler:
                profiler.disable()
            self.seconds[name] = round(time.perf_counter() - started, 3)
            self.cpu_seconds[name] = round(time.process_time() - cpu_started, 3)
            self.rss_after[name] = peak_rss_mib()
            if profiler:
                self._report(name, profiler)

    def _report(self, name: str, profiler: cProfile.Profile) -> None:
        for order in ("cumulative", "tottime"):
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats(order).print_stats(self.top)
            print(f"\n===== {name}: top {self.top} by {order} =====\n{out.getvalue()}",  # noqa: T201
                  file=sys.stderr)


def generate_input(path: Path, symbols: int, days: int, seed: int) -> float:
    """Write the CSV in a child process (its time and memory stay out of the measurements)."""
    started = time.perf_counter()
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "generate_kaggle.py"), str(path),
                    "--symbols", str(symbols), "--days", str(days), "--seed", str(seed)],
                   check=True, stderr=subprocess.DEVNULL)
    return round(time.perf_counter() - started, 3)


def bench(symbols: int, days: int, seed: int, profile: bool) -> dict:
    with tempfile.TemporaryDirectory(prefix="closecast-bench-") as tmp:
        work = Path(tmp)
        csv = work / "prices.csv"
        generate_s = generate_input(csv, symbols, days, seed)

        load_start = os.getloadavg()[0]
        stages = Stages(profile)
        started = time.perf_counter()
        from tasks.core.training_config import FeatureConfig, SplitConfig
        from tasks.data.ingest import read_prices
        from tasks.data.lake import upsert_prices
        from tasks.data.validation import validate_prices
        from tasks.features.datasets import prepare_dataset
        import_s = round(time.perf_counter() - started, 3)
        started = time.perf_counter()
        import great_expectations  # noqa: F401  (validate_prices imports it lazily)
        gx_import_s = round(time.perf_counter() - started, 3)
        rss_after_imports = peak_rss_mib()

        lake = work / "lake"
        frame = stages.run("ingest", lambda: read_prices(csv))
        report = stages.run("validate",
                            lambda: validate_prices(frame, str(csv), work / "validation"))
        refs = stages.run("persist", lambda: upsert_prices(frame, lake))
        features, split = FeatureConfig(), SplitConfig()
        datasets = stages.run("features", lambda: [
            prepare_dataset(lake, ref.symbol, None, features, split) for ref in refs])

        seconds = stages.seconds
        core = round(seconds["ingest"] + seconds["validate"] + seconds["persist"], 3)
        peak = peak_rss_mib()
        return {
            "benchmark": "data-stages",
            "rows": len(frame),
            "symbols": int(frame["symbol"].nunique()),
            "days": days,
            "input_csv_mib": round(csv.stat().st_size / 2 ** 20, 1),
            "generate_s": generate_s,
            "import_s": import_s,
            "gx_import_s": gx_import_s,
            "seconds": {"ingest": seconds["ingest"], "validate": seconds["validate"],
                        "persist": seconds["persist"], "features": seconds["features"]},
            "cpu_seconds": stages.cpu_seconds,
            "ingest_validate_persist_s": core,
            "ingest_validate_persist_with_gx_import_s": round(core + gx_import_s, 3),
            "features_per_symbol_ms": round(1000 * seconds["features"] / max(1, len(refs)), 1),
            "peak_rss_mib": peak,
            "rss_peak_after_mib": {"imports": rss_after_imports, **stages.rss_after},
            "validation": {"success": report.success, "expectations": report.evaluated},
            "partitions": len(refs),
            "datasets": len(datasets),
            "feature_config": {"features": features.model_dump(mode="json"),
                               "split": split.model_dump(mode="json")},
            "machine": {"platform": platform.platform(), "python": platform.python_version(),
                        "processor": platform.processor() or platform.machine(),
                        "cpu_count": os.cpu_count(),
                        # Other work on the machine inflates wall seconds, not cpu_seconds.
                        "loadavg_1m_start": round(load_start, 2),
                        "loadavg_1m_end": round(os.getloadavg()[0], 2)},
            "targets": TARGETS,
            "pass": {"ingest_validate_persist_s": core <= TARGETS["ingest_validate_persist_s"],
                     "peak_rss_mib": peak <= TARGETS["peak_rss_mib"]},
            "profiled": profile,
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Time ingest/validate/persist/features.")
    parser.add_argument("--symbols", type=int, default=501)
    parser.add_argument("--days", type=int, default=1762)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--profile", action="store_true",
                        help="cProfile each stage; top functions go to stderr")
    args = parser.parse_args(argv)
    result = bench(args.symbols, args.days, args.seed, args.profile)
    print(json.dumps(result))  # noqa: T201
    return 0


if __name__ == "__main__":
    sys.exit(main())
