"""Backtest: walk-forward evaluation with an expanding training window, model beside baselines."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pandas as pd
from prefect import get_run_logger, task

from tasks.caching import BY_CONTENT
from tasks.config import BacktestConfig, FeatureConfig, ModelConfig, SplitConfig
from tasks.evaluate import score_frame
from tasks.features import DatasetRef, frame_with_split, sample_count, split_sizes, window_array
from tasks.hashing import short_key
from tasks.lake import read_partition
from tasks.model import fit_arrays, load_model
from tasks.paths import confined


@dataclass(frozen=True)
class BacktestResult:
    """Per-fold metrics of the model and the baselines, stored as backtest.json."""

    symbol: str
    path: str
    folds: list[dict]


def fold_plan(n_samples: int, split: SplitConfig, folds: int) -> list[tuple[int, int, int, int]]:
    """For each fold: (samples dropped at the end, n_train, n_validation, n_test), oldest first.

    The test blocks are the last ``folds`` blocks of the test window's size; each fold trains
    on everything before its block (expanding), its validation tail taken from that history.
    """
    _, _, n_test = split_sizes(n_samples, split)
    plan = []
    for j in range(folds):
        dropped = (folds - 1 - j) * n_test
        n = n_samples - dropped
        n_val = max(1, round(n * split.validation))
        plan.append((dropped, n - n_val - n_test, n_val, n_test))
    return plan


def _fold_summary(j: int, metrics: dict) -> dict:
    """The plain numbers of one fold: model, shrink, and each baseline's rmse_vs_naive."""
    row = {"fold": j, "test_start": metrics["test_start"], "test_end": metrics["test_end"],
           "n_train": metrics["n_train"], "n_test": metrics["n_test"],
           **{k: metrics[k] for k in ("rmse", "mae", "mape", "directional_accuracy",
                                      "naive_rmse", "rmse_vs_naive", "shrink_alpha")}}
    for name, values in metrics["baselines"].items():
        row[f"{name}_rmse"] = values["rmse"]
    dist = metrics["distribution"]
    row["distribution_source"] = dist["model"]["source"]
    row["distribution"] = {name: {key: values[key] for key in (
        "crps", "crps_vs_constant", "pinball", "coverage", "width", "var_backtest",
        "coverage_5d_80")} for name, values in dist.items()}
    return row


def run_backtest(prices: pd.DataFrame, symbol: str, features: FeatureConfig, split: SplitConfig,
                 model: ModelConfig, backtest: BacktestConfig, out_dir: Path,
                 log: logging.Logger | logging.LoggerAdapter | None = None,
                 fold_models: Sequence[str] | None = None) -> BacktestResult:
    """Train and score one model per fold; each fold's scaler sees only its own training rows.

    ``fold_models`` (one per fold, oldest first): score these instead of training, as the
    global model's backtest does with the networks it trained once per fold for all symbols.
    """
    log = log or logging.getLogger(__name__)
    cfg = model.model_copy(update={"epochs": backtest.epochs or model.epochs})
    folds = []
    plan = fold_plan(sample_count(prices, features), split, backtest.folds)
    for j, (dropped, *sizes) in enumerate(plan):
        history = prices.iloc[:len(prices) - dropped].copy()
        history.attrs = prices.attrs
        frame, scaler = frame_with_split(history, features, tuple(sizes))
        if fold_models is None:
            parts = [frame[frame["split"] == name] for name in ("train", "validation")]
            arrays = [(window_array(p), p["target"].to_numpy(dtype="float32")) for p in parts]
            path = fit_arrays(arrays[0], arrays[1], f"{symbol} fold {j + 1}/{len(plan)}", cfg,
                              out_dir / f"fold-{j + 1}", log).model_path
        else:
            path = fold_models[j]
        metrics, _, _ = score_frame(load_model(path), frame, scaler, features, sizes[0],
                                    model.shrink, model.gate_z)
        folds.append(_fold_summary(j + 1, metrics))
        log.info("%s fold %d/%d: rmse_vs_naive %.3f", symbol, j + 1, len(plan),
                 metrics["rmse_vs_naive"])
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "backtest.json"
    path.write_text(json.dumps(folds, indent=2))
    return BacktestResult(symbol, str(path), folds)


def backtest_dir(work: Path, dataset: DatasetRef, model: ModelConfig,
                 backtest: BacktestConfig) -> Path:
    """A backtest's working directory, named by what determines it."""
    key = short_key(dataset.path, model.fingerprint(), backtest.fingerprint())
    return confined(work, dataset.symbol, f"backtest-{key}")


@task(name="backtest", cache_policy=BY_CONTENT, persist_result=True)
def backtest_task(dataset: DatasetRef, lake: str, features: FeatureConfig, split: SplitConfig,
                  model: ModelConfig, backtest: BacktestConfig, work: str) -> BacktestResult:
    """Walk-forward backtest of one symbol on the same rows the dataset was built from."""
    as_of = date.fromisoformat(dataset.as_of)
    prices = read_partition(Path(lake), dataset.symbol, as_of)
    prices.attrs["source"] = f"{dataset.symbol} (lake/prices/symbol={dataset.symbol})"
    return run_backtest(prices, dataset.symbol, features, split, model, backtest,
                        backtest_dir(Path(work), dataset, model, backtest), get_run_logger())
