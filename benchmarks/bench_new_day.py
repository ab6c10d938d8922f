"""Benchmark (f), its new day alone: bench_market's ``append_daily`` phase, repeated on copies of
one home made up to the day before (JSON).

``setup`` builds the home once as ``bench_market.py`` does (generated Kaggle-shaped prices,
``--symbols`` x ``--days``; the cold run, the rerun and the daily flow as of the day before) and
keeps it under ``--base``. ``append`` then copies that home (and its PREFECT_HOME) to ``--work``
and runs the new business day through the daily flow from the shell, exactly the phase
``bench_market.py`` times (``backfill --flow daily --start D --end D --input prices_plus1.csv``),
with the checkout ``--root`` (compare two checkouts on one home; repeat a run when the machine
was busy). A home is built once (~4 min on 2 cores) and each new day costs ~30 s.

    python benchmarks/bench_new_day.py setup --base DIR [--symbols 501 --days 1762]
    python benchmarks/bench_new_day.py append --base DIR --work DIR [--root CHECKOUT]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["setup", "append"])
    parser.add_argument("--base", type=Path, required=True, help="the day-before home's folder")
    parser.add_argument("--work", type=Path, help="append: where the copy runs (replaced)")
    parser.add_argument("--root", type=Path, default=HERE.parent,
                        help="the checkout whose benchmarks and code run (default: this one)")
    parser.add_argument("--symbols", type=int, default=501)
    parser.add_argument("--days", type=int, default=1762)
    args = parser.parse_args()
    sys.path.insert(0, str(args.root / "benchmarks"))
    import bench_market as bm
    from _common import machine

    start = {"loadavg_1m_start": round(os.getloadavg()[0], 2)}
    if args.mode == "setup":
        base = args.base
        base.mkdir(parents=True, exist_ok=True)
        prices, _, new_day, before = bm.write_pair(base / "data", args.symbols, args.days, 0)
        (base / "dates.json").write_text(json.dumps({"new_day": new_day, "before": before}))
        cli, home = bm.Cli(base, [], None), str(base / "home")
        out = {"cold": cli.phase("cold", ["run", "--input", str(prices), "--home", home],
                                 args.symbols, "run"),
               "daily_before": cli.phase("daily_before", [
                   "backfill", "--flow", "daily", "--start", before, "--end", before, "--input",
                   str(prices), "--home", home], args.symbols, "daily")}
    else:
        if args.work is None:
            parser.error("append needs --work")
        dates = json.loads((args.base / "dates.json").read_text())
        shutil.rmtree(args.work, ignore_errors=True)
        args.work.mkdir(parents=True)
        for part in ("home", "prefect"):
            shutil.copytree(args.base / part, args.work / part, symlinks=True)
        os.sync()  # the copy's dirty pages on disk first: else the day's fsyncs wait behind them
        cli = bm.Cli(args.work, [], None)
        out = {"append_daily": cli.phase("append_daily", [
            "backfill", "--flow", "daily", "--start", dates["new_day"], "--end",
            dates["new_day"], "--input", str(args.base / "data" / "prices_plus1.csv"), "--home",
            str(args.work / "home")], args.symbols, "daily")}
    print(json.dumps({"root": str(args.root), **out, "machine": machine(start)}))


if __name__ == "__main__":
    main()
