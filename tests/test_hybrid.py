"""The hybrid volatility network: its inputs see nothing after their cutoff, and untrained it
is GARCH(1,1)-t exactly."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tasks.distribution.hybrid_inputs import (
    MARKET,
    RANGES,
    garch_t_dist,
    hybrid_inputs,
    market_table,
)
from tasks.distribution.volatility import baseline_dists
from tests.conftest import SAMPLE

N_DAYS, N_TRAIN, PLANTED = 900, 560, 700  # target rows; planted volatility from row 700 on


def _prices(seed: int, planted: bool) -> pd.DataFrame:
    """A GARCH-like business-day series; ``planted``: 8x volatility from PLANTED on."""
    rng = np.random.default_rng(seed)
    n = N_DAYS + 2
    sigma = 0.01 * np.exp(0.3 * np.sin(np.arange(n) / 40))
    if planted:
        sigma[PLANTED + 2:] *= 8.0  # target row t is the return of day t + 2
    r = sigma * rng.standard_t(5, n) / np.sqrt(5 / 3)
    close = 50 * np.exp(np.cumsum(r))
    spread = np.abs(rng.normal(0, 1, n)) * sigma
    return pd.DataFrame({"date": pd.bdate_range("2012-01-02", periods=n),
                         "open": close * np.exp(rng.normal(0, 0.3, n) * sigma),
                         "high": close * np.exp(spread), "low": close * np.exp(-spread),
                         "close": close})


def _inputs(frame: pd.DataFrame, market: dict | None):
    return hybrid_inputs(frame["date"].to_numpy(), frame["close"].to_numpy(), N_TRAIN,
                         open_=frame["open"].to_numpy(), high=frame["high"].to_numpy(),
                         low=frame["low"].to_numpy(), market=market)


def _market(frames: list[pd.DataFrame]) -> dict:
    return market_table({str(i): (f["date"].to_numpy(), f["close"].to_numpy())
                         for i, f in enumerate(frames)})


def test_planted_future_volatility_reaches_no_input_sigma_market_feature_or_scaler():
    calm = [_prices(seed, planted=False) for seed in (1, 2, 3)]
    # the same series, but symbol 0 (and so the market) turns 8x as volatile from row PLANTED
    stormy = [_prices(1, planted=True), *calm[1:]]
    before, after = _inputs(calm[0], _market(calm)), _inputs(stormy[0], _market(stormy))
    assert before.names[-2:] == MARKET and set(RANGES) <= set(before.names)
    rows = slice(0, PLANTED + 1)  # row PLANTED forecasts the first stormy day from calm days
    np.testing.assert_array_equal(after.context[rows], before.context[rows])
    np.testing.assert_array_equal(after.offset[rows], before.offset[rows])
    assert after.garch == before.garch  # fit on training rows only
    # ... and the planted rows do differ, in every input: the test can see a leak
    assert not np.allclose(after.returns[PLANTED:], before.returns[PLANTED:])
    later = slice(PLANTED + 2, None)
    for column in range(after.context.shape[1]):
        assert not np.allclose(after.context[later, column], before.context[later, column]), \
            after.names[column]


EXTRAS = ("har_parkinson_5", "har_parkinson_22", "har_garman_klass_5", "har_squared_22",
          "range_vs_garch_1", "range_vs_garch_5", "overnight_gap")


def test_a_planted_spike_changes_no_har_range_or_gap_input_at_or_before_its_origin():
    calm = _prices(7, planted=False)
    spike = calm.copy()
    day = PLANTED + 2  # the target day of row PLANTED: its origin is the close of day - 1
    spike.loc[day, ["open", "high", "low", "close"]] *= np.array([1.3, 1.6, 0.9, 1.5])
    spike.loc[day + 1:, ["open", "high", "low", "close"]] *= 1.5  # the move persists
    names = ("log_sigma_garch", *EXTRAS)

    def inputs(frame):
        return hybrid_inputs(frame["date"].to_numpy(), frame["close"].to_numpy(), N_TRAIN,
                             open_=frame["open"].to_numpy(), high=frame["high"].to_numpy(),
                             low=frame["low"].to_numpy(), names=names)

    before, after = inputs(calm), inputs(spike)
    assert before.names == names and np.isfinite(before.context).all()
    rows = slice(0, PLANTED + 1)
    np.testing.assert_array_equal(after.context[rows], before.context[rows])
    # the row whose day before is the spike day sees it, in every one of these columns
    changed = after.context[PLANTED + 1] != before.context[PLANTED + 1]
    assert changed[1:].all(), [n for n, c in zip(names, changed, strict=True) if not c]
    # a 22-day mean holds the spike for rows PLANTED+1 .. PLANTED+22, not one row more
    j = names.index("har_parkinson_22")
    # (to rounding: a rolling sum and the persisting 1.5x carry ~1e-15 differences on)
    moved = np.flatnonzero(~np.isclose(after.context[:, j], before.context[:, j], atol=1e-9))
    assert moved.min() == PLANTED + 1 and moved.max() == PLANTED + 22


def test_trailing_mean_uses_the_last_days_rows_only():
    from tasks.distribution.hybrid_inputs import trailing_mean

    x = np.arange(1.0, 41.0) ** 2
    got = trailing_mean(x, 22)
    assert np.isnan(got[:11]).all()  # fewer than half of 22 days
    assert got[30] == pytest.approx(np.mean(x[9:31]))  # rows 9 .. 30
    assert got[11] == pytest.approx(np.mean(x[:12]))


def test_inputs_of_a_close_only_file_have_no_range_or_market_columns():
    frame = _prices(4, planted=False)
    inputs = hybrid_inputs(frame["date"].to_numpy(), frame["close"].to_numpy(), N_TRAIN)
    assert inputs.names == ("log_sigma_garch", "log_sigma_ewma", "abs_return", "squared_return")
    assert inputs.context.shape == (N_DAYS, 4) and np.isfinite(inputs.context).all()
    train = inputs.context[:N_TRAIN]
    np.testing.assert_allclose(train.mean(axis=0), 0.0, atol=1e-9)
    np.testing.assert_allclose(train.std(axis=0), 1.0, atol=1e-9)


def test_garch_t_offset_is_the_garch_baseline_on_every_row_after_training():
    inputs = _inputs(_prices(5, planted=False), None)
    garch = baseline_dists(inputs.returns, N_TRAIN)[0]["garch"]
    ours = garch_t_dist(inputs.offset[N_TRAIN:])
    y = inputs.returns[N_TRAIN:]
    np.testing.assert_allclose(ours.scale, garch.scale, rtol=1e-12)
    np.testing.assert_allclose(ours.dof, garch.dof, rtol=1e-12)
    np.testing.assert_allclose(ours.crps(y), garch.crps(y), rtol=1e-10)


def test_the_untrained_hybrid_network_reproduces_garch_t_crps_to_1e_6():
    from tasks.forecaster.hybrid import hybrid_dist
    from tasks.forecaster.network import build_lstm

    window = 10
    inputs = _inputs(_prices(6, planted=False), None)
    model = build_lstm(window, inputs.context.shape[1], units=(8,), head="hybrid")
    dist, first = hybrid_dist(model, inputs, window)
    after = slice(N_TRAIN - first, None)  # the network's rows from the first after training
    garch = baseline_dists(inputs.returns, N_TRAIN)[0]["garch"]
    y = inputs.returns[N_TRAIN:]
    ours = float(np.mean(_rows(dist, after).crps(y)))
    assert ours == pytest.approx(float(np.mean(garch.crps(y))), abs=1e-6, rel=0)
    np.testing.assert_allclose(_rows(dist, after).crps(y), garch.crps(y), atol=1e-6)


def _rows(dist, rows: slice):
    mask = np.zeros(len(dist.loc), dtype=bool)
    mask[rows] = True
    return dist.rows(mask)


def _crps_rows(gain: float, seed: int, symbols: int = 8, days: int = 260):
    """Per-symbol validation CRPS of a baseline and a network whose true gain is ``gain`` (a
    share of the baseline's CRPS); days share a common shock, as a market's symbols do."""
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range("2015-01-02", periods=days).to_numpy()
    market = rng.gamma(2.0, 0.5, days)  # a volatile day is volatile for every symbol
    baseline, network, when = {}, {}, {}
    for i in range(symbols):
        base = 0.01 * market * rng.gamma(4.0, 0.25, days)
        noise = rng.normal(0.0, 0.03, days) * base  # no symbol-day is decided by the gain
        network[f"S{i}"] = base * (1.0 - gain) + noise
        # GARCH-t is the family: EWMA 2% and constant volatility 10% worse on every symbol
        baseline[f"S{i}"] = {"garch": base, "ewma": base * 1.02, "constant": base * 1.1}
        when[f"S{i}"] = dates
    return when, baseline, network


def test_the_pooled_gate_accepts_a_real_gain_that_one_symbol_cannot_show():
    from tasks.distribution.gate import pooled_choice
    from tasks.distribution.scoring import diebold_mariano_loss

    dates, baseline, network = _crps_rows(gain=0.005, seed=11)
    choice = pooled_choice(dates, baseline, network, gate_z=1.645, tolerance=0.01)
    assert choice.accepted and choice.family == "garch"
    assert choice.gain == pytest.approx(0.005, abs=0.002) and choice.lower > 0
    assert set(choice.kept) == set(dates)  # every symbol within 1% of its baseline
    assert set(choice.sources.values()) == {"lstm"}
    alone = [diebold_mariano_loss(baseline[s]["garch"], network[s]) for s in dates]
    assert sum(dm >= 1.645 for dm in alone) < len(alone)  # the per-symbol gate misses some


def test_the_pooled_gate_rejects_a_network_that_is_no_better():
    from tasks.distribution.gate import pooled_choice

    for seed in range(5):  # no better, or worse
        for gain in (0.0, -0.005):
            dates, baseline, network = _crps_rows(gain=gain, seed=seed)
            choice = pooled_choice(dates, baseline, network, gate_z=1.645, tolerance=0.01)
            assert not choice.accepted and choice.kept == (), (seed, gain, choice.gain)
            assert set(choice.sources.values()) == {"garch"}  # the family, for every symbol


def test_one_baseline_family_serves_the_market_and_a_symbol_leaves_it_only_beyond_tolerance():
    """Per-symbol best of three is selection noise: the family serves every symbol unless
    that symbol's validation rows favour another baseline by more than the tolerance."""
    from tasks.distribution.gate import pooled_choice

    dates, baseline, network = _crps_rows(gain=0.0, seed=5)
    baseline["S1"]["ewma"] = baseline["S1"]["garch"] * 0.995  # better, within 1%: noise
    baseline["S2"]["ewma"] = baseline["S2"]["garch"] * 0.97   # better by 3%: served
    choice = pooled_choice(dates, baseline, network, gate_z=1.645, tolerance=0.01)
    assert choice.family == "garch" and not choice.accepted
    assert choice.sources["S1"] == "garch" and choice.sources["S2"] == "ewma"


def test_an_accepted_network_gives_way_where_it_is_worse_than_the_symbols_best_baseline():
    """Within 1% of the family but 3% worse than a symbol's EWMA: that symbol serves EWMA."""
    from tasks.distribution.gate import pooled_choice

    dates, baseline, network = _crps_rows(gain=0.01, seed=4)
    baseline["S3"]["ewma"] = baseline["S3"]["garch"] * 0.96
    choice = pooled_choice(dates, baseline, network, gate_z=1.645, tolerance=0.01)
    assert choice.accepted and choice.sources["S3"] == "ewma" and len(choice.kept) == 7


def test_the_pooled_decision_is_an_effect_size_that_does_not_flip_with_one_day():
    """A market network's gain sits near any significance threshold, where a DM gate flipped
    with one day of data; the effect size with a bound keeps one decision as days come and go
    and as one symbol more or less takes part."""
    from tasks.distribution.gate import pooled_choice

    dates, baseline, network = _crps_rows(gain=0.004, seed=2, symbols=30)
    decisions, dms = [], []
    for drop_days in range(5):
        for drop_symbol in (None, "S0"):
            keep = slice(0, len(dates["S0"]) - drop_days)
            part = [s for s in dates if s != drop_symbol]
            choice = pooled_choice({s: dates[s][keep] for s in part},
                                   {s: {b: v[keep] for b, v in baseline[s].items()} for s in part},
                                   {s: network[s][keep] for s in part}, 1.645, 0.01)
            decisions.append(choice.accepted)
            dms.append(choice.dm)
    assert all(decisions), dms


def test_a_symbol_worse_than_the_tolerance_keeps_its_baseline():
    from tasks.distribution.gate import pooled_choice

    dates, baseline, network = _crps_rows(gain=0.01, seed=3)
    network["S0"] = baseline["S0"]["garch"] * 1.05  # 5% worse on this symbol's validation rows
    choice = pooled_choice(dates, baseline, network, gate_z=1.645, tolerance=0.01)
    assert choice.accepted and "S0" not in choice.kept and len(choice.kept) == 7
    assert choice.ratios["S0"] == pytest.approx(1.05) and choice.sources["S0"] == "garch"


def _stochastic_vol(seed: int, days: int = 1400) -> pd.DataFrame:
    """Log-volatility h_t is AR(1); day t's high-low range shows exp(h_t) almost exactly, its
    close-to-close return only through one draw: yesterday's range predicts today's spread
    better than GARCH can from returns (a real gain to find)."""
    rng = np.random.default_rng(seed)
    h = np.zeros(days)
    for t in range(1, days):
        h[t] = 0.97 * h[t - 1] + 0.25 * rng.normal()
    sigma = 0.01 * np.exp(h)
    close = 40 * np.exp(np.cumsum(sigma * rng.standard_t(6, days) / np.sqrt(1.5)))
    spread = 1.2 * sigma * np.exp(rng.normal(0, 0.05, days))
    return pd.DataFrame({"date": pd.bdate_range("2010-01-04", periods=days), "open": close,
                         "high": close * np.exp(spread), "low": close * np.exp(-spread),
                         "close": close})


def _garch_t(seed: int, days: int = 1400) -> pd.DataFrame:
    """A GARCH(1,1)-t process: nothing beyond GARCH-t to learn."""
    rng = np.random.default_rng(seed)
    var, r = 1e-4, np.empty(days)
    for t in range(days):
        r[t] = np.sqrt(var * 4 / 6) * rng.standard_t(6)
        var = 2e-6 + 0.08 * r[t] ** 2 + 0.9 * var
    close = 40 * np.exp(np.cumsum(r))
    spread = np.abs(r) + 0.002
    return pd.DataFrame({"date": pd.bdate_range("2010-01-04", periods=days), "open": close,
                         "high": close * np.exp(spread), "low": close * np.exp(-spread),
                         "close": close})


def _pooled_gate_on(frames: list[pd.DataFrame], shuffle: bool, window: int = 10):
    """Train one hybrid on all symbols' training rows (70/15/15 in time), gate it on their
    pooled validation rows against GARCH-t."""
    from tasks.distribution.gate import pooled_choice
    from tasks.forecaster.hybrid import fit_hybrid, hybrid_dist

    n_rows = len(frames[0]) - 2
    n_train, n_val = int(n_rows * 0.7), int(n_rows * 0.15)
    inputs = []
    for i, frame in enumerate(frames):
        got = _inputs_n(frame, n_train)
        if shuffle:  # the control: each symbol's context rows permuted within training
            context = got.context.copy()
            context[:n_train] = context[np.random.default_rng(i).permutation(n_train)]
            got = type(got)(context, got.offset, got.returns, got.names, got.n_train, got.garch)
        inputs.append(got)
    parts = [i.windows(window) for i in inputs]
    first = parts[0][2]
    train_rows = slice(0, n_train - first)
    val_rows = slice(n_train - first, n_train + n_val - first)
    train = tuple(np.concatenate([p[j][train_rows] for p in parts]) for j in (0, 1))
    val = tuple(np.concatenate([p[j][val_rows] for p in parts]) for j in (0, 1))
    fit = fit_hybrid(train, val, units=(8,), epochs=25, patience=4, batch_size=128)
    dates, baseline, network = {}, {}, {}
    for k, (frame, got) in enumerate(zip(frames, inputs, strict=True)):
        dist, _ = hybrid_dist(fit.model, got, window)
        mask = np.zeros(len(dist.loc), dtype=bool)
        mask[val_rows] = True
        y = got.returns[first:][mask]
        network[str(k)] = dist.rows(mask).crps(y)
        garch = garch_t_dist(got.offset[first:][mask]).crps(y)
        baseline[str(k)] = {"garch": garch, "constant": garch * 1.1}  # GARCH-t: the family
        dates[str(k)] = frame["date"].to_numpy()[2:][first:][mask]
    return fit, pooled_choice(dates, baseline, network, gate_z=1.645, tolerance=0.01)


def _inputs_n(frame: pd.DataFrame, n_train: int):
    return hybrid_inputs(frame["date"].to_numpy(), frame["close"].to_numpy(), n_train,
                         open_=frame["open"].to_numpy(), high=frame["high"].to_numpy(),
                         low=frame["low"].to_numpy())


@pytest.mark.slow
def test_a_network_trained_across_symbols_finds_a_planted_gain_and_the_gate_keeps_it():
    fit, choice = _pooled_gate_on([_stochastic_vol(seed) for seed in range(6)], shuffle=False)
    assert fit.moved and fit.best_val_loss < fit.initial_val_loss
    assert choice.accepted, choice
    # better than GARCH-t on every symbol's validation rows, by ~1% on average
    assert max(choice.ratios.values()) < 1.0 and np.mean(list(choice.ratios.values())) < 0.995


@pytest.mark.slow
def test_the_gate_rejects_a_network_trained_on_time_shuffled_inputs():
    fit, choice = _pooled_gate_on([_garch_t(seed) for seed in range(6)], shuffle=True)
    assert not choice.accepted, choice
    assert choice.kept == ()


def test_an_untrained_hybrid_in_the_pipeline_scores_exactly_as_garch_t(tmp_path):
    """Through the real feature table and evaluation: the network's own (ungated) test CRPS
    is GARCH-t's to 1e-6, row for row, and so is every rolled-forward per-row offset."""
    from tasks.core.training_config import EvaluationConfig, FeatureConfig, SplitConfig
    from tasks.data.ingest import read_prices
    from tasks.evaluation.evaluate import score_frame
    from tasks.features.feature_table import build_feature_frame
    from tasks.forecaster.forecaster import Network
    from tasks.forecaster.network import build_lstm

    prices = read_prices(SAMPLE, symbols=["AAL"]).reset_index(drop=True)
    features = FeatureConfig(window=5)
    frame, scaler = build_feature_frame(prices, features, SplitConfig())
    network = Network.of(build_lstm(5, 7, units=(4,), head="hybrid"))
    n_train = int((frame["split"] == "train").sum())
    metrics, table, _ = score_frame(network, frame, scaler, features, n_train,
                                    EvaluationConfig())
    dist = metrics["distribution"]
    assert metrics["shrink_alpha"] == 0.0  # its loc is GARCH-t's 0: nothing to shrink
    assert dist["model"]["lstm_ungated"]["crps"] == pytest.approx(dist["garch"]["crps"],
                                                                   abs=1e-6, rel=0)
    np.testing.assert_allclose(table["crps_network"], table["crps_garch"], atol=1e-6, rtol=0)
