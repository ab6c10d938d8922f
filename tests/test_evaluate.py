"""Evaluation: metrics in price units, the naive baseline on the very same targets."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tasks.core.version_files import Metrics
from tasks.evaluation.evaluate import forecast_metrics
from tasks.features.scaler import Scaler
from tasks.forecaster.shrink import rebuild_close

KEYS = {"rmse", "mae", "mape", "directional_accuracy", "naive_rmse", "naive_mae",
        "rmse_vs_naive", "n_train", "n_test", "test_start", "test_end"}


def test_metrics_against_hand_computed_values():
    rows = pd.DataFrame({"date": pd.bdate_range("2020-01-01", periods=4),
                         "base_close": [10.0, 11.0, 12.0, 11.0],
                         "close": [11.0, 12.0, 11.0, 11.5]})
    predicted = np.array([10.5, 11.5, 12.5, 11.0])
    m = forecast_metrics(rows, predicted, n_train=100)
    assert KEYS <= set(m)
    assert m["rmse"] == pytest.approx(np.sqrt((0.25 + 0.25 + 2.25 + 0.25) / 4))
    assert m["naive_rmse"] == pytest.approx(np.sqrt((1 + 1 + 1 + 0.25) / 4))
    assert m["rmse_vs_naive"] == pytest.approx(m["rmse"] / m["naive_rmse"])
    assert m["naive_mae"] == pytest.approx((1 + 1 + 1 + 0.5) / 4)
    # up, up, down, up actual moves; predicted up, up, up, flat: 2 of 4 right
    assert m["directional_accuracy"] == pytest.approx(0.5)
    assert (m["n_train"], m["n_test"], m["test_start"], m["test_end"]) == \
        (100, 4, "2020-01-01", "2020-01-06")


def test_naive_forecast_scores_ratio_one():
    rows = pd.DataFrame({"date": pd.bdate_range("2020-01-01", periods=3),
                         "base_close": [1.0, 2.0, 3.0], "close": [2.0, 3.0, 2.5]})
    assert forecast_metrics(rows, rows["base_close"].to_numpy(), 1)["rmse_vs_naive"] == 1.0


def test_rebuild_close_from_scaled_returns():
    scaler = Scaler(mean=0.001, scale=0.02)
    base = np.array([100.0, 50.0])
    scaled = scaler.transform(np.log(np.array([1.01, 0.98])))
    assert rebuild_close(scaled, base, scaler, "return") == pytest.approx([101.0, 49.0])


def test_a_forecast_that_calls_no_move_has_no_directional_accuracy_in_the_report():
    from tasks.reporting.report import metrics_table, verdict

    rows = pd.DataFrame({"date": pd.bdate_range("2020-01-01", periods=3),
                         "base_close": [1.0, 2.0, 3.0], "close": [2.0, 3.0, 2.5]})
    m = Metrics.model_validate(forecast_metrics(rows, rows["base_close"].to_numpy(), 1))
    assert m.direction_calls == 0.0
    assert dict((r[0], r[1]) for r in metrics_table(m))["Directional accuracy"].startswith("–")
    m = m.model_copy(update={"shrink_alpha": 0.0, "unshrunk_rmse_vs_naive": 1.02})
    assert "exactly \"tomorrow = today\"" in verdict(m) and "1.0200" in verdict(m)


def test_diebold_mariano_one_step_is_the_plain_t_statistic():
    """No lag for a one-day horizon: exactly mean / (std(ddof=1) / sqrt(n)), as before HAC."""
    from tasks.distribution.scoring import diebold_mariano_loss
    from tasks.forecaster.shrink import diebold_mariano

    rng = np.random.default_rng(3)
    a, b = rng.normal(1.0, 1.0, 250) ** 2, rng.normal(0.9, 1.0, 250) ** 2
    gain = a - b
    plain = gain.mean() / (gain.std(ddof=1) / np.sqrt(len(gain)))
    assert diebold_mariano_loss(a, b) == pytest.approx(plain, rel=1e-12)
    actual, base, predicted = rng.normal(size=(3, 40)).cumsum(axis=1) + 50
    gain = (base - actual) ** 2 - (predicted - actual) ** 2
    assert diebold_mariano(predicted, base, actual) == pytest.approx(
        gain.mean() / (gain.std(ddof=1) / np.sqrt(40)), rel=1e-12)


@pytest.mark.parametrize("horizon, variance", [
    # d = 1 2 4 3 5: mean 3, deviations -2 -1 1 0 2, autocovariances (sum / n) g0 = 10/5 = 2,
    # g1 = (2 - 1 + 0 + 0)/5 = 0.2, g2 = (-2 + 0 + 2)/5 = 0. Newey-West (Bartlett weights
    # 1 - j/(L+1)), L = horizon - 1: S = g0 + 2 sum w_j g_j; var(mean) = S/n * n/(n-1) = S/4.
    (1, 2.0 / 4),
    (2, (2.0 + 2 * 0.5 * 0.2) / 4),
    (3, (2.0 + 2 * (2 / 3) * 0.2 + 2 * (1 / 3) * 0.0) / 4),
])
def test_diebold_mariano_hac_variance_by_hand(horizon, variance):
    from tasks.distribution.scoring import diebold_mariano_loss

    d = np.array([1.0, 2.0, 4.0, 3.0, 5.0])
    assert diebold_mariano_loss(d, np.zeros(5), horizon) == pytest.approx(3 / np.sqrt(variance))


def test_diebold_mariano_is_zero_when_the_gain_never_varies():
    from tasks.distribution.scoring import diebold_mariano_loss

    assert diebold_mariano_loss(np.ones(10), np.ones(10), 5) == 0.0
    assert diebold_mariano_loss(np.array([2.0]), np.array([1.0])) == 0.0
    assert diebold_mariano_loss(np.full(4, 2.0), np.ones(4)) == 0.0


def test_diebold_mariano_is_zero_for_forecasts_that_coincide_to_rounding():
    """Losses that differ by float rounding (a hybrid that kept GARCH-t, scored against
    GARCH-t) give 0.0, not a large ratio of noise; a real difference of 1e-6 still counts."""
    from tasks.distribution.scoring import diebold_mariano_loss

    rng = np.random.default_rng(0)
    loss = rng.uniform(0.2, 0.8, 200)
    noise = loss * (1 + rng.normal(0, 1e-15, 200))
    assert diebold_mariano_loss(loss, noise) == 0.0
    assert diebold_mariano_loss(loss, loss * (1 - 1e-6 * rng.uniform(0.5, 1.5, 200))) > 10


def test_summary_has_the_log_score_and_the_cover_on_the_largest_moves():
    """log_score: scipy's Student-t log density of the realised log return, averaged; the 95%
    cover on the 5% largest moves: a range that widens on those days holds more of them."""
    from scipy import stats

    from tasks.distribution.distributions import ReturnDist
    from tasks.distribution.scoring import summarize

    rng = np.random.default_rng(0)
    n = 2000
    sigma = np.where(np.arange(n) % 10 == 0, 0.04, 0.01)  # one stormy day in ten
    moves = sigma * rng.standard_t(5, n)
    base = np.full(n, 50.0)
    actual = base * np.exp(moves)
    flat = summarize(ReturnDist.of(np.zeros(n), np.full(n, 0.0195), 5.0), base, actual)
    aware = summarize(ReturnDist.of(np.zeros(n), sigma, 5.0), base, actual)
    expected = np.mean(stats.t.logpdf(moves / sigma, 5) - np.log(sigma))
    assert aware["log_score"] == pytest.approx(expected, rel=1e-12)
    assert aware["log_score"] > flat["log_score"]
    assert aware["large_move_coverage_95"] > flat["large_move_coverage_95"] + 0.1


def test_the_large_moves_a_wider_network_range_came_before_are_counted_and_marked():
    """``widened_on_large_moves`` (metrics) and the fan plot's ``widened_days`` (predictions)
    pick the same days: the 5% largest moves on which the network's 95% range was wider."""
    import pandas as pd

    from tasks.distribution.distributions import ReturnDist
    from tasks.distribution.scoring import widened_on_large_moves, width_95
    from tasks.reporting.distribution_plots import widened_days

    rng = np.random.default_rng(1)
    n = 400
    base = np.full(n, 20.0)
    moves = 0.01 * rng.standard_t(5, n)
    actual = base * np.exp(moves)
    garch = ReturnDist.of(np.zeros(n), np.full(n, 0.01), 5.0)
    wide = np.abs(moves) > 0.02  # a network that saw every large move coming, and no other
    network = ReturnDist.of(np.zeros(n), np.where(wide, 0.02, 0.009), 5.0)
    counted = widened_on_large_moves(network, garch, base, actual)
    assert counted["days"] == 20 and 0 < counted["wider"] <= 20
    table = pd.DataFrame({"naive": base, "actual": actual, "width95_garch": width_95(garch, base),
                          "width95_network": width_95(network, base)})
    assert int(widened_days(table).sum()) == counted["wider"]
    assert not widened_days(table.drop(columns="width95_network")).any()


def test_the_network_on_some_rows_forecasts_them_as_on_every_row():
    """Scoring runs the network only on the rows it reads (from the first row after training,
    or the validation rows for the gate): those rows' forecasts, distribution and shrink
    factor are the forecast of every row's; the other rows are NaN, and the validation rows
    are required (the shrink factor is fit on them)."""
    from tasks.core.training_config import (
        EvaluationConfig,
        FeatureConfig,
        SplitConfig,
        training_span,
    )
    from tasks.data.ingest import read_prices
    from tasks.features.feature_table import build_feature_frame
    from tasks.features.windows import window_array
    from tasks.forecaster.forecaster import Network, network_forecast
    from tasks.forecaster.network import build_lstm
    from tests.conftest import SAMPLE

    features, evaluation = FeatureConfig(window=5), EvaluationConfig()
    frame, scaler = build_feature_frame(read_prices(SAMPLE, symbols=["AAL"]).reset_index(
        drop=True), features, SplitConfig())
    channels = window_array(frame).shape[2]
    network = Network.of(build_lstm(5, channels, units=(4,), seed=3, head="student_t"))
    full = network_forecast(network, frame, scaler, features, evaluation)
    after = np.arange(len(frame)) >= training_span(frame["split"].to_numpy())
    part = network_forecast(network, frame, scaler, features, evaluation, rows=after)
    assert part.alpha == pytest.approx(full.alpha, rel=1e-6, abs=1e-9)
    assert part.dm == pytest.approx(full.dm, rel=1e-6)
    for a, b in ((part.raw, full.raw), (part.point, full.point), (part.dist.loc, full.dist.loc),
                 (part.dist.scale, full.dist.scale), (part.dist.dof, full.dist.dof)):
        np.testing.assert_allclose(a[after], b[after], rtol=1e-6)
        assert np.isnan(a[~after]).all()
    with pytest.raises(ValueError, match="validation row"):
        network_forecast(network, frame, scaler, features, evaluation,
                         rows=(frame["split"] == "test").to_numpy())
