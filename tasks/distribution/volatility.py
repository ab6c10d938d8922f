"""Volatility baselines on a daily log-return series with a training boundary, no look-ahead.

Each is fit on the first ``n_train`` returns only and rolled forward with fixed parameters:
the distribution of day t uses returns before t. All are centred on 0 (random walk).
- constant: normal with the training standard deviation;
- ewma: RiskMetrics, normal, sigma2_t = lam * sigma2_{t-1} + (1 - lam) * r_{t-1}^2, lam = 0.94;
- garch: GARCH(1,1) with Student-t innovations, fitted by the ``arch`` package.
"""

from __future__ import annotations

import numpy as np

from tasks.distribution.distributions import ReturnDist

BASELINES = ("constant", "ewma", "garch")
EWMA_LAMBDA = 0.94
PCT = 100.0  # arch fits percent returns (better conditioned); parameters are stored in units


def fit_baselines(returns: np.ndarray, n_train: int) -> dict[str, dict]:
    """Parameters of each baseline, fit on ``returns[:n_train]`` only, and its variance state
    for row ``n_train`` (the first row after training): enough to roll on without refitting."""
    train = returns[:n_train]
    var = float(np.var(train))
    ewma_state = var
    for r in train:
        ewma_state = EWMA_LAMBDA * ewma_state + (1 - EWMA_LAMBDA) * r * r
    return {"constant": {"sigma": float(np.sqrt(var)), "dist": "normal"},
            "ewma": {"lambda": EWMA_LAMBDA, "dist": "normal", "state_var": float(ewma_state)},
            "garch": fit_garch(train)}


def fit_garch(train: np.ndarray) -> dict:
    """GARCH(1,1), zero mean, standardised Student-t innovations (arch), on training returns."""
    from arch import arch_model

    res = arch_model(train * PCT, mean="Zero", vol="GARCH", p=1, q=1, dist="t",
                     rescale=False).fit(disp="off")
    p = res.params
    omega, alpha, beta = float(p["omega"]) / PCT**2, float(p["alpha[1]"]), float(p["beta[1]"])
    last_var = float(res.conditional_volatility[-1] / PCT) ** 2
    state = omega + alpha * float(train[-1]) ** 2 + beta * last_var
    return {"omega": omega, "alpha": alpha, "beta": beta, "nu": float(p["nu"]), "dist": "t",
            "state_var": state}


def roll_variance(name: str, params: dict, returns: np.ndarray) -> np.ndarray:
    """Variance of each day of ``returns`` (len n + 1: the last is the day after), starting from
    the stored state; day t's variance uses returns before t only."""
    out = np.empty(len(returns) + 1)
    if name == "constant":
        out[:] = params["sigma"] ** 2
        return out
    out[0] = params["state_var"]
    omega, alpha, beta = recursion_terms(name, params)
    returns = np.asarray(returns, dtype="float64")
    out[1:] = linear_recursion(omega + alpha * returns ** 2, out[0], beta)
    return out


def linear_recursion(x: np.ndarray, initial: float, beta: float) -> np.ndarray:
    """y[t] = x[t] + beta * y[t-1] from y[-1] = ``initial``, as one linear filter (the
    variance recursions of EWMA and GARCH(1,1) over a whole series, without a Python loop)."""
    from scipy.signal import lfilter

    return lfilter([1.0], [1.0, -beta], x, zi=[beta * initial])[0]


def recursion_terms(name: str, params: dict) -> tuple[float, float, float]:
    """(omega, alpha, beta) of a baseline's variance recursion ``next_variance``."""
    if name == "ewma":
        return 0.0, 1.0 - params["lambda"], params["lambda"]
    return params["omega"], params["alpha"], params["beta"]


def next_variance(name: str, params: dict, var, r):
    """One step of a baseline's variance recursion (vectorised over paths)."""
    if name == "ewma":
        return params["lambda"] * var + (1 - params["lambda"]) * r * r
    if name == "garch":
        return params["omega"] + params["alpha"] * r * r + params["beta"] * var
    return var


def dist_from_variance(name: str, params: dict, var: np.ndarray) -> ReturnDist:
    """Return distribution from variances: normal, or GARCH's unit-variance Student-t."""
    if name == "garch":
        nu = params["nu"]
        return ReturnDist.of(np.zeros(len(var)), np.sqrt(var * (nu - 2) / nu), nu)
    return ReturnDist.of(np.zeros(len(var)), np.sqrt(var))


def baseline_dists(returns: np.ndarray, n_train: int,
                   params: dict[str, dict] | None = None) -> tuple[dict[str, ReturnDist], dict]:
    """Each baseline's distribution for the rows after training (index n_train on), and params."""
    params = params or fit_baselines(returns, n_train)
    after = returns[n_train:]
    dists = {name: dist_from_variance(name, params[name],
                                      roll_variance(name, params[name], after)[:-1])
             for name in BASELINES}
    return dists, params


def variance_path(name: str, params: dict, returns: np.ndarray, n_train: int) -> np.ndarray:
    """Each row's conditional variance (day t from returns before t), for every row of
    ``returns``: training rows filtered with the training fit from the training variance (as
    ``fit_baselines`` starts EWMA), later rows exactly as ``baseline_dists`` rolls them."""
    if name == "constant":
        return np.full(len(returns), params["sigma"] ** 2)
    train = returns[:n_train]
    var = float(np.var(train))
    omega, alpha, beta = recursion_terms(name, params)
    inside = linear_recursion(omega + alpha * train[:-1] ** 2, var, beta)
    return np.concatenate([[var], inside, roll_variance(name, params, returns[n_train:])[:-1]])
