"""Inputs GARCH cannot see, each known at the forecast's origin: the symbol's calendar of large
moves (standardized squared returns a quarter, a half, three quarters and a year before the day
being forecast: earnings) and the overnight gap."""

from __future__ import annotations

import numpy as np
import pandas as pd

# Trading days between a past day and the day being forecast (quarterly and annual reports).
CALENDAR_LAGS = (63, 126, 189, 252)
EWMA_LAMBDA = 0.94
EWMA_DAYS = 60  # the EWMA's weights over the 60 days before a day (0.94^60 = 2.4% left out)
Z2_CAP = 100.0  # z^2 above this reads as this (a move after a flat stretch)
# What a calendar channel reads before its lag's day has a z^2: log1p(1), a typical day.
CALENDAR_FILL = float(np.log1p(1.0))
# Rows before the oldest lag day a calendar channel reads: the 3-day span's far end (L + 1
# before the forecast day) and the EWMA's days before it, plus the return's previous close.
CALENDAR_HISTORY = max(CALENDAR_LAGS) + EWMA_DAYS + 1


def calendar_names() -> list[str]:
    """Names of the calendar channels, one per lag."""
    return [f"calendar{lag}" for lag in CALENDAR_LAGS]


def ewma_weights(days: int = EWMA_DAYS, lam: float = EWMA_LAMBDA) -> np.ndarray:
    """The EWMA's weights, oldest day first, summing to 1."""
    weights = (1.0 - lam) * lam ** np.arange(days)[::-1]
    return weights / weights.sum()


def standardized_squares(close: np.ndarray) -> np.ndarray:
    """z^2 of each day d: r_d^2 over the EWMA variance known before d (the ``EWMA_DAYS`` days
    d-60..d-1, ``ewma_weights``), capped at ``Z2_CAP``; NaN until 60 returns precede d.

    A finite window (no recursion from the history's start), so a forecast's tail of the
    history gives the values the whole history gives."""
    close = np.asarray(close, dtype="float64")
    r2 = np.concatenate([[np.nan], np.diff(np.log(close))]) ** 2
    variance = np.full(len(r2), np.nan)
    if len(r2) > EWMA_DAYS:
        windows = np.lib.stride_tricks.sliding_window_view(r2, EWMA_DAYS)
        variance[EWMA_DAYS:] = windows[:-1] @ ewma_weights()
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.minimum(r2 / np.maximum(variance, 1e-20), Z2_CAP)


def calendar_channels(close: np.ndarray) -> list[np.ndarray]:
    """Per origin day d (forecasting day d+1), for each lag L: log1p of the largest z^2 of the
    days d+1-L-1 .. d+1-L+1 (a 3-day span absorbs holidays and report-date drift), all at or
    before d; ``CALENDAR_FILL`` where those days have no z^2 yet."""
    z2 = pd.Series(standardized_squares(close))
    span_max = z2.rolling(3, min_periods=3).max().to_numpy()  # [i]: days i-2..i
    out = []
    for lag in CALENDAR_LAGS:
        shift = lag - 2  # the span of origin d ends on day d+1-L+1 = d - shift
        value = np.full(len(z2), np.nan)
        if len(z2) > shift:
            value[shift:] = span_max[:len(z2) - shift]
        out.append(np.where(np.isnan(value), CALENDAR_FILL, np.log1p(value)))
    return out


def calendar_row(closes: np.ndarray) -> list[np.ndarray]:
    """``calendar_channels`` of the last day only, for many paths at once: ``closes`` is
    ``(paths, days)``; one value per path and lag, as the whole path would give it (a
    simulated day's calendar reads known days until the horizon passes the shortest lag, then
    the path's own simulated ones)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        r2 = np.diff(np.log(closes), axis=1) ** 2  # r2[:, j - 1] is day j's
    last = closes.shape[1] - 1
    weights = ewma_weights()
    out = []
    for lag in CALENDAR_LAGS:
        days = [last - lag + k for k in (0, 1, 2)]  # the span d+1-L-1 .. d+1-L+1
        spans = []
        for j in days:
            if j - EWMA_DAYS < 1:  # no z^2 yet (as ``standardized_squares``'s NaN)
                spans.append(np.full(len(closes), np.nan))
                continue
            variance = r2[:, j - 1 - EWMA_DAYS:j - 1] @ weights
            with np.errstate(divide="ignore", invalid="ignore"):
                spans.append(np.minimum(r2[:, j - 1] / np.maximum(variance, 1e-20), Z2_CAP))
        value = np.max(np.column_stack(spans), axis=1)  # NaN if any day has none (min_periods)
        out.append(np.where(np.isnan(value), CALENDAR_FILL, np.log1p(value)))
    return out


def overnight_gap(prices: pd.DataFrame) -> np.ndarray:
    """log(open_d / close_{d-1}) of each day d (known at day d's close); 0 where the open is
    missing or not positive (a close-only file: no gap seen); NaN on the first day."""
    close = prices["close"].to_numpy(dtype="float64")
    opens = (prices["open"].to_numpy(dtype="float64") if "open" in prices
             else np.full(len(close), np.nan))
    previous = np.concatenate([[np.nan], close[:-1]])
    with np.errstate(divide="ignore", invalid="ignore"):
        gap = np.where(opens > 0, np.log(opens / previous), 0.0)
    gap[0] = np.nan
    return gap
