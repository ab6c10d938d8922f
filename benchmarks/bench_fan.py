"""Benchmark: a network-source version's fan, before and after issue 30 item 6 (JSON).

- ``sample_paths``: ``--horizon`` days x ``--paths`` paths of one symbol, the per-path loop it
  replaced (``tests/test_fan.py``'s reference) against the paths stepped together; their
  largest relative difference.
- one-day fans across ``--symbols`` symbols of a market file that share one network, as the
  daily flow asks for them (``forecast_fans(cases, 1)``): now (closed form from the point
  path's network outputs) and before (point path, then 2,000 sampled paths per symbol and
  their percentiles), the latter on the first ``--old-symbols`` only and scaled to all.

The network is a seeded, untrained hybrid (GARCH-t corrected) whose head weights are random,
so that its outputs move with every input channel; one symbol's scaler and baseline fits
serve every symbol (the cost of a fan does not depend on what the weights are).

- with ``--home``: ``predict --horizon 5``'s forecast (``forecast_fans`` of each champion)
  in-process, now and before, for a network-source and a GARCH-source champion.

    python benchmarks/bench_fan.py [--input FILE] [--symbols 387] [--old-symbols 10]
        [--horizon 5] [--paths 2000] [--home HOME --predict-symbols ZION,AAL]

Targets: one new day through the daily flow <= 30 s whatever the source (issue 30 item 6).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from _common import machine, wait_for_quiet  # noqa: E402

MARKET = Path("/work/shared/data/real/kaggle_sp500_5yr_market.csv.gz")


def timed(call):
    """(seconds, result) of ``call()``."""
    started = time.perf_counter()
    out = call()
    return round(time.perf_counter() - started, 3), out


def old_one_day_fans(cases: list) -> list:
    """``forecast_fans(cases, 1)`` as it was: the point path, then each case's sampled paths."""
    import pandas as pd

    from tasks.distribution.simulate import fan
    from tasks.forecaster.paths import forecast_recursive_many
    from tests.test_fan import reference_sample_paths

    points = forecast_recursive_many(cases, 1)
    return [pd.DataFrame({"date": point["date"], **fan(float(prices["close"].iloc[-1]),
                                                      reference_sample_paths(f, prices, 1,
                                                                             2000))})
            for (f, prices), point in zip(cases, points, strict=True)]


def bench_paths(forecaster, prices, horizon: int, n_paths: int) -> dict:
    """``sample_paths`` old and new on one symbol."""
    from tasks.forecaster.paths import sample_paths
    from tests.test_fan import reference_sample_paths

    sample_paths(forecaster, prices, 1, n_paths=8)  # the network's first (eager) call
    new_s, new = timed(lambda: sample_paths(forecaster, prices, horizon, n_paths=n_paths))
    old_s, old = timed(lambda: reference_sample_paths(forecaster, prices, horizon, n_paths))
    return {"horizon": horizon, "paths": n_paths, "old_s": old_s, "new_s": new_s,
            "speedup": round(old_s / new_s, 1),
            "max_rel_diff": float(np.max(np.abs(new - old) / np.abs(old).clip(1e-12)))}


def bench_one_day(forecaster, market, n_symbols: int, n_old: int) -> dict:
    """One-day fans of ``n_symbols`` symbols sharing the network: now and before."""
    from tasks.forecaster.paths import forecast_fans, forecast_recursive_many

    need = forecaster.history_needed + 1
    symbols = [s for s, rows in market.groupby("symbol", sort=True) if len(rows) >= need]
    cases = [(forecaster, market[market["symbol"] == s].reset_index(drop=True))
             for s in symbols[:n_symbols]]
    point_s, _ = timed(lambda: forecast_recursive_many(cases, 1))
    new_s, new = timed(lambda: forecast_fans(cases, 1))
    old_s, old = timed(lambda: old_one_day_fans(cases[:n_old]))
    cols = [c for c in new[0].columns if c != "date"]
    diff = max(float(np.max(np.abs(a[cols].to_numpy() / b[cols].to_numpy() - 1)))
               for a, b in zip(new, old, strict=False))
    return {"symbols": len(cases), "new_s": new_s, "point_path_only_s": point_s,
            "old_symbols": n_old, "old_s": old_s,
            "old_scaled_to_all_s": round(old_s * len(cases) / n_old, 1),
            "max_rel_diff_vs_2000_paths": round(diff, 5)}


def old_fans(cases: list, horizon: int) -> list:
    """``forecast_fans`` as it was for network sources (baseline sources are unchanged)."""
    import pandas as pd

    from tasks.distribution.simulate import fan
    from tasks.forecaster.paths import forecast_fans, forecast_recursive_many
    from tests.test_fan import reference_sample_paths

    out = []
    for (f, prices), point in zip(cases, forecast_recursive_many(cases, horizon), strict=True):
        if f.source != "lstm":
            out += forecast_fans([(f, prices)], horizon)
            continue
        paths = reference_sample_paths(f, prices, horizon, 2000)
        out.append(pd.DataFrame({"date": point["date"],
                                 **fan(float(prices["close"].iloc[-1]), paths)}))
    return out


def bench_predict(home: Path, symbols: list[str], horizon: int) -> dict:
    """``predict``'s forecast (``forecast_fans`` of a champion) now and before, per symbol of a
    closecast home (after one warm-up call each)."""
    from tasks.data.lake import read_partition
    from tasks.forecaster.paths import forecast_fans
    from tasks.serving.predict import load_champion

    out = {}
    for symbol in symbols:
        case = (load_champion(home / "models", symbol).forecaster,
                read_partition(home / "lake", symbol))
        forecast_fans([case], horizon)
        new_s, _ = timed(lambda case=case: forecast_fans([case], horizon))
        old_s, _ = timed(lambda case=case: old_fans([case], horizon))
        out[symbol] = {"source": case[0].source, "horizon": horizon, "new_s": new_s,
                       "old_s": old_s}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", type=Path, default=MARKET)
    parser.add_argument("--symbols", type=int, default=387)
    parser.add_argument("--old-symbols", type=int, default=10)
    parser.add_argument("--horizon", type=int, default=5)
    parser.add_argument("--paths", type=int, default=2000)
    parser.add_argument("--home", type=Path, help="a closecast home whose champions to time "
                        "predict's forecast for (e.g. `closecast run`'s on the sample)")
    parser.add_argument("--predict-symbols", default="ZION,AAL")
    args = parser.parse_args()
    start = wait_for_quiet()
    from tasks.core.training_config import FeatureConfig
    from tasks.data.ingest import read_prices
    from tests.test_fan import seeded_forecaster

    market = read_prices(args.input)
    first = market[market["symbol"] == sorted(market["symbol"].unique())[0]]
    forecaster = seeded_forecaster(first.reset_index(drop=True), "hybrid", FeatureConfig())
    print(json.dumps({
        "input": str(args.input), "features": "default (window 20, magnitude, volatility)",
        "network": "untrained hybrid, units (4,), random head",
        "sample_paths": bench_paths(forecaster, first.reset_index(drop=True), args.horizon,
                                    args.paths),
        "one_day_fans": bench_one_day(forecaster, market, args.symbols, args.old_symbols),
        "predict_forecast": bench_predict(args.home, args.predict_symbols.split(","),
                                          args.horizon) if args.home else None,
        "machine": machine(start)}, indent=2))


if __name__ == "__main__":
    main()
