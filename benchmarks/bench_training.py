"""Benchmark (b): train one symbol with closecast's defaults and with the seeds' recipe (JSON).

Both recipes run in this one process on the same closes (TF imported and warmed first, so
neither fit pays for it). Per recipe: wall seconds of ``fit`` only, test RMSE, naive RMSE on
the same rows, and RMSE on the days both test windows share (the default tests the last 15%,
the seed recipe the last 20%: the shared days make the comparison like for like).

    python benchmarks/bench_training.py [--input CSV] [--symbol AAL] [--seed-epochs 20]

Target: default fit wall <= 1/5 of the seed recipe's, with test RMSE no worse.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from _common import machine, peak_rss_mib, wait_for_quiet  # noqa: E402

SPEED_TARGET = 0.2


def rmse(actual: np.ndarray, predicted: np.ndarray) -> float:
    return float(np.sqrt(np.mean((np.asarray(actual) - np.asarray(predicted)) ** 2)))


def bench(input_path: Path, symbol: str, seed_epochs: int) -> dict:
    from compare_recipes import default_forecast, seed_forecast

    from tasks.core.config import RunConfig
    from tasks.data.ingest import read_prices

    start = wait_for_quiet()
    started = time.perf_counter()
    import keras  # noqa: F401
    import tensorflow as tf  # noqa: F401
    tf_import_s = time.perf_counter() - started
    prices = read_prices(input_path, None, (symbol,))
    prices = prices[prices["symbol"] == symbol].reset_index(drop=True)
    config = RunConfig()
    with tempfile.TemporaryDirectory(prefix="closecast-bench-train-") as tmp:
        metrics, table, trained, default_fit_s = default_forecast(
            prices, config.features, Path(tmp), config)
    rows, seed_pred, seed_fit_s = seed_forecast(prices, seed_epochs)
    seed_table = rows.assign(predicted=seed_pred)
    shared = table.merge(seed_table, on="date", suffixes=("", "_seed"))
    default = {"fit_s": round(default_fit_s, 2), "epochs_run": trained.epochs_run,
               "max_epochs": config.model.epochs, "units": list(config.model.units),
               "window": config.features.window, "batch_size": config.model.batch_size,
               "test_rmse": round(metrics["rmse"], 4),
               "naive_rmse": round(metrics["naive_rmse"], 4),
               "rmse_vs_naive": round(metrics["rmse_vs_naive"], 4),
               "n_test": metrics["n_test"],
               # alpha 0: the validation gate kept the naive forecast (the model did not beat it)
               "shrink_alpha": round(metrics["shrink_alpha"], 3),
               "unshrunk_rmse_vs_naive": round(metrics["unshrunk_rmse_vs_naive"], 4),
               "shared_days_rmse": round(rmse(shared["actual"], shared["predicted"]), 4)}
    seed = {"fit_s": round(seed_fit_s, 2), "epochs": seed_epochs, "units": [50, 50],
            "window": 100, "batch_size": 32,
            "test_rmse": round(rmse(rows["close"], seed_pred), 4),
            "naive_rmse": round(rmse(rows["close"], rows["base_close"]), 4),
            "n_test": len(rows),
            "shared_days_rmse": round(rmse(shared["actual"], shared["predicted_seed"]), 4)}
    seed["rmse_vs_naive"] = round(seed["test_rmse"] / seed["naive_rmse"], 4)
    ratio = default_fit_s / seed_fit_s
    return {
        "benchmark": "training", "input": str(input_path), "symbol": symbol, "days": len(prices),
        "tf_import_s": round(tf_import_s, 2), "default": default, "seed_recipe": seed,
        "shared_test_days": len(shared),
        "shared_naive_rmse": round(rmse(shared["actual"], shared["naive"]), 4),
        "fit_time_ratio": round(ratio, 3), "peak_rss_mib": peak_rss_mib(),
        "targets": {"fit_time_ratio_max": SPEED_TARGET,
                    "rmse": "default test RMSE <= seed recipe's on the shared test days"},
        "pass": {"fit_time_ratio": ratio <= SPEED_TARGET,
                 "rmse_no_worse": default["shared_days_rmse"] <= seed["shared_days_rmse"]},
        "machine": machine(start),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", type=Path, default=ROOT / "data" / "sample" /
                        "prices-split-adjusted.csv")
    parser.add_argument("--symbol", default="AAL")
    parser.add_argument("--seed-epochs", type=int, default=20)
    args = parser.parse_args(argv)
    logging.disable(logging.INFO)
    print(json.dumps(bench(args.input, args.symbol, args.seed_epochs)))  # noqa: T201
    return 0


if __name__ == "__main__":
    sys.exit(main())
