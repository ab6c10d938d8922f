"""Run the benchmarks, each in its own child process, and print ONE JSON object combining them.

    python benchmarks/run_all.py [--only data,training,cache,fanout,distribution,market,heads,
                                        one_symbol,quality_market,year]
                                 [--quick]

``--quick`` uses small sizes (a smoke test of the scripts: its figures do not meet or miss the
targets, which are stated for the full sizes). A benchmark that fails is reported with its
exit status and stderr tail, and the script exits 1.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

FULL: dict[str, list[str]] = {
    "data": ["bench_data.py"],
    "training": ["bench_training.py"],
    "cache": ["bench_cache.py"],
    "fanout": ["bench_fanout.py"],
    "distribution": ["bench_distribution.py"],
    "market": ["bench_market.py", "--rss-sizes", "100,250,501"],
    "heads": ["compare_heads.py"],
    "one_symbol": ["bench_one_symbol.py"],
    "quality_market": ["bench_quality_market.py"],
    "year": ["bench_year.py"],  # 250 replayed days on 50 symbols: hours on 2 cores
}
QUICK: dict[str, list[str]] = {
    "data": ["bench_data.py", "--symbols", "40", "--days", "400"],
    "training": ["bench_training.py", "--seed-epochs", "3"],
    "cache": ["bench_cache.py", "--epochs", "2"],
    "fanout": ["bench_fanout.py", "--symbols", "4", "--days", "400", "--epochs", "2",
               "--skip-default-threads"],
    "distribution": ["bench_distribution.py", "--epochs", "2"],
    "market": ["bench_market.py", "--symbols", "20", "--days", "400", "--epochs", "1",
               "--skip-append-run"],
    "heads": ["compare_heads.py", "--epochs", "2", "--symbols", "AAL"],
    "one_symbol": ["bench_one_symbol.py", "--seed-epochs", "2", "--epochs", "1",
                   "--skip-server"],
    "quality_market": ["bench_quality_market.py", "--epochs", "2"],
    "year": ["bench_year.py", "--symbols", "4", "--history", "400", "--days", "10",
             "--epochs", "1"],
}


def run_one(args: list[str]) -> dict:
    """One benchmark script in a child process; its last stdout line is its JSON."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, str(HERE / args[0]), *args[1:]],
                          capture_output=True, text=True)
    seconds = round(time.perf_counter() - started, 1)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        return {"error": f"exit {done.returncode}", "stderr_tail": done.stderr[-2000:],
                "script_s": seconds}
    return {**json.loads(lines[-1]), "script_s": seconds}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help=f"comma-separated subset of {','.join(FULL)}")
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke test)")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.only.split(",")] if args.only else list(FULL)
    unknown = sorted(set(names) - set(FULL))
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}")
    table = QUICK if args.quick else FULL
    results = {name: run_one(table[name]) for name in names}
    passed = {name: r.get("pass") for name, r in results.items()}
    print(json.dumps({"quick": args.quick, "pass": passed, "results": results}))  # noqa: T201
    return 1 if any("error" in r for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
