"""Multi-day forecasts: sample paths simulated through a baseline's one-day distribution, each
sampled return fed back into its own variance recursion (LSTM paths:
tasks/forecaster/paths.py)."""

from __future__ import annotations

from collections import deque

import numpy as np

from tasks.distribution.distributions import INTERVALS, ReturnDist, standard_innovations

N_PATHS = 2000
SEED = 0


def simulate_baseline(name: str, params: dict, var0: np.ndarray, horizon: int,
                      n_paths: int = N_PATHS, seed: int = SEED) -> np.ndarray:
    """Cumulative log returns ``(origins, n_paths, horizon)`` from each origin's next-day
    variance ``var0`` ``(origins,)`` through the baseline's recursion."""
    out = np.empty((len(var0), n_paths, horizon))
    for h, total in enumerate(_cumulative_paths(name, params, var0, horizon, n_paths, seed)):
        out[..., h] = total
    return out


def _cumulative_paths(name: str, params: dict, var0: np.ndarray, horizon: int, n_paths: int,
                      seed: int):
    """Each day's cumulative log returns ``(origins, n_paths)``, day 1 to ``horizon``.

    Every origin uses the same innovations (common random numbers), each scaled through its
    own variance recursion: one draw per path and day instead of one per origin too (the
    Student-t draws were a third of a 5-day coverage check over 261 origins).
    """
    from tasks.distribution.volatility import next_variance

    rng = np.random.default_rng(seed)
    var = np.repeat(np.asarray(var0, dtype="float64")[:, None], n_paths, axis=1)
    nu = params.get("nu", np.inf) if name == "garch" else np.inf
    total = np.zeros_like(var)
    half = (1, (n_paths + 1) // 2)
    for h in range(horizon):
        # antithetic draws: the baselines are symmetric, so the median path is exactly flat
        z = standard_innovations(rng, nu, half, unit_variance=True)
        r = np.sqrt(var) * np.concatenate([z, -z], axis=1)[:, :n_paths]
        total = total + r
        yield total
        if h < horizon - 1:
            var = next_variance(name, params, var, r)


def fan(last_close: float, cum_returns: np.ndarray) -> dict[str, np.ndarray]:
    """Median and the 50/80/95% central bounds per day from ``(n_paths, horizon)`` paths
    (quantiles of the cumulative log return, then priced: exp is monotone)."""
    out = {"close": last_close * np.exp(np.median(cum_returns, axis=0))}
    for pct in INTERVALS:
        tail = (100 - pct) / 2
        out[f"lower_{pct}"] = last_close * np.exp(np.percentile(cum_returns, tail, axis=0))
        out[f"upper_{pct}"] = last_close * np.exp(np.percentile(cum_returns, 100 - tail, axis=0))
    return out


def student_t_fan(last_close: np.ndarray, centre: np.ndarray, scale: np.ndarray,
                  dof: np.ndarray) -> dict[str, np.ndarray]:
    """``fan``'s median and bounds of one day in closed form, per row: the log return
    log(centre / last) + scale * t(dof) at the Student-t's quantiles (no sampling)."""
    last = np.asarray(last_close, dtype="float64")
    dist = ReturnDist.of(np.log(np.asarray(centre, dtype="float64") / last), scale, dof)
    out = {"close": last * np.exp(dist.quantile(0.5))}
    for pct in INTERVALS:
        tail = (100 - pct) / 200
        out[f"lower_{pct}"] = last * np.exp(dist.quantile(tail))
        out[f"upper_{pct}"] = last * np.exp(dist.quantile(1 - tail))
    return out


def coverage_ahead(name: str, params: dict, var_next: np.ndarray, returns: np.ndarray,
                   horizon: int = 5, pct: int = 80, n_paths: int = 1000) -> float:
    """Share of origins whose simulated ``horizon``-day-ahead ``pct``% interval held the actual
    cumulative return. ``var_next[i]`` is the variance of day i; origins are the days before."""
    n = len(returns) - horizon + 1
    if n <= 0:
        return float("nan")
    tail = (100 - pct) / 2
    if name == "constant":  # a sum of iid normals: the interval in closed form, no simulation
        from scipy.stats import norm

        half = norm.ppf(1 - tail / 100) * np.sqrt(horizon * var_next[:n])
        lo, hi = -half, half
    else:
        days = _cumulative_paths(name, params, var_next[:n], horizon, n_paths, SEED)
        paths = deque(days, maxlen=1)[0]  # only the last day's cumulative returns count
        lo, hi = np.percentile(paths, [tail, 100 - tail], axis=1)
    actual = np.convolve(returns, np.ones(horizon), mode="valid")[:n]
    return float(np.mean((actual >= lo) & (actual <= hi)))
