"""Multi-day LSTM forecasts: sample paths through the model's Student-t head, each sampled
day fed back into the next window (baseline paths: tasks/distribution/simulate.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tasks.distribution.simulate import N_PATHS, SEED
from tasks.distribution.volatility import next_variance
from tasks.evaluation.evaluate import garch_offsets_of, network_raw, rebuild_close, shrink
from tasks.features.windows import channel_values
from tasks.model.lstm import student_t_params


def simulate_lstm(model, features, scaler, alpha: float, tail: pd.DataFrame, horizon: int,
                  n_paths: int = N_PATHS, seed: int = SEED,
                  garch: tuple[dict, float] | None = None) -> np.ndarray:
    """Cumulative log returns ``(n_paths, horizon)`` through the LSTM's Student-t head; each
    path's sampled day is appended (open = high = low = close, last volume) before the next.

    A hybrid network corrects GARCH-t: ``garch`` is its fit and the variance of the first
    day, and each path's GARCH variance rolls on with that path's sampled returns.
    """
    rng = np.random.default_rng(seed)
    base = tail.reset_index(drop=True)
    closes = np.repeat(base["close"].to_numpy(dtype="float64")[None, :], n_paths, axis=0)
    start = closes[0, -1]
    k = features.window
    variance = np.full(n_paths, garch[1]) if garch else None
    extended = base.reindex(range(len(base) + horizon)).ffill()
    for step in range(horizon):
        windows = []
        frame = extended.iloc[:len(base) + step].copy()
        for path in closes:
            frame["close"] = path
            for col in ("open", "high", "low"):  # simulated days: no intraday range
                frame[col] = np.concatenate([base[col].to_numpy(), path[len(base):]])
            windows.append(scaler.transform_all(
                channel_values(frame, features, scaler.volatility))[-k:])
        offsets = garch_offsets_of(variance, garch[0]["nu"], scaler) if garch else None
        raw = network_raw(model, np.asarray(windows, dtype="float32"), offsets)
        last = closes[:, -1]
        centre = shrink(rebuild_close(raw[:, 0], last, scaler, "return", "log"), last, alpha)
        _, scale, dof = student_t_params(raw)
        move = np.log(centre / last) + scale * scaler.scale * rng.standard_t(dof)
        closes = np.concatenate([closes, (last * np.exp(move))[:, None]], axis=1)
        if garch:
            variance = next_variance("garch", garch[0], variance, move)
    return np.log(closes[:, -horizon:] / start)
