"""Per-symbol test RMSE / naive RMSE: closecast's default config vs the seeds' recipe (JSON out).

Usage: python benchmarks/compare_recipes.py [--seed-epochs 5] [--variant ohlcv] [--real DIR]

- default: RunConfig() as shipped (log-return lags, scaler fit on training rows, 70/15/15
  chronological split, early stopping on validation, forecast shrunk toward naive by an alpha
  fit on the validation split only). The test window is scored once.
- seed: the seeds' recipe: window of 100 closes, MinMax scaler fit on ALL closes, 80/20 split,
  2 x LSTM(50) + Dropout(0.2), Adam, MSE, batch 32, a fixed number of epochs, no validation.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from tasks.core.config import SAMPLE_PATH, RunConfig  # noqa: E402
from tasks.core.training_config import FeatureConfig  # noqa: E402
from tasks.data.ingest import read_prices  # noqa: E402
from tasks.evaluation.evaluate import baseline_metrics, score_frame  # noqa: E402
from tasks.features.feature_table import build_feature_frame  # noqa: E402
from tasks.features.windows import split_arrays  # noqa: E402
from tasks.forecaster.forecaster import Network  # noqa: E402
from tasks.forecaster.network import enable_determinism, fit_arrays  # noqa: E402

VARIANTS = {"default": FeatureConfig(),
            "ohlcv": FeatureConfig(ohlcv=True, rolling=(5, 20))}


def default_forecast(prices, features: FeatureConfig, work: Path,
                     config: RunConfig | None = None) -> tuple[dict, object, object, float]:
    """closecast's recipe on one symbol: (test metrics, test table, TrainedModel, fit seconds)."""
    config = config or RunConfig(features=features)
    frame, scaler = build_feature_frame(prices, features, config.split)
    train, validation = split_arrays(frame, "train", "validation")
    started = time.perf_counter()
    trained = fit_arrays(train, validation, "bench", config.model, work)
    fit_s = time.perf_counter() - started
    metrics, table, _ = score_frame(Network.load(trained.model_path), frame, scaler, features,
                                 len(train[1]), config.evaluation)
    return metrics, table, trained, fit_s


def default_recipe(prices, features: FeatureConfig, work: Path) -> dict:
    """closecast's recipe on one symbol: train, fit alpha on validation, score the test window."""
    metrics, _, trained, _ = default_forecast(prices, features, work)
    return {"rmse_vs_naive": metrics["rmse_vs_naive"], "shrink_alpha": metrics["shrink_alpha"],
            "validation_dm": metrics["validation_dm"],
            "unshrunk_rmse_vs_naive": metrics["unshrunk_rmse_vs_naive"],
            "linear_rmse_vs_naive": metrics["baselines"]["linear_regression"]["rmse_vs_naive"],
            "ma5_rmse_vs_naive": metrics["baselines"]["moving_average_5"]["rmse_vs_naive"],
            "directional_accuracy": metrics["directional_accuracy"],
            "n_test": metrics["n_test"], "test_start": metrics["test_start"],
            "epochs_run": trained.epochs_run}


def seed_forecast(prices, epochs: int, window: int = 100):
    """The seeds' recipe, flaws included (scaler fit on all data, no validation).

    Returns (test rows with date/close/base_close, predicted closes, fit seconds).
    """
    import keras
    import pandas as pd
    from sklearn.preprocessing import MinMaxScaler

    enable_determinism(42)
    close = prices["close"].to_numpy(dtype="float64").reshape(-1, 1)
    scaled = MinMaxScaler().fit_transform(close).reshape(-1)
    x = np.lib.stride_tricks.sliding_window_view(scaled[:-1], window)[:, :, None]
    y = scaled[window:]
    cut = int(len(x) * 0.8)
    model = keras.Sequential([keras.Input((window, 1)),
                              keras.layers.LSTM(50, return_sequences=True),
                              keras.layers.Dropout(0.2), keras.layers.LSTM(50),
                              keras.layers.Dropout(0.2), keras.layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    started = time.perf_counter()
    model.fit(x[:cut], y[:cut], epochs=epochs, batch_size=32, verbose=0)
    fit_s = time.perf_counter() - started
    low, high = close.min(), close.max()
    predicted = model.predict(x[cut:], verbose=0).reshape(-1) * (high - low) + low
    rows = pd.DataFrame({"date": prices["date"].to_numpy()[window:][cut:],
                         "close": close.reshape(-1)[window:][cut:],
                         "base_close": close.reshape(-1)[window - 1:-1][cut:]})
    return rows, predicted, fit_s


def seed_recipe(prices, epochs: int, window: int = 100) -> dict:
    """The seeds' recipe's test metrics on its own 20% test window."""
    rows, predicted, _ = seed_forecast(prices, epochs, window)
    m = baseline_metrics(rows, predicted)
    return {"rmse_vs_naive": m["rmse_vs_naive"], "directional_accuracy": m["directional_accuracy"],
            "n_test": len(rows), "epochs": epochs}


def inputs(real: Path) -> list[tuple[str, Path]]:
    """Every real CSV in the folder (default tests/data), then the embedded sample."""
    files = sorted(p for p in real.iterdir() if p.suffix == ".csv")
    return [(p.name, p) for p in files] + [("sample", SAMPLE_PATH)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real", type=Path, default=ROOT / "tests" / "data")
    parser.add_argument("--seed-epochs", type=int, default=5)
    parser.add_argument("--variant", choices=sorted(VARIANTS), default="default")
    parser.add_argument("--skip-seed", action="store_true")
    parser.add_argument("--work", type=Path, default=Path("/tmp/closecast-bench"))
    args = parser.parse_args()
    logging.disable(logging.INFO)
    results = []
    for name, path in inputs(args.real):
        frame = read_prices(path)
        for symbol, prices in frame.groupby("symbol", sort=True):
            prices = prices.reset_index(drop=True)
            started = time.perf_counter()
            row = {"file": name, "symbol": symbol, "days": len(prices),
                   args.variant: default_recipe(prices, VARIANTS[args.variant],
                                                args.work / name / str(symbol))}
            if not args.skip_seed:
                row["seed"] = seed_recipe(prices, args.seed_epochs)
            row["seconds"] = round(time.perf_counter() - started, 1)
            results.append(row)
            print(json.dumps(row), file=sys.stderr)
    worst = max(r[args.variant]["rmse_vs_naive"] for r in results)
    print(json.dumps({"variant": args.variant, "seed_epochs": args.seed_epochs,
                      "worst_rmse_vs_naive": worst, "all_at_most_1": worst <= 1.0,
                      "results": results}))


if __name__ == "__main__":
    main()
