"""Backtest: walk-forward evaluation with an expanding training window, model beside baselines."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from itertools import islice
from pathlib import Path

import numpy as np
import pandas as pd
from prefect import get_run_logger, task

from tasks.core.caching import BY_CONTENT
from tasks.core.errors import InputError, ShortHistory
from tasks.core.hashing import frame_sha256, short_key
from tasks.core.paths import confined
from tasks.core.training_config import (
    BacktestConfig,
    EvaluationConfig,
    FeatureConfig,
    ModelConfig,
    SplitConfig,
    split_sizes,
)
from tasks.core.version_files import Metrics
from tasks.evaluation.evaluate import Evaluation, score_frame
from tasks.features.datasets import DatasetRef, lake_prices
from tasks.features.feature_table import frame_with_split, sample_count
from tasks.features.market_state import with_stored_state
from tasks.features.scaler import Scaler
from tasks.features.windows import split_arrays
from tasks.forecaster.forecaster import Network
from tasks.forecaster.heads import head_named
from tasks.forecaster.network import TrainedModel, fit_arrays


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


def _fold_summary(j: int, metrics: Metrics) -> dict:
    """The plain numbers of one fold: model, shrink, and each baseline's rmse_vs_naive."""
    row = {"fold": j, "test_start": metrics.test_start, "test_end": metrics.test_end,
           "n_train": metrics.n_train, "n_test": metrics.n_test,
           **metrics.model_dump(include={"rmse", "mae", "mape", "directional_accuracy",
                                         "naive_rmse", "rmse_vs_naive", "shrink_alpha"})}
    for name, values in metrics.baselines.items():
        row[f"{name}_rmse"] = values.rmse
    row["distribution_source"] = metrics.source
    # one-day figures only: the 5-day simulation is the version's own test window's
    row["distribution"] = {name: values.model_dump(include={
        "crps", "crps_vs_constant", "pinball", "coverage", "width", "var_backtest"})
        for name, values in metrics.distribution.forecasters().items()}
    return row


@dataclass(frozen=True)
class FoldTable:
    """One fold's split feature table, its scaler and its training windows (gaps left out)."""

    frame: pd.DataFrame
    scaler: Scaler
    n_train: int


def _fold_frames(prices: pd.DataFrame, features: FeatureConfig, split: SplitConfig,
                 backtest: BacktestConfig, fits: Sequence[dict | None] = ()):
    """Per fold (oldest first): its ``FoldTable``, or the ShortHistory that says its history is
    too short for a model (a young listing's older folds: the fold is left out).
    ``fits``: per fold, the baselines' fit on its training rows when made before (None: fit)."""
    plan = fold_plan(sample_count(prices, features), split, backtest.folds)
    for j, (dropped, *sizes) in enumerate(plan):
        history = prices.iloc[:len(prices) - dropped].copy()
        history.attrs = prices.attrs
        try:
            frame, scaler = frame_with_split(history, features, tuple(sizes),
                                             fits[j] if j < len(fits) else None)
        except ShortHistory as short:
            yield short
            continue
        yield FoldTable(frame, scaler, int(np.count_nonzero(frame["split"] == "train")))


def newest_fold_is_final(model: ModelConfig, backtest: BacktestConfig) -> bool:
    """Whether the newest fold's network is the final model's.

    ``fold_plan``'s newest fold trains on exactly the rows, split and seed of the final model
    (its sizes are ``split_sizes``'s); with the same epochs the two trainings are the same,
    weight for weight (tests/test_baselines.py). So the final model stands for that fold
    instead of being trained twice.
    """
    return backtest.folds > 0 and (backtest.epochs or model.epochs) == model.epochs


def train_folds(prices: pd.DataFrame, symbol: str, features: FeatureConfig, split: SplitConfig,
                model: ModelConfig, backtest: BacktestConfig, out_dir: Path,
                log: logging.Logger | logging.LoggerAdapter | None = None,
                final_model: str | None = None) -> list[str]:
    """Every fold's network, oldest first: one trained per fold on that fold's training rows,
    except the newest fold where ``final_model`` (the final model's path) already is its
    network (``newest_fold_is_final``); None for a fold with too little history
    (``score_folds`` names it)."""
    log = log or logging.getLogger(__name__)
    cfg = model.model_copy(update={"epochs": backtest.epochs or model.epochs})
    reuse = final_model is not None and newest_fold_is_final(model, backtest)
    paths: list[str | None] = []
    frames = _fold_frames(prices, features, split, backtest)
    for j, fold in enumerate(islice(frames, backtest.folds - reuse)):
        if isinstance(fold, ShortHistory):
            paths.append(None)
            continue
        train, validation = split_arrays(fold.frame, "train", "validation",
                                         packed=head_named(cfg.head).packs_targets)
        paths.append(fit_arrays(train, validation, f"{symbol} fold {j + 1}/{backtest.folds}",
                                cfg, out_dir / f"fold-{j + 1}", log).model_path)
    return [*paths, final_model] if reuse else paths


def score_folds(prices: pd.DataFrame, symbol: str, features: FeatureConfig, split: SplitConfig,
                backtest: BacktestConfig, fold_models: Sequence[str | None],
                evaluation: EvaluationConfig, out_dir: Path,
                log: logging.Logger | logging.LoggerAdapter | None = None,
                final: tuple[str, Metrics] | None = None,
                fits: Sequence[dict | None] = ()) -> BacktestResult:
    """Score each fold's model (oldest first) on its fold's test rows; each fold's scaler saw
    only its own training rows (``fits``: its baselines' fit, when its training made it).

    ``final`` is the final model's path and its evaluation's metrics: the newest fold, when
    its network is that model, has the same rows, split, scaler and test window, so it takes
    those metrics (identical, tests/test_baselines.py) instead of scoring them again.
    A fold whose history is too short for a model (a young listing's older folds) is left
    out of the result, and one log line names the symbol and those folds.
    """
    log = log or logging.getLogger(__name__)
    if len(fold_models) != backtest.folds:
        raise ValueError(f"{len(fold_models)} fold models for {backtest.folds} folds")
    folds, short = [], {}
    # a generator: the newest fold's table is not built when the final model's metrics stand in
    frames = _fold_frames(prices, features, split, backtest, fits)
    for j, path in enumerate(fold_models):
        if final is not None and j == backtest.folds - 1 and path == final[0]:
            metrics = final[1]
        else:
            fold = next(frames)
            if path is None or isinstance(fold, ShortHistory):
                short[j + 1] = fold.detail if isinstance(fold, ShortHistory) else "no model"
                continue
            metrics, _, _ = score_frame(Network.load(path), fold.frame, fold.scaler, features,
                                        fold.n_train, evaluation, ahead=False, table=False)
            metrics = Metrics.model_validate(metrics)
        folds.append(_fold_summary(j + 1, metrics))
        log.debug("%s fold %d/%d: rmse_vs_naive %.3f", symbol, j + 1, backtest.folds,
                  metrics.rmse_vs_naive)
    if short:
        log.info("%s: backtest fold(s) %s of %d left out, too little history: %s", symbol,
                 ", ".join(map(str, short)), backtest.folds, next(iter(short.values())))
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "backtest.json"
    path.write_text(json.dumps(folds, indent=2))
    return BacktestResult(symbol, str(path), folds)


def run_backtest(prices: pd.DataFrame, symbol: str, features: FeatureConfig, split: SplitConfig,
                 model: ModelConfig, backtest: BacktestConfig, evaluation: EvaluationConfig,
                 out_dir: Path, log: logging.Logger | logging.LoggerAdapter | None = None,
                 fold_models: Sequence[str] | None = None) -> BacktestResult:
    """Train (unless ``fold_models`` are given, as the global model's backtest does with the
    networks it trained once per fold for all symbols) and score one model per fold."""
    if fold_models is None:
        fold_models = train_folds(prices, symbol, features, split, model, backtest, out_dir, log)
    return score_folds(prices, symbol, features, split, backtest, fold_models, evaluation,
                       out_dir, log)


def backtest_dir(work: Path, dataset: DatasetRef, model: ModelConfig,
                 backtest: BacktestConfig) -> Path:
    """A backtest's working directory, named by what determines it."""
    key = short_key(dataset.path, model.fingerprint(), backtest.fingerprint())
    return confined(work, dataset.symbol, f"backtest-{key}")


def stored_prices(lake: str | Path, dataset: DatasetRef) -> pd.DataFrame:
    """The lake rows a dataset was built from (up to its as-of day); InputError when the lake
    changed since."""
    prices = lake_prices(Path(lake), dataset.symbol, date.fromisoformat(dataset.as_of))
    if frame_sha256(prices) != dataset.data_fingerprint:
        raise InputError(prices.attrs["source"], "rule 'same rows as the features': the lake "
                         "changed during the run; run again")
    return with_stored_state(prices, dataset.market)


@task(name="train-backtest-folds", cache_policy=BY_CONTENT, persist_result=True)
def train_backtest_folds_task(dataset: DatasetRef, lake: str, features: FeatureConfig,
                              split: SplitConfig, model: ModelConfig, backtest: BacktestConfig,
                              final: TrainedModel, work: str) -> list[str | None]:
    """One symbol's walk-forward fold models, oldest first (no evaluation setting in the key):
    ``final``, the symbol's final model, stands for the newest fold where it is that fold's
    network, and the others are trained after it (reusing its compiled network)."""
    return train_folds(stored_prices(lake, dataset), dataset.symbol, features, split, model,
                       backtest, backtest_dir(Path(work), dataset, model, backtest),
                       get_run_logger(), final.model_path)


@task(name="backtest", cache_policy=BY_CONTENT, persist_result=True)
def backtest_task(dataset: DatasetRef, lake: str, features: FeatureConfig, split: SplitConfig,
                  backtest: BacktestConfig, fold_models: list[str | None],
                  evaluation: EvaluationConfig, work: str, final: TrainedModel,
                  final_evaluation: Evaluation) -> BacktestResult:
    """Score one symbol's fold models walk-forward on the rows the dataset was built from (the
    newest fold takes the final model's evaluation where that model is its network)."""
    key = short_key(dataset.path, *map(str, fold_models), evaluation.fingerprint())
    return score_folds(stored_prices(lake, dataset), dataset.symbol, features, split, backtest,
                       fold_models, evaluation, confined(Path(work), dataset.symbol,
                                                         f"backtest-score-{key}"),
                       get_run_logger(), (final.model_path, final_evaluation.metrics))
