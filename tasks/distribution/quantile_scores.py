"""Distribution scores from a few quantiles: the one place a CRPS is computed for live forecasts.

A forecast carries its median and the bounds of its central 50/80/95% intervals: seven
quantiles. CRPS = 2 * integral over tau of the pinball loss; with only these quantiles the
integral is a midpoint sum, each quantile weighted by the span of tau nearest to it. For a
normal distribution this reads ~3% below the closed form (measured in tests/test_ledger.py),
so a baseline is scored from ITS seven quantiles the same way: ratios compare like with like.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import norm

LEVELS = (50, 80, 95)
# The order of the ledger's quantile columns: lower/upper of each level, then the median.
QUANTILE_TAUS = np.array([t for x in LEVELS for t in ((1 - x / 100) / 2, (1 + x / 100) / 2)]
                         + [0.5])


def _weights(taus: np.ndarray) -> np.ndarray:
    """Midpoint-rule weights of sorted taus over [0, 1] (they sum to 1)."""
    edges = np.concatenate([[0.0], (taus[1:] + taus[:-1]) / 2, [1.0]])
    return np.diff(edges)


def pinball(quantile: float, tau: float, y: float) -> float:
    """Pinball (quantile) loss of one quantile forecast."""
    return max(tau * (y - quantile), (tau - 1) * (y - quantile))


def crps_from_quantiles(values: np.ndarray, y: float,
                        taus: np.ndarray = QUANTILE_TAUS) -> float:
    """CRPS approximated from quantiles: 2 * sum_i w_i * pinball(q_i, tau_i, y)."""
    order = np.argsort(taus)
    taus, values = np.asarray(taus)[order], np.asarray(values, dtype=float)[order]
    losses = np.array([pinball(q, t, y) for q, t in zip(values, taus, strict=True)])
    return float(2 * np.sum(_weights(taus) * losses))


def normal_quantiles(mu: float, sigma: float, taus: np.ndarray = QUANTILE_TAUS) -> np.ndarray:
    """Quantiles of N(mu, sigma^2) at ``taus``."""
    return mu + sigma * norm.ppf(taus)


def crps_normal(mu: float, sigma: float, y: float) -> float:
    """Closed-form CRPS of N(mu, sigma^2) at y (Gneiting and Raftery 2007)."""
    z = (y - mu) / sigma
    return float(sigma * (z * (2 * norm.cdf(z) - 1) + 2 * norm.pdf(z) - 1 / np.sqrt(np.pi)))
