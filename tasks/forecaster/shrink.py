"""The point forecast toward naive: a network's scaled output back in prices, and the shrink
factor, fit on validation rows, that moves it toward "tomorrow = today"."""

from __future__ import annotations

import numpy as np

from tasks.distribution.scoring import diebold_mariano_loss
from tasks.features.scaler import Scaler


def rebuild_close(pred_scaled: np.ndarray, base_close: np.ndarray, scaler: Scaler,
                  target: str, returns: str = "log") -> np.ndarray:
    """Turn scaled predictions back into prices: close_t * exp(r), close_t * (1 + r), or close."""
    raw = scaler.inverse(pred_scaled)
    if target != "return":
        return raw
    return base_close * (np.exp(raw) if returns == "log" else 1.0 + raw)


def fit_shrink(predicted: np.ndarray, base_close: np.ndarray, actual: np.ndarray) -> float:
    """alpha in [0, 1] minimising the MSE of ``base + alpha * (predicted - base)``.

    Fit on the VALIDATION split only; alpha = 0 is the naive forecast, 1 the raw model.
    """
    move_hat = predicted - base_close
    denom = float(move_hat @ move_hat)
    if denom <= 0:
        return 0.0
    return float(np.clip(move_hat @ (actual - base_close) / denom, 0.0, 1.0))


def diebold_mariano(predicted: np.ndarray, base_close: np.ndarray, actual: np.ndarray,
                    horizon: int = 1) -> float:
    """DM statistic of the squared-error gain over naive (> 0: the forecast beats naive),
    HAC variance over ``horizon - 1`` lags (``scoring.diebold_mariano_loss``)."""
    return diebold_mariano_loss((base_close - actual) ** 2, (predicted - actual) ** 2, horizon)


def gated_shrink(predicted: np.ndarray, base_close: np.ndarray, actual: np.ndarray,
                 gate_z: float) -> tuple[float, float]:
    """(alpha, validation DM statistic): alpha from ``fit_shrink``, set to 0 (naive) unless the
    shrunk forecast beats naive on these (validation) rows with DM >= ``gate_z``."""
    alpha = fit_shrink(predicted, base_close, actual)
    dm = diebold_mariano(shrink(predicted, base_close, alpha), base_close, actual)
    return (alpha if alpha > 0 and dm >= gate_z else 0.0), dm


def shrink(predicted: np.ndarray, base_close: np.ndarray, alpha: float) -> np.ndarray:
    """Move a forecast toward the naive one: ``base + alpha * (predicted - base)``."""
    return base_close + alpha * (predicted - base_close)
