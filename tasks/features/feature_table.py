"""A symbol's feature table: lag rows tagged train/validation/test, the scaler fit on training."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

from tasks.core.errors import InputError
from tasks.core.training_config import FeatureConfig, SplitConfig, min_training_windows, split_sizes
from tasks.distribution.hybrid_inputs import garch_t_offsets
from tasks.distribution.volatility import fit_baselines, variance_path
from tasks.features.channels import channel_names, channel_values, first_valid_day, volatility_fit
from tasks.features.scaler import Scaler
from tasks.features.windows import OFFSETS

SPLITS = ("train", "validation", "test")


def feature_rows(prices: pd.DataFrame, features: FeatureConfig, scaler: Scaler,
                 first_target: int = 0) -> pd.DataFrame:
    """One row per predictable day from ``first_target`` on: scaled lags and target.

    ``lag_1`` is day t-1 .. ``lag_k`` day t-k of the modelled series; an extra channel ``c``
    has columns ``c_lag_1`` .. ``c_lag_k``. ``base_close`` is the close of day t-1, which is
    also the naive forecast of day t.
    """
    k = features.window
    close = prices["close"].to_numpy(dtype="float64")
    values = channel_values(prices, features, scaler.volatility)
    first = first_valid_day(values)
    scaled = scaler.transform_all(values)
    targets = np.arange(max(first + k, first_target), len(close))
    frame = pd.DataFrame({
        "date": prices["date"].to_numpy()[targets],
        "base_close": close[targets - 1],
        "close": close[targets],
        "target": scaled[targets, 0],
    })
    parts = [frame]
    for c, name in enumerate(channel_names(features)):
        # sliding window i holds days i..i+k-1, so the window of target day d starts at d-k.
        windows = sliding_window_view(scaled[:, c], k)[targets - k][:, ::-1]
        prefix = "lag" if c == 0 else f"{name}_lag"
        parts.append(pd.DataFrame(windows, columns=[f"{prefix}_{i}" for i in range(1, k + 1)]))
    return pd.concat(parts, axis=1)


def sample_count(prices: pd.DataFrame, features: FeatureConfig) -> int:
    """How many target days the prices give (days with a full window of defined inputs)."""
    first = first_valid_day(channel_values(prices, features))
    return max(0, len(prices) - first - features.window)


def frame_with_split(prices: pd.DataFrame, features: FeatureConfig,
                     sizes: tuple[int, int, int],
                     baselines: dict | None = None) -> tuple[pd.DataFrame, Scaler]:
    """Feature rows of the last ``sum(sizes)`` target days, tagged train/validation/test.

    The scaler is fit on the values the training rows use (their inputs and targets) only, so
    no later row leaks into it. ``baselines``: the volatility baselines' fit on these same
    training rows when it was made before (``Scaler.baseline_params``); None: fit here.
    """
    n_train, n_val, n_test = sizes
    k = features.window
    need = min_training_windows(features)
    if n_train < need:
        source = prices.attrs.get("source", "prices")
        raise InputError(source, f"rule 'enough history': {len(prices)} days give {n_train} "
                                 f"training windows of {k} lags; need at least {need}")
    first_target = len(prices) - n_train - n_val - n_test
    last_train_day = first_target + n_train - 1
    fit: tuple = ()
    if not features.volatility:
        baselines = None
    else:  # on the training rows' returns, exactly as the gate fits its baselines
        close = prices["close"].to_numpy(dtype="float64")  # (gate.frame_returns)
        returns = np.concatenate([[np.nan], np.log(close[1:] / close[:-1])])
        baselines = baselines or fit_baselines(returns[first_target:], n_train)
        fit = volatility_fit(baselines, returns, first_target, n_train)
    values = channel_values(prices, features, fit)
    train_start = max(first_valid_day(values), first_target - k)
    scaler = Scaler.fit(values[train_start:last_train_day + 1], fit)
    if baselines:
        scaler = replace(scaler, baselines=json.dumps(baselines, sort_keys=True))
    frame = feature_rows(prices, features, scaler, first_target)
    frame.insert(4, "split", np.repeat(SPLITS, [n_train, n_val, n_test]))
    if baselines:
        frame = frame.assign(**garch_offsets(frame, baselines, scaler, n_train))
    return frame, scaler


def garch_offsets(frame: pd.DataFrame, baselines: dict, scaler: Scaler,
                  n_train: int) -> dict[str, np.ndarray]:
    """GARCH-t's distribution of each row in the target's scaled units (``OFFSETS``): exactly
    the gate's GARCH-t baseline on every row after training (``variance_path``)."""
    garch = baselines["garch"]
    returns = np.log(frame["close"].to_numpy() / frame["base_close"].to_numpy())
    offsets = garch_t_offsets(variance_path("garch", garch, returns, n_train), garch["nu"],
                              scaler.mean, scaler.scale)
    return dict(zip(OFFSETS, offsets.T, strict=True))


def build_feature_frame(prices: pd.DataFrame, features: FeatureConfig,
                        split: SplitConfig) -> tuple[pd.DataFrame, Scaler]:
    """Feature rows with a ``split`` column, and the scaler fit on the training rows only."""
    sizes = split_sizes(sample_count(prices, features), split)
    return frame_with_split(prices, features, sizes)
