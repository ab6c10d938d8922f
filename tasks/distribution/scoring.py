"""Scores of a predictive distribution of tomorrow's close: CRPS, pinball, coverage, VaR tests."""

from __future__ import annotations

import numpy as np
from scipy import special

from tasks.distribution.distributions import INTERVALS, QUANTILE_LEVELS, ReturnDist

VAR_LEVELS = (0.01, 0.05)


def crps_price(dist: ReturnDist, base: np.ndarray, actual: np.ndarray) -> np.ndarray:
    """CRPS in price units: the log-return CRPS times the previous close (first order in r)."""
    return dist.crps(np.log(actual / base)) * base


def price_quantile(dist: ReturnDist, base: np.ndarray, level: float) -> np.ndarray:
    """The ``level`` quantile of tomorrow's close (exact: exp is monotone)."""
    return base * np.exp(dist.quantile(level))


def pinball(quantile: np.ndarray, actual: np.ndarray, level: float) -> np.ndarray:
    """Quantile (pinball) loss per row."""
    diff = actual - quantile
    return np.maximum(level * diff, (level - 1) * diff)


ROUNDING = 1e-9  # relative loss difference below which two forecasts coincide


def diebold_mariano_loss(loss_a: np.ndarray, loss_b: np.ndarray, horizon: int = 1) -> float:
    """Diebold-Mariano statistic of mean(loss_a - loss_b): > 0 means b scores better (lower
    loss) than a; 0.0 when the difference never varies, or when the two forecasts coincide to
    rounding (no day's losses differ by more than 1e-9 of their mean): a hybrid that kept
    GARCH-t scored against GARCH-t is a ratio of rounding noise, which sums differently on
    another CPU, not evidence either way.

    The mean's variance is Newey-West (HAC, Bartlett weights) over ``horizon - 1`` lags, since
    ``horizon``-step forecast errors overlap; statsmodels' OLS on a constant computes it, with
    the n/(n-1) correction, so one step ahead (no lag) is the plain t-statistic
    ``mean / (std(ddof=1) / sqrt(n))``.
    """
    gain = np.asarray(loss_a, dtype="float64") - np.asarray(loss_b, dtype="float64")
    scale = np.mean(np.abs(loss_a)) + np.mean(np.abs(loss_b)) if len(gain) else 0.0
    if len(gain) < 2 or np.max(np.abs(gain)) <= ROUNDING * scale:
        return 0.0
    mean, se = mean_and_se(gain, max(horizon - 1, 0))
    return mean / se if se > 0 else 0.0


def mean_and_se(series: np.ndarray, lags: int) -> tuple[float, float]:
    """The mean of ``series`` and its Newey-West (HAC, Bartlett weights, ``lags`` lags)
    standard error, with the n/(n-1) correction (statsmodels' OLS on a constant); the standard
    error is 0 when the series never varies."""
    series = np.asarray(series, dtype="float64")
    mean = float(np.mean(series)) if len(series) else 0.0
    if len(series) < 2 or not np.ptp(series) > 0:
        return mean, 0.0
    from statsmodels.regression.linear_model import OLS  # ~1 s to import: only when scoring

    fitted = OLS(series, np.ones_like(series)).fit(
        cov_type="HAC", cov_kwds={"maxlags": min(lags, len(series) - 2), "use_correction": True})
    return float(fitted.params[0]), float(fitted.bse[0])


def kupiec_pof(hits: np.ndarray, level: float) -> float:
    """p-value of Kupiec's proportion-of-failures test (hit rate == level)."""
    n, x = len(hits), int(np.sum(hits))
    if n == 0:
        return float("nan")
    pi = x / n
    ll0 = (n - x) * np.log(1 - level) + x * np.log(level)
    ll1 = (n - x) * np.log(1 - pi) if pi < 1 else 0.0
    ll1 += x * np.log(pi) if pi > 0 else 0.0
    return float(special.chdtrc(1, max(0.0, -2 * (ll0 - ll1))))  # stats.chi2.sf, unchecked


def christoffersen_independence(hits: np.ndarray) -> float:
    """p-value of Christoffersen's test that a hit today does not make one tomorrow likelier."""
    h = np.asarray(hits, dtype=int)
    prev, cur = h[:-1], h[1:]
    n = {(a, b): int(np.sum((prev == a) & (cur == b))) for a in (0, 1) for b in (0, 1)}
    n0, n1 = n[0, 0] + n[0, 1], n[1, 0] + n[1, 1]
    if n1 == 0 or n0 == 0:
        return 1.0
    pi0, pi1 = n[0, 1] / n0, n[1, 1] / n1
    pi = (n[0, 1] + n[1, 1]) / (n0 + n1)

    def ll(count: int, p: float) -> float:
        return count * np.log(p) if count > 0 else 0.0

    l0 = ll(n[0, 0] + n[1, 0], 1 - pi) + ll(n[0, 1] + n[1, 1], pi)
    l1 = ll(n[0, 0], 1 - pi0) + ll(n[0, 1], pi0) + ll(n[1, 0], 1 - pi1) + ll(n[1, 1], pi1)
    return float(special.chdtrc(1, max(0.0, -2 * (l0 - l1))))


def var_backtest(dist: ReturnDist, base: np.ndarray, actual: np.ndarray,
                 quantiles: dict[float, np.ndarray] | None = None) -> dict:
    """1% and 5% VaR (lower quantiles): hit rate, Kupiec and Christoffersen p-values
    (``quantiles``: price quantiles by level already computed)."""
    out = {}
    for level in VAR_LEVELS:
        hits = actual < _quantile(dist, base, level, quantiles)
        out[f"{level * 100:g}%"] = {"hits": int(hits.sum()), "hit_rate": float(hits.mean()),
                                    "kupiec_p": kupiec_pof(hits, level),
                                    "christoffersen_p": christoffersen_independence(hits)}
    return out


# The share of a window's rows with the largest moves, where a user's range matters most.
LARGE_MOVES = 0.05


def summarize(dist: ReturnDist, base: np.ndarray, actual: np.ndarray,
              constant_crps: float | None = None) -> dict:
    """One forecaster's entry of the metrics' ``distribution`` section, on some rows."""
    crps = float(np.mean(crps_price(dist, base, actual)))
    # every level once: the intervals' bounds and the VaR levels are among them (a Student-t
    # quantile per row is the costliest number here)
    quantiles = {_level(q): price_quantile(dist, base, q) for q in QUANTILE_LEVELS}
    coverage, width = {}, {}
    for pct in INTERVALS:
        tail = (1 - pct / 100) / 2
        lo, hi = (_quantile(dist, base, tail, quantiles),
                  _quantile(dist, base, 1 - tail, quantiles))
        coverage[str(pct)] = float(np.mean((actual >= lo) & (actual <= hi)))
        width[str(pct)] = float(np.mean(hi - lo))
    losses = [np.mean(pinball(quantiles[_level(q)], actual, q)) for q in QUANTILE_LEVELS]
    moves, large = np.log(actual / base), large_moves(base, actual)
    lo, hi = _quantile(dist, base, 0.025, quantiles), _quantile(dist, base, 0.975, quantiles)
    return {"crps": crps,
            "log_score": float(np.mean(dist.log_score(moves))) if len(moves) else None,
            "large_move_coverage_95": (float(np.mean(((actual >= lo) & (actual <= hi))[large]))
                                       if np.any(large) else None),
            "crps_vs_constant": crps / constant_crps if constant_crps else 1.0,
            "pinball": float(np.mean(losses)), "coverage": coverage, "width": width,
            "var_backtest": var_backtest(dist, base, actual, quantiles),
            "calibration": {f"{q:g}": float(np.mean(actual <= quantiles[_level(q)]))
                            for q in QUANTILE_LEVELS}}


def large_moves(base: np.ndarray, actual: np.ndarray) -> np.ndarray:
    """The rows whose move |log(actual / base)| is among the ``LARGE_MOVES`` largest."""
    moves = np.abs(np.log(actual / base))
    return moves >= np.quantile(moves, 1 - LARGE_MOVES) if len(moves) else moves.astype(bool)


def width_95(dist: ReturnDist, base: np.ndarray) -> np.ndarray:
    """The 95% central interval's width per row, in price units."""
    return base * (np.exp(dist.quantile(0.975)) - np.exp(dist.quantile(0.025)))


def widened_on_large_moves(network: ReturnDist, garch: ReturnDist, base: np.ndarray,
                           actual: np.ndarray) -> dict[str, int]:
    """On the largest-move rows (``large_moves``): how many there are, and on how many the
    network's 95% range, set the day before, was wider than GARCH-t's (``widened_rows``)."""
    widened = widened_rows(width_95(network, base), width_95(garch, base), base, actual)
    return {"days": int(np.sum(large_moves(base, actual))), "wider": int(np.sum(widened))}


def widened_rows(network_width: np.ndarray, garch_width: np.ndarray, base: np.ndarray,
                 actual: np.ndarray) -> np.ndarray:
    """Per row, whether it is among the largest moves (``large_moves``) and the network's 95%
    range was wider than GARCH-t's by more than rounding (a hybrid left at GARCH-t is not
    wider than GARCH-t where its float sums differ in the last digit)."""
    wider = np.asarray(network_width) > np.asarray(garch_width) * (1.0 + ROUNDING)
    return large_moves(base, actual) & wider


def _level(q: float) -> float:
    """A quantile level as a key: (1 - 0.95) / 2 and 0.025 are the same level."""
    return round(q, 12)


def _quantile(dist: ReturnDist, base: np.ndarray, level: float,
              known: dict[float, np.ndarray] | None) -> np.ndarray:
    """A price quantile, from ``known`` (keyed by ``_level``) when it holds the level."""
    found = (known or {}).get(_level(level))
    return price_quantile(dist, base, level) if found is None else found
