"""A symbol's feature table: lag rows tagged train/validation/test, the scaler fit on training."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

from tasks.core.errors import ShortHistory
from tasks.core.training_config import (
    GAP_SUFFIX,
    SPLITS,
    FeatureConfig,
    SplitConfig,
    min_training_windows,
    split_sizes,
)
from tasks.distribution.hybrid_inputs import garch_t_offsets
from tasks.distribution.volatility import fit_baselines, variance_path
from tasks.features.channels import channel_names, channel_values, first_valid_day, volatility_fit
from tasks.features.scaler import Scaler
from tasks.features.windows import OFFSETS


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


def next_window(prices: pd.DataFrame, features: FeatureConfig, scaler: Scaler) -> np.ndarray:
    """The network's input for the day after ``prices``' last row (``(1, k, channels)``,
    float32, oldest day first): the window ``feature_rows`` would give that day were it a row
    (a row's channels read only the days up to it), without building the table; ``(0, k,
    channels)`` when the prices give no full window. A forecast path asks it once per symbol
    and day (501 symbols: the table cost ~3 ms a symbol)."""
    k = features.window
    values = channel_values(prices, features, scaler.volatility)
    if len(values) < first_valid_day(values) + k:
        return np.empty((0, k, values.shape[1]), dtype="float32")
    # scaling is row by row, so the window's k rows alone scale to the table's values
    return scaler.transform_all(values[-k:]).astype("float32")[None]


def sample_count(prices: pd.DataFrame, features: FeatureConfig) -> int:
    """How many target days the prices give (days with a full window of defined inputs)."""
    first = first_valid_day(channel_values(prices, features))
    return max(0, len(prices) - first - features.window)


def spans_gap(dates: np.ndarray, targets: np.ndarray, window: int, max_gap: int) -> np.ndarray:
    """Per target day ``t``: whether a step longer than ``max_gap`` business days lies between
    the day before its oldest lag (``t - window - 1``, whose close starts the oldest return)
    and ``t`` itself, i.e. whether the row's window spans a gap in the symbol's dates."""
    days = np.asarray(dates).astype("datetime64[D]")
    longer = np.zeros(len(days), dtype=bool)  # longer[j]: the step from day j - 1 to day j
    longer[1:] = np.busday_count(days[:-1], days[1:]) > max_gap
    before = np.concatenate([[0], np.cumsum(longer)])  # before[i]: long steps at days < i
    return before[targets + 1] - before[np.maximum(targets - window, 0)] > 0


def split_labels(sizes: tuple[int, int, int], gap: np.ndarray) -> np.ndarray:
    """The ``split`` column: train, validation, test in time order; a row spanning a gap
    (``gap``) is labelled ``<split>-gap`` and feeds no model, score or gate."""
    names = np.array([*SPLITS, *(name + GAP_SUFFIX for name in SPLITS)])
    return names[np.repeat(np.arange(len(SPLITS)), sizes) + len(SPLITS) * gap]


def check_history(prices: pd.DataFrame, features: FeatureConfig, sizes: tuple[int, int, int],
                  gap: np.ndarray) -> None:
    """ShortHistory unless the rows left once gaps are out give enough training windows and
    at least one validation and one test row."""
    need = min_training_windows(features)
    n_train, n_val, _ = sizes
    usable = [int(np.count_nonzero(~part)) for part in np.split(gap, [n_train, n_train + n_val])]
    if usable[0] >= need and usable[1] and usable[2]:
        return
    spanning = f" ({n_train - usable[0]} more span a gap)" if usable[0] < n_train else ""
    rest = "" if usable[1] and usable[2] else \
        ", and validation and test rows that span no gap"
    raise ShortHistory(prices.attrs.get("source", "prices"),
                       f"{len(prices)} days give {usable[0]} training windows of "
                       f"{features.window} lags{spanning}; need at least {need}{rest}")


def frame_with_split(prices: pd.DataFrame, features: FeatureConfig,
                     sizes: tuple[int, int, int],
                     baselines: dict | None = None) -> tuple[pd.DataFrame, Scaler]:
    """Feature rows of the last ``sum(sizes)`` target days, tagged train/validation/test.

    The scaler is fit on the values the training rows use (their inputs and targets) only, so
    no later row leaks into it. ``baselines``: the volatility baselines' fit on these same
    training rows when it was made before (``Scaler.baseline_params``); None: fit here.
    Rows whose window spans a gap longer than ``features.max_gap_business_days`` stay in the
    table (its recursions run day by day) under a ``-gap`` label (``split_labels``); too few
    rows left raise ShortHistory (``check_history``).
    """
    n_train, n_val, n_test = sizes
    k = features.window
    first_target = len(prices) - n_train - n_val - n_test
    gap = spans_gap(prices["date"].to_numpy(), np.arange(first_target, len(prices)), k,
                    features.max_gap_business_days)
    check_history(prices, features, sizes, gap)
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
    frame.insert(4, "split", split_labels(sizes, gap))
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
