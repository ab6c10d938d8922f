"""Input channels per day: the modelled series, OHLCV, magnitudes, rolling and volatility."""

from __future__ import annotations

import logging
from dataclasses import replace

import numpy as np
import pandas as pd

from tasks.core.errors import InputError
from tasks.core.training_config import FeatureConfig
from tasks.distribution.hybrid_inputs import range_variances
from tasks.distribution.volatility import linear_recursion
from tasks.features.market_state import MARKET_COLUMNS
from tasks.features.origin_inputs import calendar_channels, calendar_names, overnight_gap
from tasks.features.scaler import Scaler

log = logging.getLogger(__name__)

# The volatility channels' training fit, in ``Scaler.volatility``'s order.
VOLATILITY_FIT = ("garch_initial", "ewma_initial", "garch_omega", "garch_alpha", "garch_beta",
                  "ewma_lambda")
VOLATILITY_CHANNELS = ("log_sigma_garch", "log_sigma_ewma", "parkinson", "garman_klass")
_close_only_said = False


def returns_of(close: np.ndarray, kind: str = "log") -> np.ndarray:
    """Daily returns (NaN on the first day): log or simple."""
    if kind == "log":
        return np.concatenate([[np.nan], np.diff(np.log(close))])
    return np.concatenate([[np.nan], close[1:] / close[:-1] - 1.0])


def series_for(close: np.ndarray, target: str, kind: str = "log") -> np.ndarray:
    """The modelled series per day: a return (NaN on the first day) or the close itself."""
    if target == "return":
        return returns_of(close, kind)
    return close.astype("float64")


def channel_names(features: FeatureConfig) -> list[str]:
    """Names of the input channels: the modelled series first, then the optional extras."""
    names = ["series"]
    if features.ohlcv:
        names += ["open", "high", "low", "volume"]
    if features.magnitude:
        names += ["abs", "sq"]
    for w in features.rolling:
        names += [f"mean{w}", f"vol{w}"]
    if features.volatility:
        names += list(VOLATILITY_CHANNELS)
    return names + origin_names(features)


def origin_names(features: FeatureConfig) -> list[str]:
    """Names of the optional inputs known at the origin (``origin_inputs``' calendar and gap,
    ``market_state``'s columns), in channel order."""
    return ((calendar_names() if features.calendar else []) + (["gap"] if features.gap else [])
            + (list(MARKET_COLUMNS) if features.market else []))


def market_channels(prices: pd.DataFrame) -> list[np.ndarray]:
    """The market state's columns, which ``market_state.with_market`` joined to the prices."""
    missing = [c for c in MARKET_COLUMNS if c not in prices.columns]
    if missing:
        source = prices.attrs.get("source") or ", ".join(map(str, prices["symbol"].unique()))
        raise InputError(source, "rule 'market state for features.market': the prices carry no "
                                 f"{', '.join(missing)} (the run's universe was not joined)")
    return [prices[c].to_numpy(dtype="float64") for c in MARKET_COLUMNS]


def _ohlcv_channels(prices: pd.DataFrame, close: np.ndarray) -> list[np.ndarray]:
    """log(open/close), log(high/close), log(low/close), log volume change; each known at day end.

    A non-positive open/high/low (Yahoo writes 0 for a missing open) counts as the close.
    """
    absent = [c for c in ("open", "high", "low", "volume") if prices[c].isna().all()]
    if absent:
        source = prices.attrs.get("source") or ", ".join(map(str, prices["symbol"].unique()))
        raise InputError(source, f"rule 'OHLCV columns for features.ohlcv': the prices have no "
                                 f"{', '.join(absent)} (a close-only input); set features.ohlcv "
                                 "to false, or give a file with open, high, low and volume")
    out = []
    for col in ("open", "high", "low"):
        value = prices[col].to_numpy(dtype="float64")
        out.append(np.log(np.where(value > 0, value, close) / close))
    volume = np.log1p(prices["volume"].to_numpy(dtype="float64").clip(min=0))
    out.append(np.concatenate([[np.nan], np.diff(volume)]))
    return out


def _rolling_channels(returns: np.ndarray, windows: tuple[int, ...]) -> list[np.ndarray]:
    """Rolling mean and std of the returns ending on each day (only that day and earlier)."""
    out = []
    series = pd.Series(returns)
    for w in windows:
        out.append(series.rolling(w, min_periods=w).mean().to_numpy())
        out.append(series.rolling(w, min_periods=w).std(ddof=0).to_numpy())
    return out


def channel_values(prices: pd.DataFrame, features: FeatureConfig,
                   volatility: tuple[float, ...] = ()) -> np.ndarray:
    """``(days, channels)`` unscaled values; row d uses only rows 0..d of ``prices``.

    The volatility channels need their training fit (``volatility``, as ``Scaler.volatility``
    keeps it); without it they are left out (counting windows does not need them).
    """
    close = prices["close"].to_numpy(dtype="float64")
    columns = [series_for(close, features.target, features.returns)]
    if features.ohlcv:
        columns += _ohlcv_channels(prices, close)
    if features.magnitude:
        r = returns_of(close, features.returns)
        columns += [np.abs(r), r * r]
    if features.rolling:
        columns += _rolling_channels(returns_of(close, features.returns), features.rolling)
    if features.volatility and volatility:
        columns += volatility_channels(prices, volatility)
    if features.calendar:
        columns += calendar_channels(close)
    if features.gap:
        columns.append(overnight_gap(prices))
    if features.market:
        columns += market_channels(prices)
    return np.column_stack(columns)


def first_valid_day(values: np.ndarray) -> int:
    """The first day from which every channel is defined on every later day."""
    bad = np.flatnonzero(np.isnan(values).any(axis=1))
    return int(bad[-1]) + 1 if len(bad) else 0


def volatility_fit(baselines: dict, returns: np.ndarray, first_target: int,
                   n_train: int) -> tuple[float, ...]:
    """What the volatility channels need of the baselines' training fit (``VOLATILITY_FIT``)."""
    garch = baselines["garch"]
    initial = float(np.var(returns[first_target:first_target + n_train]))
    return (initial, initial, garch["omega"], garch["alpha"], garch["beta"],
            baselines["ewma"]["lambda"])


def next_day_variances(prices: pd.DataFrame,
                       fit: tuple[float, ...]) -> tuple[np.ndarray, np.ndarray]:
    """GARCH(1,1) and EWMA variance of day d+1 known after day d, for every day d."""
    garch_initial, ewma_initial, omega, alpha, beta, lam = fit
    r2 = returns_of(prices["close"].to_numpy(dtype="float64")) ** 2
    return (_next_day_variance(r2, garch_initial, omega, alpha, beta),
            _next_day_variance(r2, ewma_initial, 0.0, 1.0 - lam, lam))


def rebased(scaler: Scaler, prices: pd.DataFrame, start: int) -> Scaler:
    """``scaler`` with its volatility recursions starting at row ``start`` of ``prices`` in the
    state the whole of ``prices`` reaches there: the rows from ``start`` on (a forecast's tail)
    then give the channel values the whole history gives them."""
    if not scaler.volatility or start <= 0:
        return scaler
    garch, ewma = next_day_variances(prices, scaler.volatility)
    return replace(scaler, volatility=(float(garch[start]), float(ewma[start]),
                                       *scaler.volatility[2:]))


def _next_day_variance(r2: np.ndarray, initial: float, omega: float, alpha: float,
                       beta: float) -> np.ndarray:
    """v[d] = the variance of day d+1 known after day d: v[d] = omega + alpha r2[d] +
    beta v[d-1], from ``initial`` (r2[0] is day 0's, unused: NaN out)."""
    return np.concatenate([[np.nan], linear_recursion(omega + alpha * r2[1:], initial, beta)])


def volatility_channels(prices: pd.DataFrame, fit: tuple[float, ...]) -> list[np.ndarray]:
    """Per day d, known after its close: log GARCH(1,1) and EWMA sigma of day d+1 (training
    fit, no refit), and the Parkinson and Garman-Klass variance of day d's range; a day with
    no valid open/high/low (a close-only file) gets r^2 in their place."""
    global _close_only_said
    close = prices["close"].to_numpy(dtype="float64")
    r2 = returns_of(close) ** 2
    garch, ewma = next_day_variances(prices, fit)
    ohlc = [prices[c].to_numpy(dtype="float64") if c in prices else np.full(len(close), np.nan)
            for c in ("open", "high", "low")]
    parkinson, garman_klass = range_variances(*ohlc, close)
    valid = np.isfinite(parkinson)
    parkinson = np.where(valid, parkinson, r2)
    garman_klass = np.where(valid, garman_klass, r2)
    if not valid.any() and not _close_only_said:
        _close_only_said = True
        log.info("no open/high/low in the prices: the range channels (Parkinson, Garman-Klass) "
                 "carry r^2 instead")
    parkinson[0] = garman_klass[0] = np.nan
    return [0.5 * np.log(garch), 0.5 * np.log(ewma), parkinson, garman_klass]
