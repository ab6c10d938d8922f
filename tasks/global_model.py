"""A global model: one LSTM fit on the windows of all selected symbols (each scaled by its own
training statistics), registered as a candidate version of every symbol."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
from prefect import get_run_logger, task

from tasks.caching import BY_CONTENT
from tasks.config import ModelConfig
from tasks.errors import InputError
from tasks.features import DatasetRef, window_array
from tasks.hashing import short_key
from tasks.model import TrainedModel, fit_arrays
from tasks.paths import confined

GLOBAL = "_GLOBAL"


def pooled_arrays(datasets: list[DatasetRef], split: str) -> tuple[np.ndarray, np.ndarray]:
    """Train or validation windows of every symbol, dated before the earliest test window.

    Symbols cover different years; cutting at the earliest test start keeps one symbol's later
    rows from teaching the model about another symbol's test period.
    """
    frames = [pd.read_parquet(d.path) for d in datasets]
    cutoff = min(f.loc[f["split"] == "test", "date"].min() for f in frames)
    rows = [f[(f["split"] == split) & (f["date"] < cutoff)] for f in frames]
    rows = [r for r in rows if len(r)]
    if not rows:
        raise InputError(", ".join(d.symbol for d in datasets),
                         f"rule 'global model has {split} rows': none before {cutoff.date()}")
    x = np.concatenate([window_array(r) for r in rows])
    y = np.concatenate([r["target"].to_numpy(dtype="float32") for r in rows])
    return x, y


def train_global(datasets: list[DatasetRef], cfg: ModelConfig, work: Path,
                 log: logging.Logger | logging.LoggerAdapter | None = None) -> TrainedModel:
    """Fit one model on the pooled windows; early stopping on the pooled validation windows."""
    key = short_key(*sorted(d.path for d in datasets), cfg.fingerprint())
    return fit_arrays(pooled_arrays(datasets, "train"), pooled_arrays(datasets, "validation"),
                      GLOBAL, cfg, confined(work, GLOBAL, key), log)


@task(name="train-global", cache_policy=BY_CONTENT, persist_result=True)
def train_global_task(datasets: list[DatasetRef], cfg: ModelConfig, work: str) -> TrainedModel:
    """Train the global model on all symbols' windows."""
    log = get_run_logger()
    log.info("global model on %d symbols: %s", len(datasets), ", ".join(d.symbol for d in datasets))
    return train_global(datasets, cfg, Path(work), log)
