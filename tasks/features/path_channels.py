"""Channel values of simulated days on many sample paths at once (``(paths, ...)`` arrays).

A simulated day has open = high = low = close and the last known volume (as
``forecaster.paths.sample_paths`` appends it). Since a day's channels read only that day and
earlier ones (``channels.channel_values``), the known days' values are computed once for all
paths, and each simulated day adds one row per path by the same formulas, vectorised over paths.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from tasks.core.training_config import FeatureConfig
from tasks.distribution.hybrid_inputs import range_variances
from tasks.features.channels import channel_values, next_day_variances, returns_of
from tasks.features.market_state import MARKET_COLUMNS
from tasks.features.origin_inputs import calendar_row


@dataclass
class PathChannels:
    """Every path's channel values: the known days' rows (shared), then one row per simulated
    day (``append``); ``window`` reads the last k rows of each path."""

    features: FeatureConfig
    volatility: tuple[float, ...]  # the volatility channels' fit; empty: no such channels
    history: np.ndarray  # (known days, channels), the same on every path
    closes: np.ndarray  # (paths, days): each path's closes so far
    returns: np.ndarray  # (paths, days): returns of the features' kind (NaN on day 0)
    log_volume: float  # log1p of the volume every simulated day repeats
    variances: tuple[np.ndarray, np.ndarray] = ()  # GARCH, EWMA variance after the last day
    new: list[np.ndarray] = field(default_factory=list)  # (paths, channels) per simulated day

    @classmethod
    def start(cls, known: pd.DataFrame, features: FeatureConfig, volatility: tuple[float, ...],
              n_paths: int) -> PathChannels:
        """``n_paths`` paths through the known days ``known`` (close, open/high/low, volume)."""
        close = known["close"].to_numpy(dtype="float64")
        volume = known["volume"].to_numpy(dtype="float64") if "volume" in known else [np.nan]
        variances: tuple = ()
        if features.volatility and volatility:
            garch, ewma = next_day_variances(known, volatility)
            variances = (np.full(n_paths, garch[-1]), np.full(n_paths, ewma[-1]))
        return cls(features, tuple(volatility), channel_values(known, features, volatility),
                   np.repeat(close[None, :], n_paths, axis=0),
                   np.repeat(returns_of(close, features.returns)[None, :], n_paths, axis=0),
                   float(np.log1p(np.clip(volume[-1], 0, None))), variances)

    def append(self, close: np.ndarray) -> None:
        """Add a simulated day closing at ``close`` ``(paths,)`` to every path."""
        previous = self.closes[:, -1]
        log_r = np.log(close) - np.log(previous)  # as np.diff(np.log(closes))
        r = log_r if self.features.returns == "log" else close / previous - 1.0
        self.closes = np.concatenate([self.closes, close[:, None]], axis=1)
        self.returns = np.concatenate([self.returns, r[:, None]], axis=1)
        self.new.append(np.column_stack(self._row(close, r, log_r)))

    def _row(self, close: np.ndarray, r: np.ndarray, log_r: np.ndarray) -> list[np.ndarray]:
        """The new day's channels in ``channel_names`` order."""
        features = self.features
        columns = [r if features.target == "return" else close.astype("float64")]
        if features.ohlcv:  # open, high and low are the close; the volume repeats
            same = np.log(close / close)
            change = np.full(len(close), self.log_volume - self.log_volume)
            columns += [same, same.copy(), same.copy(), change]
        if features.magnitude:
            columns += [np.abs(r), r * r]
        for w in features.rolling:  # pandas' rolling(w, min_periods=w) mean and std(ddof=0)
            last = self.returns[:, -w:]
            columns += [last.mean(axis=1), last.std(axis=1)]
        if self.variances:
            columns += self._volatility_row(close, log_r * log_r)
        if features.calendar:
            columns += calendar_row(self.closes)
        if features.gap:  # the day opened at its close: the whole move is the gap
            columns.append(log_r)
        if features.market:  # the market's next days are not simulated: the last known state
            for value in self.history[-1, -len(MARKET_COLUMNS):]:
                columns.append(np.full(len(close), value))
        return columns

    def _volatility_row(self, close: np.ndarray, r2: np.ndarray) -> list[np.ndarray]:
        """GARCH and EWMA log sigma of the next day, rolled one day on along each path, and
        the day's range estimators (zero range; r^2 where the estimators are undefined)."""
        _, _, omega, alpha, beta, lam = self.volatility
        garch = (omega + alpha * r2) + beta * self.variances[0]
        ewma = (0.0 + (1.0 - lam) * r2) + lam * self.variances[1]
        self.variances = (garch, ewma)
        parkinson, garman_klass = range_variances(close, close, close, close)
        valid = np.isfinite(parkinson)
        return [0.5 * np.log(garch), 0.5 * np.log(ewma), np.where(valid, parkinson, r2),
                np.where(valid, garman_klass, r2)]

    def window(self, k: int) -> np.ndarray:
        """Each path's last ``k`` days of unscaled channels ``(paths, k, channels)``."""
        n_paths = len(self.closes)
        new = self.new[-k:]
        parts = [np.stack(new, axis=1)] if new else []
        if len(new) < k:
            old = self.history[len(self.history) - (k - len(new)):]
            parts.insert(0, np.broadcast_to(old, (n_paths, *old.shape)))
        return np.concatenate(parts, axis=1)
