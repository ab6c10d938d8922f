"""Predictive distributions: scoring maths, volatility baselines, the gate, promotion, paths."""

from __future__ import annotations

import numpy as np
import pandas as pd
import properscoring as ps
import pytest
from scipy import stats

from tasks.core.version_files import Metrics
from tasks.distribution.distributions import ReturnDist, crps_t
from tasks.distribution.gate import distribution_section, saved_baseline_dist
from tasks.distribution.scoring import christoffersen_independence, kupiec_pof, pinball, summarize
from tasks.distribution.simulate import fan, simulate_baseline
from tasks.distribution.volatility import PCT, baseline_dists, fit_baselines, roll_variance
from tasks.registry.promotion import promotion_decision


@pytest.fixture(scope="module")
def returns() -> np.ndarray:
    """Fat-tailed returns with volatility clusters (a GARCH path)."""
    rng = np.random.default_rng(3)
    r, var = np.empty(1200), 1e-4
    for t in range(len(r)):
        r[t] = np.sqrt(var) * rng.standard_t(5) * np.sqrt(3 / 5)
        var = 2e-6 + 0.08 * r[t] ** 2 + 0.9 * var
    return r


def test_crps_closed_forms_match_properscoring():
    y = np.array([0.012, -0.031, 0.0, 0.05])
    loc, scale = np.array([0.0, 0.001, -0.002, 0.0]), np.array([0.02, 0.01, 0.015, 0.01])
    normal = crps_t(y, loc, scale, np.full(4, np.inf))
    assert normal == pytest.approx(ps.crps_gaussian(y, loc, scale), rel=1e-10)
    for nu in (2.5, 4.0, 30.0):
        ours = crps_t(y, loc, scale, np.full(4, nu))
        ref = [float(ps.crps_quadrature(v, stats.t(nu, m, s)))
               for v, m, s in zip(y, loc, scale, strict=True)]
        assert ours == pytest.approx(ref, rel=1e-5)


def test_pinball_and_interval_scores():
    assert pinball(np.array([10.0]), np.array([12.0]), 0.9)[0] == pytest.approx(1.8)
    assert pinball(np.array([10.0]), np.array([8.0]), 0.9)[0] == pytest.approx(0.2)
    rng = np.random.default_rng(0)
    dist = ReturnDist.of(np.zeros(20000), np.full(20000, 0.01))
    base = np.full(20000, 50.0)
    actual = base * np.exp(rng.normal(scale=0.01, size=20000))
    s = summarize(dist, base, actual)
    assert s["coverage"]["80"] == pytest.approx(0.8, abs=0.01)
    assert s["coverage"]["95"] == pytest.approx(0.95, abs=0.006)
    assert s["width"]["50"] < s["width"]["80"] < s["width"]["95"]
    assert s["var_backtest"]["5%"]["kupiec_p"] > 0.01


def test_var_backtests_known_values():
    # 10 hits in 100 days at 5%: LR = -2[90 ln .95 + 10 ln .05 - 90 ln .9 - 10 ln .1] = 4.131,
    # chi2(1) p = 0.0421.
    hits = np.zeros(100, dtype=bool)
    hits[::10] = True
    assert kupiec_pof(hits, 0.05) == pytest.approx(0.0421, abs=2e-4)
    assert kupiec_pof(np.zeros(100, dtype=bool) | (np.arange(100) % 20 == 0), 0.05) \
        == pytest.approx(1.0)
    clustered = np.zeros(200, dtype=bool)
    clustered[50:60] = True
    assert christoffersen_independence(clustered) < 1e-6
    assert christoffersen_independence(hits) > 0.05


def test_baselines_see_no_data_after_the_train_boundary(returns):
    n_train = 800
    changed = returns.copy()
    changed[n_train:] *= 5
    first, second = fit_baselines(returns, n_train), fit_baselines(changed, n_train)
    assert first == second
    dists_a, _ = baseline_dists(returns, n_train)
    dists_b, _ = baseline_dists(changed, n_train)
    for name in dists_a:  # the first post-training day's distribution uses training rows only
        assert dists_a[name].scale[0] == dists_b[name].scale[0]
        # day t's variance moves only after day t-1's return changed
        assert dists_a[name].scale[1] == dists_b[name].scale[1] or name != "constant"


def test_garch_roll_matches_arch_forecasts(returns):
    from arch import arch_model

    n_train = 800
    params = fit_baselines(returns, n_train)["garch"]
    res = arch_model(returns * PCT, mean="Zero", vol="GARCH", p=1, q=1, dist="t",
                     rescale=False).fit(last_obs=n_train, disp="off")
    expected = res.forecast(horizon=1, start=n_train - 1, reindex=False).variance
    ours = roll_variance("garch", params, returns[n_train:])
    assert ours == pytest.approx(expected.to_numpy().ravel() / PCT**2, rel=1e-8)
    assert params["alpha"] == pytest.approx(0.08, abs=0.04) and params["nu"] > 2
    assert params["beta"] == pytest.approx(0.9, abs=0.06)  # the simulated process is recovered


def _frame(returns: np.ndarray) -> pd.DataFrame:
    close = 50 * np.exp(np.concatenate([[0.0], returns.cumsum()]))
    n = len(returns)
    split = np.repeat(["train", "validation", "test"], [n - 400, 200, 200])
    return pd.DataFrame({"date": pd.bdate_range("2010-01-04", periods=n),
                         "base_close": close[:-1], "close": close[1:], "split": split})


def test_gate_falls_back_to_the_best_baseline(returns):
    frame = _frame(returns)
    bad = ReturnDist.of(np.zeros(len(frame)), np.full(len(frame), 0.2), 4.0)
    section, saved, chosen = distribution_section(frame, bad, 1.645)
    model = section["model"]
    assert model["source"] in {"constant", "ewma", "garch"} and saved.source == model["source"]
    assert model["validation_dm"] < 0 and model["crps"] == section[model["source"]]["crps"]
    assert model["dm_vs"][model["source"]] == 0.0
    assert {"model", "constant", "ewma", "garch"} == set(section)
    for entry in section.values():
        assert {"crps", "crps_vs_constant", "pinball", "coverage", "width",
                "var_backtest"} <= set(entry)
        assert set(entry["coverage"]) == {"50", "80", "95"}
    shifted, _, moved = distribution_section(frame, bad, 1.645, np.full(len(frame), 0.01))
    assert np.all(moved.loc == 0.01) and np.array_equal(moved.scale, chosen.scale)
    assert shifted["model"]["crps"] > model["crps"]  # centred on the (bad) point forecast


def test_gate_keeps_a_better_lstm_distribution():
    rng = np.random.default_rng(1)
    scale = rng.choice([0.002, 0.04], size=1200)  # known to the "LSTM", not to the baselines
    frame = _frame(scale * rng.standard_normal(1200))
    oracle = ReturnDist.of(np.zeros(len(frame)), scale)
    section, saved, _ = distribution_section(frame, oracle, 1.645)
    assert section["model"]["source"] == saved.source == "lstm"
    assert section["model"]["validation_dm"] >= 1.645
    assert section["model"]["crps_vs_constant"] < 0.8


def test_saved_baseline_rescores_the_same_dates(returns):
    frame = _frame(returns)
    section, saved, chosen = distribution_section(frame, None, 1.645)
    prices = pd.DataFrame({"date": [frame["date"].iloc[0] - pd.offsets.BDay(1),
                                    *frame["date"]],
                           "close": [frame["base_close"].iloc[0], *frame["close"]]})
    test = frame[frame["split"] == "test"]
    again = saved_baseline_dist(saved, prices, test["date"])
    assert again.scale == pytest.approx(chosen.scale, rel=1e-10)


@pytest.mark.parametrize(("rmse", "crps", "champion_crps", "promoted", "why"), [
    (1.1, 0.9, None, False, "naive"),
    (1.0, 1.01, None, False, "constant-volatility"),
    (1.0, 1.0, None, True, "no champion"),  # a fully gated version ties and is promoted
    (1.0, 0.95, 0.95, False, "does not beat champion"),
    (1.0, 0.94, 0.95, True, "beats champion"),
    (1.0, 0.95, 0.95 * (1 + 1e-13), False, "does not beat champion"),  # rescoring noise
    (1.05, 0.90, 0.95, False, "naive"),
])
def test_promotion_needs_naive_constant_and_champion(rmse, crps, champion_crps, promoted, why):
    metrics = Metrics(rmse=rmse, naive_rmse=1.0, rmse_vs_naive=rmse, distribution={
        "model": {"crps": crps, "source": "garch"}, "constant": {"crps": 1.0}})
    champion = {"version": 3} if champion_crps is not None else None
    decided, reason = promotion_decision(metrics, champion, 1.0 if champion else None,
                                         champion_crps)
    assert decided is promoted and why in reason


def test_simulated_intervals_widen_with_the_horizon(returns):
    params = fit_baselines(returns, 800)
    for name in ("constant", "ewma", "garch"):
        paths = simulate_baseline(name, params[name], np.array([2e-4]), 10)[0]
        bands = fan(40.0, paths)
        width = bands["upper_80"] - bands["lower_80"]
        assert np.all(np.diff(width) > 0), name
        assert bands["close"] == pytest.approx(40.0, rel=1e-12)  # antithetic: flat median
        assert np.all(bands["lower_95"] < bands["lower_50"]) and \
            np.all(bands["upper_50"] < bands["upper_95"])
    again = simulate_baseline("garch", params["garch"], np.array([2e-4]), 10)
    assert np.array_equal(again[0], simulate_baseline("garch", params["garch"],
                                                      np.array([2e-4]), 10)[0])  # fixed seed


def test_constant_5_day_coverage_in_closed_form_matches_simulated_paths():
    """The constant-volatility 5-day interval is computed exactly; simulating it agrees."""
    from tasks.distribution.simulate import coverage_ahead, simulate_baseline

    rng = np.random.default_rng(3)
    returns = rng.standard_normal(300) * 0.02
    var = np.full(301, 0.02**2)
    params = {"sigma": 0.02, "dist": "normal"}
    exact = coverage_ahead("constant", params, var, returns)
    paths = simulate_baseline("constant", params, var[:296], 5, 20000)[..., -1]
    lo, hi = np.percentile(paths, 10, axis=1), np.percentile(paths, 90, axis=1)
    actual = np.array([returns[i:i + 5].sum() for i in range(296)])
    simulated = float(np.mean((actual >= lo) & (actual <= hi)))
    assert abs(exact - simulated) <= 2 / 296 and 0.7 < exact < 0.9
