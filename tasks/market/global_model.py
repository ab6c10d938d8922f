"""A global model: one LSTM fit on the windows of all symbols of a run (each symbol scaled with
its own training statistics), evaluated and registered per symbol, stored once.

Point in time across symbols: training and validation windows are taken only from target days
before the earliest test window of any symbol, so no symbol's test period teaches the model
through another symbol's rows. The walk-forward backtest trains one global model per fold on
the same rule, and each symbol is scored on its own fold.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
from prefect import get_run_logger, task

from tasks.core.atomic import atomic_write_text
from tasks.core.caching import BY_CONTENT
from tasks.core.errors import InputError, ShortHistory
from tasks.core.hashing import short_key
from tasks.core.logs import named_few
from tasks.core.paths import confined
from tasks.core.training_config import (
    BacktestConfig,
    EvaluationConfig,
    FeatureConfig,
    GlobalModelConfig,
    ModelConfig,
    SplitConfig,
)
from tasks.distribution.gate import PooledChoice, pooled_choice
from tasks.evaluation.backtest import fold_plan, score_folds, stored_prices
from tasks.evaluation.candidate import Candidate
from tasks.evaluation.evaluate import Evaluation, evaluate_candidate, validation_crps
from tasks.features.batches import Batches, WindowPool
from tasks.features.channels import channel_values
from tasks.features.datasets import DatasetRef
from tasks.features.feature_table import frame_with_split, sample_count
from tasks.features.scaler import Scaler
from tasks.features.windows import OFFSETS, targets_of
from tasks.forecaster.forecaster import Network
from tasks.forecaster.heads import head_named
from tasks.forecaster.network import TrainedModel, fit_arrays
from tasks.reporting.plots import plot_candidate
from tasks.reporting.provenance import source_counts

GLOBAL = "_GLOBAL"
Log = logging.Logger | logging.LoggerAdapter


@dataclass(frozen=True)
class SymbolRows:
    """One symbol's scaled channel values per day and its target rows, ready to pool."""

    symbol: str
    values: np.ndarray  # (days, channels) float32, scaled with this symbol's training rows
    starts: np.ndarray  # (rows,) the day of each target row's oldest lag
    targets: np.ndarray  # (rows,) scaled target; (rows, 4) packed with GARCH-t's offsets
    split: np.ndarray  # (rows,) "train" | "validation" | "test"
    dates: np.ndarray  # (rows,) target dates
    baselines: str = ""  # the volatility baselines' fit on the training rows (Scaler.baselines)


def rows_of(prices: pd.DataFrame, frame: pd.DataFrame, scaler: Scaler, symbol: str,
            features: FeatureConfig, packed: bool = False) -> SymbolRows:
    """A split feature table of ``prices`` (its target, offsets, split and date columns are
    read) with its scaler, as day series plus window starts (``packed``: targets with
    GARCH-t's offsets, for the hybrid head)."""
    values = scaler.transform_all(channel_values(prices, features, scaler.volatility))
    days = np.arange(len(prices) - len(frame), len(prices))  # target days are the last rows
    return SymbolRows(symbol, values.astype("float32"), days - features.window,
                      targets_of(frame, packed), frame["split"].to_numpy(),
                      frame["date"].to_numpy(), scaler.baselines)


def symbol_rows(prices: pd.DataFrame, symbol: str, features: FeatureConfig,
                sizes: tuple[int, int, int], packed: bool = False) -> SymbolRows:
    """The rows ``frame_with_split`` makes of ``prices`` (``rows_of``)."""
    frame, scaler = frame_with_split(prices, features, sizes)
    return rows_of(prices, frame, scaler, symbol, features, packed)


def dataset_rows(lake: Path, dataset: DatasetRef, features: FeatureConfig,
                 packed: bool = False) -> SymbolRows:
    """A prepared dataset's rows (``rows_of``): its stored table and scaler, not built again
    (the GARCH fit of each symbol's table was most of a 501-symbol global training's set-up)."""
    columns = ["date", "split", "target", *(OFFSETS if packed else ())]
    frame = pd.read_parquet(dataset.path, columns=columns)
    return rows_of(stored_prices(lake, dataset), frame, dataset.scaler, dataset.symbol,
                   features, packed)


def test_cutoff(rows: list[SymbolRows]) -> tuple[np.datetime64, str]:
    """The earliest test day of any symbol, and that symbol."""
    firsts = [(r.dates[r.split == "test"].min(), r.symbol) for r in rows]
    return min(firsts)


def pooled(rows: list[SymbolRows], split: str, window: int) -> WindowPool:
    """The ``split`` windows of every symbol dated before the earliest test day of any."""
    cutoff, _ = test_cutoff(rows)
    parts = []
    for r in rows:
        keep = (r.split == split) & (r.dates < cutoff)
        if keep.any():
            parts.append((r.values, r.starts[keep], r.targets[keep]))
    if not parts:
        raise InputError(", ".join(r.symbol for r in rows),
                         f"rule 'global model has {split} rows': none before "
                         f"{pd.Timestamp(cutoff).date()}, the earliest test day")
    return WindowPool.of(parts, window)


def fit_pooled(rows: list[SymbolRows], label: str, features: FeatureConfig, cfg: ModelConfig,
               glob: GlobalModelConfig, out_dir: Path, log: Log) -> TrainedModel:
    """Fit one network on the pooled windows; early stopping on a fixed validation sample."""
    train = pooled(rows, "train", features.window)
    validation = pooled(rows, "validation", features.window).sample(glob.validation_windows,
                                                                    cfg.seed)
    cutoff, first = test_cutoff(rows)
    log.info("%s: %d symbols, %d training windows (%d per epoch, batch %d), %d validation "
             "windows, all before %s (%s's first test day)", label, len(rows), len(train),
             min(len(train), glob.windows_per_epoch), glob.batch_size, len(validation),
             pd.Timestamp(cutoff).date(), first)
    trained = fit_arrays(Batches(train, glob.batch_size, glob.windows_per_epoch, cfg.seed),
                         Batches(validation, glob.batch_size), label, cfg, out_dir, log)
    return replace(trained, symbol=GLOBAL, trained_on=tuple(r.symbol for r in rows))


def run_key(datasets: list[DatasetRef], *parts: str) -> str:
    """A short directory key of what determines a global training."""
    return short_key(*sorted(f"{d.symbol}:{d.data_fingerprint}" for d in datasets), *parts)


def train_global(datasets: list[DatasetRef], lake: Path, features: FeatureConfig,
                 cfg: ModelConfig, glob: GlobalModelConfig, work: Path,
                 log: Log | None = None) -> TrainedModel:
    """The global model on every dataset's train and validation rows."""
    log = log or logging.getLogger(__name__)
    rows = [dataset_rows(lake, d, features, head_named(cfg.head).packs_targets)
            for d in datasets]
    key = run_key(datasets, features.fingerprint(), cfg.fingerprint(), glob.fingerprint())
    return fit_pooled(rows, "global model", features, cfg, glob, confined(work, GLOBAL, key), log)


def fold_rows(prices: pd.DataFrame, symbol: str, features: FeatureConfig, split: SplitConfig,
              folds: int, fold: int, packed: bool = False) -> SymbolRows:
    """A symbol's rows in backtest fold ``fold`` (0 = oldest), as ``run_backtest`` splits them;
    ShortHistory when that fold's history is too short for a model."""
    dropped, *sizes = fold_plan(sample_count(prices, features), split, folds)[fold]
    history = prices.iloc[:len(prices) - dropped].copy()
    history.attrs = prices.attrs
    return symbol_rows(history, symbol, features, tuple(sizes), packed)


def train_global_fold(datasets: list[DatasetRef], lake: Path, features: FeatureConfig,
                      split: SplitConfig, cfg: ModelConfig, backtest: BacktestConfig,
                      glob: GlobalModelConfig, fold: int, work: Path,
                      log: Log | None = None) -> TrainedModel | None:
    """One global model for backtest fold ``fold``: every symbol's own fold rows, pooled
    (a symbol too young for the fold is left out of it; none left: None, no model)."""
    log = log or logging.getLogger(__name__)
    cfg = cfg.model_copy(update={"epochs": backtest.epochs or cfg.epochs})
    label = f"global model fold {fold + 1}/{backtest.folds}"
    rows, short = [], []
    for d in datasets:
        try:
            rows.append(fold_rows(stored_prices(lake, d), d.symbol, features, split,
                                  backtest.folds, fold, head_named(cfg.head).packs_targets))
        except ShortHistory as error:  # a young listing: in later folds, not this one
            short.append(f"{d.symbol}: {error.detail}")
    if short:
        log.info("%s: %d symbol(s) left out, too little history in this fold: %s", label,
                 len(short), named_few(short))
    if not rows:
        return None
    key = run_key(datasets, features.fingerprint(), split.fingerprint(), cfg.fingerprint(),
                  backtest.fingerprint(), glob.fingerprint())
    out_dir = confined(work, GLOBAL, f"backtest-{key}", f"fold-{fold + 1}")
    trained = fit_pooled(rows, label, features, cfg, glob, out_dir, log)
    # each symbol's baselines fit on this fold's training rows: scoring the fold reuses them
    atomic_write_text(out_dir / FOLD_FITS, json.dumps(
        {r.symbol: json.loads(r.baselines) for r in rows if r.baselines}))
    return trained


FOLD_FITS = "baselines.json"


def fold_fits(folds: list[TrainedModel | None]) -> list[dict[str, dict]]:
    """Per fold network, each symbol's baselines fit on its fold training rows, as that
    training made them ({} where it kept none: the newest fold is the final model)."""
    paths = [Path(trained.model_path).parent / FOLD_FITS if trained else None
             for trained in folds]
    return [json.loads(path.read_text()) if path and path.is_file() else {} for path in paths]


@task(name="train-global", cache_policy=BY_CONTENT, persist_result=True)
def train_global_task(datasets: list[DatasetRef], lake: str, features: FeatureConfig,
                      cfg: ModelConfig, glob: GlobalModelConfig, work: str) -> TrainedModel:
    """Train the global model on all symbols' windows."""
    return train_global(datasets, Path(lake), features, cfg, glob, Path(work), get_run_logger())


@task(name="train-global-fold", cache_policy=BY_CONTENT, persist_result=True)
def train_global_fold_task(fold: int, datasets: list[DatasetRef], lake: str,
                           features: FeatureConfig, split: SplitConfig, cfg: ModelConfig,
                           backtest: BacktestConfig, glob: GlobalModelConfig,
                           work: str) -> TrainedModel | None:
    """Train the global model of one walk-forward fold."""
    return train_global_fold(datasets, Path(lake), features, split, cfg, backtest, glob, fold,
                             Path(work), get_run_logger())


def gate_global(datasets: list[DatasetRef], features: FeatureConfig,
                evaluation: EvaluationConfig, shared: TrainedModel,
                log: Log | None = None) -> PooledChoice:
    """The pooled gate of the global model's distribution: every symbol's validation rows
    against the run's baseline family, decided once (``gate.pooled_choice``)."""
    log = log or logging.getLogger(__name__)
    network = Network.load(shared.model_path)
    dates, baseline, own = {}, {}, {}
    for d in datasets:
        frame = pd.read_parquet(d.path)
        dates[d.symbol], baseline[d.symbol], own[d.symbol] = validation_crps(
            network, frame, d.scaler, features, evaluation)
    choice = pooled_choice(dates, baseline, own, evaluation.gate_z,
                           evaluation.pooled_tolerance)
    log.info("pooled gate: the global network's validation CRPS gain over %s is %.2f%% (mean "
             "over %d symbols' days; one-sided bound %.2f%%, DM %.2f): %s; %s", choice.family,
             100 * choice.gain, len(datasets), 100 * choice.lower, choice.dm,
             "accepted" if choice.accepted else "rejected", source_counts(choice.sources.values()))
    return choice


def evaluate_symbols(datasets: list[DatasetRef], features: FeatureConfig,
                     evaluation: EvaluationConfig, shared: TrainedModel,
                     log: Log | None = None, pooled: PooledChoice | None = None
                     ) -> list[Evaluation]:
    """Each symbol's test-window evaluation of the global model, in turn."""
    log = log or logging.getLogger(__name__)
    return [evaluate_candidate(shared, d, features, evaluation, log, pooled) for d in datasets]


def score_symbols(datasets: list[DatasetRef], lake: Path, features: FeatureConfig,
                  split: SplitConfig, evaluation: EvaluationConfig, backtest: BacktestConfig,
                  shared: TrainedModel, folds: list[TrainedModel | None], work: Path,
                  evaluations: list[Evaluation], log: Log | None = None,
                  draw: bool = True) -> list[Candidate]:
    """Backtest (each fold's global model) and plot (``draw``) each symbol in turn, beside its
    evaluation (``evaluations``, one per symbol: ``evaluate_symbols``).

    One task scores a chunk of symbols: per-symbol tasks would spend more time in the
    orchestration of 2,000 task runs than in this work (~1 s per symbol), and the networks are
    loaded and traced once per chunk.
    """
    log = log or logging.getLogger(__name__)
    out, fits = [], fold_fits(folds)
    paths = [f.model_path if f else None for f in folds]  # None: no symbol old enough
    for dataset, scored in zip(datasets, evaluations, strict=True):
        prices = stored_prices(lake, dataset)
        key = short_key(dataset.path, *map(str, paths), evaluation.fingerprint())
        result = score_folds(prices, dataset.symbol, features, split, backtest, paths,
                             evaluation,
                             confined(work, dataset.symbol, f"backtest-global-{key}"), log,
                             (shared.model_path, scored.metrics),
                             [fit.get(dataset.symbol) for fit in fits])
        out.append(Candidate(dataset, shared, scored, result,
                             plot_candidate(scored, shared, result) if draw else None))
    return out


def chunks(items: list, workers: int) -> list[list]:
    """``items`` in consecutive chunks, about four per worker (load balance vs task count)."""
    size = max(1, -(-len(items) // (4 * max(1, workers))))
    return [items[i:i + size] for i in range(0, len(items), size)]


@task(name="gate-global", cache_policy=BY_CONTENT, persist_result=True)
def gate_global_task(datasets: list[DatasetRef], features: FeatureConfig,
                     evaluation: EvaluationConfig, shared: TrainedModel) -> PooledChoice:
    """Gate the global network's distribution once, on all symbols' validation days."""
    return gate_global(datasets, features, evaluation, shared, get_run_logger())


@task(name="evaluate-global", cache_policy=BY_CONTENT, persist_result=True)
def evaluate_global_task(datasets: list[DatasetRef], features: FeatureConfig,
                         evaluation: EvaluationConfig, shared: TrainedModel,
                         pooled: PooledChoice | None = None) -> list[Evaluation]:
    """Evaluate a chunk of symbols with the global model on their test windows. It needs only
    the final network, so it runs on a worker the backtest's fold trainings leave idle."""
    log = get_run_logger()
    log.info("evaluating %d symbols: %s .. %s", len(datasets), datasets[0].symbol,
             datasets[-1].symbol)
    return evaluate_symbols(datasets, features, evaluation, shared, log, pooled)


@task(name="score-global", cache_policy=BY_CONTENT, persist_result=True)
def score_global_task(datasets: list[DatasetRef], lake: str, features: FeatureConfig,
                      split: SplitConfig, evaluation: EvaluationConfig, backtest: BacktestConfig,
                      shared: TrainedModel, folds: list[TrainedModel | None], work: str,
                      evaluations: list[Evaluation], draw: bool = True) -> list[Candidate]:
    """Score a chunk of evaluated symbols with the global model (backtest; plots if ``draw``)."""
    log = get_run_logger()
    log.info("scoring %d symbols: %s .. %s", len(datasets), datasets[0].symbol,
             datasets[-1].symbol)
    return score_symbols(datasets, Path(lake), features, split, evaluation, backtest, shared, folds,
                         Path(work), evaluations, log, draw)
