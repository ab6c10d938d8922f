"""How a run learns and is scored: features, split, model, evaluation, backtest, global model."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import Field, model_validator

from tasks.core.config_base import FrozenConfig


def optional_family(description: str) -> Any:
    """An optional input family's switch: off by default, and left out of a saved config while
    off, so configs saved before the family existed keep their fingerprints."""
    return Field(False, exclude_if=lambda value: value is False, description=description)


class FeatureConfig(FrozenConfig):
    """How lag windows are made from a symbol's daily closes."""

    window: int = Field(20, ge=2, le=400, description="Number of lags t-1..t-k fed to the model.")
    target: Literal["return", "close"] = Field(
        "return",
        description="Predict the next return (price rebuilt from it) or the next close.",
    )
    returns: Literal["log", "simple"] = Field(
        "log", description="Kind of return used for the target series and derived channels.")
    ohlcv: bool = Field(
        False, description="Add channels log(open/close), log(high/close), log(low/close) and "
                           "the log change of volume (day t-1..t-k, like the lags).")
    rolling: tuple[int, ...] = Field(
        (), description="For each w: rolling mean and volatility (std) of the last w returns "
                        "as two extra channels.")
    magnitude: bool = Field(
        True, description="Add |r| and r^2 of each lagged day's return as channels: they carry "
                          "the size of recent moves (volatility clusters) without look-ahead.")
    max_gap_business_days: int = Field(
        10, ge=1, exclude_if=lambda value: value == 10,  # saved configs keep their fingerprints
        description="A target row whose window (the day before its oldest lag through the "
                    "target day) spans a gap longer than this is left out of training, "
                    "validation and test. A run sets it from validation.max_gap_business_days.")
    volatility: bool = Field(
        True, description="Add each day's GARCH(1,1)-t and EWMA sigma of the next day (fit on "
                          "training returns only, rolled forward without look-ahead) and the "
                          "Parkinson and Garman-Klass range estimators (r^2 where a file has no "
                          "OHLC) as channels, and GARCH-t's scale per row: the inputs and the "
                          "baseline of the hybrid head.")
    calendar: bool = optional_family(
        "Add the symbol's calendar of large moves as four channels: per origin day, "
        "log1p of the largest standardized squared return (r^2 over the EWMA "
        "variance, lambda 0.94, of the 60 days before) 62-64, 125-127, 188-190 and "
        "251-253 trading days before the day being forecast (quarterly and annual "
        "reports). A forecast then needs 315 more rows of history.")
    gap: bool = optional_family(
        "Add the overnight gap log(open / the previous close) of each day as a "
        "channel (0 where a file has no open).")
    market: bool = optional_family(
        "Add the market's state of each day as three channels, from the run's "
        "universe point in time (every symbol's rows of that day): log of the "
        "cross-sectional mean |log return|, mean range log(high/low) and dispersion "
        "(std) of the returns. The version keeps its universe; predict and the "
        "daily flow rebuild the state from the lake; a simulated day after the "
        "first repeats the last known state.")


class SplitConfig(FrozenConfig):
    """Chronological train / validation / test fractions (of the windows, in time order)."""

    validation: float = Field(0.15, gt=0.0, lt=0.5)
    test: float = Field(0.15, gt=0.0, lt=0.5)

    @model_validator(mode="after")
    def _leave_training_rows(self) -> SplitConfig:
        if self.validation + self.test >= 0.8:
            raise ValueError("validation + test must leave at least 20% for training")
        return self


class ModelConfig(FrozenConfig):
    """Hyper-parameters of the stacked LSTM and its training loop."""

    units: tuple[int, ...] = Field((32, 16), min_length=1, description="LSTM units per layer.")
    dropout: float = Field(0.1, ge=0.0, lt=1.0)
    learning_rate: float = Field(1e-3, gt=0.0)
    batch_size: int = Field(64, ge=1)
    epochs: int = Field(30, ge=1)
    patience: int = Field(5, ge=1, description="EarlyStopping patience on validation loss.")
    seed: int = 42
    head: Literal["hybrid", "student_t", "point"] = Field(
        "hybrid", description="hybrid: a correction to GARCH(1,1)-t (loc, scale = GARCH-t "
        "scale * exp(g), dof), zero at the start, so the untrained network is GARCH-t; "
        "trained on the Student-t negative log-likelihood (needs features.volatility). "
        "student_t: loc, scale and degrees of freedom from nothing, same loss; point: one "
        "value trained on MSE (no predictive distribution of its own).")


class EvaluationConfig(FrozenConfig):
    """Settings that only affect evaluation, gating, promotion and reporting.

    None of them enters a feature or training cache key: changing one re-scores, re-plots
    and re-registers but never re-builds features or re-trains a network.
    """

    ma_window: int = Field(5, ge=1, description="k of the moving-average baseline (closes).")
    shrink: bool = Field(
        True, description="Shrink forecasts toward naive by an alpha in [0, 1] fit on the "
                          "validation split only (alpha = 0 is the naive forecast).")
    gate_z: float = Field(
        1.645, ge=0.0, description="With shrink: keep alpha > 0 only if the shrunk model beats "
                                   "naive on the validation split with a Diebold-Mariano "
                                   "statistic >= gate_z (1.645: one-sided 5%); 0 disables. "
                                   "The same threshold gates the LSTM's distribution against "
                                   "the baselines'.")
    pooled_tolerance: float = Field(
        0.01, ge=0.0, description="A network fit on many symbols is gated once, on their "
                                  "pooled validation days (DM >= gate_z); a symbol then keeps "
                                  "it unless its own validation CRPS is worse than its best "
                                  "baseline's by more than this share (0.01: 1%).")


class BacktestConfig(FrozenConfig):
    """Walk-forward backtest: expanding training window, the last ``folds`` blocks as tests."""

    folds: int = Field(3, ge=0, le=20, description="0 disables the backtest.")
    epochs: int | None = Field(None, ge=1, description="Epochs per fold (default: the model's).")


class GlobalModelConfig(FrozenConfig):
    """One network for all symbols of a run, or one per symbol, and how the global one trains.

    The global network sees every symbol's training windows (each symbol scaled with its own
    training statistics) and is evaluated, gated and registered per symbol like a per-symbol
    model; it is stored once and referenced by every symbol's version.
    """

    mode: Literal["auto", "per_symbol", "global", "both"] = Field(
        "auto", description="auto: global from ``auto_min_symbols`` symbols on, per-symbol "
        "below; both: a per-symbol and a global candidate version for every symbol.")
    auto_min_symbols: int = Field(
        3, ge=1, description="With mode auto: the fewest symbols that get a global model. "
        "Measured on 2, 4 and 7 real symbols (BENCHMARKS.md (g)): the same scores within "
        "0.3% CRPS, 0.67x, 0.43x and 0.36x the wall time; two symbols (the embedded sample) "
        "keep per-symbol models, whose versions do not change when another symbol joins.")
    batch_size: int = Field(1024, ge=1, description="Windows per gradient step.")
    windows_per_epoch: int = Field(
        50_000, ge=1, description="Training windows drawn afresh (seeded) for each epoch; "
        "fewer than the pool means an epoch sees a random sample of it.")
    validation_windows: int = Field(
        20_000, ge=1, description="A fixed, seeded sample of the validation windows that early "
        "stopping and checkpointing watch.")

    def uses(self, n_symbols: int) -> tuple[bool, bool]:
        """(train per-symbol models, train a global model) for a run of ``n_symbols``."""
        if self.mode == "auto":
            wide = n_symbols >= self.auto_min_symbols
            return not wide, wide
        return self.mode in ("per_symbol", "both"), self.mode in ("global", "both")


# The ``split`` labels of a feature table's rows, in time order; a row whose window spans a gap
# takes its span's label with GAP_SUFFIX and feeds no model, score or gate.
SPLITS = ("train", "validation", "test")
GAP_SUFFIX = "-gap"


def training_span(split: np.ndarray) -> int:
    """How many rows a split feature table has up to its last training row (the training rows
    and those among them left out across a gap): where the baselines' fit ends and their
    recursions start rolling, exactly as the features' scaler was fit."""
    return int(np.count_nonzero((split == SPLITS[0]) | (split == SPLITS[0] + GAP_SUFFIX)))


# What a split implies for a symbol's history (validation and features both ask).
def split_sizes(n_samples: int, split: SplitConfig) -> tuple[int, int, int]:
    """Chronological sizes (train, validation, test): the test window is always the last."""
    n_test = max(1, round(n_samples * split.test))
    n_val = max(1, round(n_samples * split.validation))
    return n_samples - n_val - n_test, n_val, n_test


def min_training_windows(features: FeatureConfig) -> int:
    """Fewest training windows a symbol needs for a meaningful fit."""
    return max(2 * features.window, 30)


def min_history_days(features: FeatureConfig, split: SplitConfig) -> int:
    """Fewest days of prices per symbol that give enough training windows (validation uses it)."""
    first = 1 if features.target == "return" else 0
    need = min_training_windows(features)
    days = need + first + features.window
    while split_sizes(days - first - features.window, split)[0] < need:
        days += 1
    return days
