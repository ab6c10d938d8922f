"""The fan of a network-source version: its first day in closed form, its sample paths stepped
all together, equal to the per-path loop they replaced (kept here as the reference)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from tasks.core.training_config import FeatureConfig, SplitConfig
from tasks.core.version_files import SavedDistribution
from tasks.distribution.distributions import INTERVALS
from tasks.distribution.simulate import fan
from tasks.distribution.volatility import next_variance
from tasks.features.channels import channel_names, channel_values
from tasks.features.path_channels import PathChannels
from tasks.forecaster.forecaster import Forecaster, Network, garch_offsets_of, point_closes
from tasks.forecaster.heads import student_t_params
from tasks.forecaster.paths import forecast_fans, forecast_tail, sample_paths
from tasks.forecaster.shrink import shrink
from tests.conftest import SAMPLE

FULL = FeatureConfig(window=5, ohlcv=True, rolling=(3, 7))
BOUNDS = ["close", *[f"{side}_{pct}" for pct in INTERVALS for side in ("lower", "upper")]]


@pytest.fixture(scope="module")
def aal() -> pd.DataFrame:
    from tasks.data.ingest import read_prices

    return read_prices(SAMPLE, symbols=["AAL"]).reset_index(drop=True)


def seeded_forecaster(prices: pd.DataFrame, head: str, features: FeatureConfig = FULL,
                source: str = "lstm") -> Forecaster:
    """A forecaster whose (untrained, seeded) network reads its inputs: a hybrid's zero head
    gets random weights, so its correction moves with the window too."""
    from tasks.features.feature_table import build_feature_frame
    from tasks.forecaster.network import build_lstm

    frame, scaler = build_feature_frame(prices, features, SplitConfig())
    model = build_lstm(features.window, len(channel_names(features)), units=(4,), seed=3,
                       head=head)
    if head == "hybrid":
        layer = model.get_layer("head")
        rng = np.random.default_rng(1)
        layer.set_weights([0.3 * rng.standard_normal(w.shape) for w in layer.get_weights()])
    n_train = int((frame["split"] == "train").sum())
    saved = SavedDistribution(source=source, baselines=scaler.baseline_params(),
                              start_date=str(frame["date"].iloc[n_train].date()))
    return Forecaster(Network.of(model), features, scaler, 0.6, saved)


def reference_sample_paths(forecaster: Forecaster, prices: pd.DataFrame, horizon: int,
                     n_paths: int, seed: int = 0) -> np.ndarray:
    """``sample_paths`` as it was: a frame per path and step, its channels and scaler anew."""
    rng = np.random.default_rng(seed)
    base, scaler = forecast_tail(forecaster, prices)
    features, garch = forecaster.features, forecaster.garch(prices)
    closes = np.repeat(base["close"].to_numpy(dtype="float64")[None, :], n_paths, axis=0)
    start, k = closes[0, -1], features.window
    variance = np.full(n_paths, garch[1]) if garch else None
    extended = base.reindex(range(len(base) + horizon)).ffill()
    for step in range(horizon):
        windows = []
        frame = extended.iloc[:len(base) + step].copy()
        for path in closes:
            frame["close"] = path
            for col in ("open", "high", "low"):
                frame[col] = np.concatenate([base[col].to_numpy(), path[len(base):]])
            windows.append(scaler.transform_all(
                channel_values(frame, features, scaler.volatility))[-k:])
        offsets = garch_offsets_of(variance, garch[0]["nu"], scaler) if garch else None
        raw = forecaster.network.params(np.asarray(windows, dtype="float32"), offsets)
        last = closes[:, -1]
        centre = shrink(point_closes(raw, last, scaler, features), last, forecaster.alpha)
        _, scale, dof = student_t_params(raw)
        move = np.log(centre / last) + scale * scaler.scale * rng.standard_t(dof)
        closes = np.concatenate([closes, (last * np.exp(move))[:, None]], axis=1)
        if garch:
            variance = next_variance("garch", garch[0], variance, move)
    return np.log(closes[:, -horizon:] / start)


@pytest.mark.parametrize("features", [
    FULL, FeatureConfig(window=4, target="close", returns="simple", ohlcv=True, rolling=(2,)),
    FeatureConfig(window=6, magnitude=False, volatility=True),
    FeatureConfig(window=5, calendar=True, gap=True)])
def test_path_channels_are_each_paths_channel_values(aal, features):
    """Every simulated day's row equals ``channel_values`` of that path's whole frame."""
    from tasks.distribution.volatility import fit_baselines
    from tasks.features.channels import volatility_fit

    # the calendar's channels read a year back: the known days reach beyond its longest lag
    known = aal.iloc[-(330 if features.calendar else 40):].reset_index(drop=True)
    returns = np.concatenate([[np.nan], np.diff(np.log(known["close"].to_numpy()))])
    fit = volatility_fit(fit_baselines(returns[1:], 30), returns, 1, 30)
    channels = PathChannels.start(known, features, fit, 6)
    rng = np.random.default_rng(5)
    # past the shortest calendar lag (63) a simulated day's calendar reads simulated days too
    for _ in range(66 if features.calendar else 4):
        channels.append(channels.closes[:, -1] * np.exp(0.02 * rng.standard_normal(6)))
    for p, path in enumerate(channels.closes):
        sim = path[len(known):]
        frame = pd.concat([known, pd.DataFrame({"open": sim, "high": sim, "low": sim,
                                                "close": sim,
                                                "volume": known["volume"].iloc[-1]})],
                          ignore_index=True)
        expected = channel_values(frame, features, fit)
        np.testing.assert_allclose(channels.window(len(frame))[p], expected, rtol=1e-10,
                                   atol=1e-13)


@pytest.mark.parametrize("head", ["student_t", "hybrid"])
def test_sample_paths_equal_the_per_path_loop(aal, head):
    """Fixed seed: the same paths as the per-path loop, GARCH's variance rolled per path."""
    forecaster = seeded_forecaster(aal, head)
    assert (forecaster.garch(aal) is not None) == (head == "hybrid")
    new = sample_paths(forecaster, aal, 4, n_paths=48)
    np.testing.assert_allclose(new, reference_sample_paths(forecaster, aal, 4, 48), rtol=1e-6,
                               atol=1e-12)
    assert np.unique(new[:, -1]).size == 48  # the paths do spread


def _next_day(prices: pd.DataFrame) -> pd.DataFrame:
    """``prices`` and a placeholder row for the next business day (no move, no range)."""
    last = prices.iloc[-1]
    row = {**last.to_dict(), "date": last["date"] + pd.offsets.BDay(1),
           "open": last["close"], "high": last["close"], "low": last["close"]}
    return pd.concat([prices, pd.DataFrame([row])], ignore_index=True)


@pytest.mark.parametrize("head", ["student_t", "hybrid"])
def test_one_day_fan_is_the_student_t_in_closed_form(aal, head):
    """The first day's fan is the network's Student-t at its quantiles (read here through
    ``forecast_days``, another route to the same day), whatever the horizon."""
    forecaster = seeded_forecaster(aal, head)
    (one,) = forecast_fans([(forecaster, aal)], 1)
    ahead = _next_day(aal)
    days = forecaster.forecast_days(ahead, ahead["date"].iloc[-1:])
    levels = [0.5, *[q for pct in INTERVALS for q in ((100 - pct) / 200, 1 - (100 - pct) / 200)]]
    expected = [days.base[0] * np.exp(days.dist.loc[0] + days.dist.scale[0]
                                      * stats.t.ppf(q, days.dist.dof[0])) for q in levels]
    np.testing.assert_allclose(one[BOUNDS].to_numpy()[0], expected, rtol=1e-6)
    assert one["close"].iloc[0] == pytest.approx(days.point[0], rel=1e-9)
    (three,) = forecast_fans([(forecaster, aal)], 3)
    pd.testing.assert_frame_equal(three.iloc[:1], one)
    width = (three["upper_80"] - three["lower_80"]).to_numpy()
    assert np.all(np.diff(width) > 0)


def test_one_day_fan_agrees_with_many_sampled_paths(aal):
    """Within Monte-Carlo error of 40,000 sampled first days."""
    forecaster = seeded_forecaster(aal, "hybrid")
    (one,) = forecast_fans([(forecaster, aal)], 1)
    last = float(aal["close"].iloc[-1])
    sampled = fan(last, sample_paths(forecaster, aal, 1, n_paths=40_000, seed=7))
    width = np.log(one["upper_95"].iloc[0] / one["lower_95"].iloc[0])
    for name in BOUNDS:
        assert abs(np.log(sampled[name][0] / one[name].iloc[0])) < 0.02 * width, name


def test_symbols_sharing_a_network_get_each_their_own_one_day_fan(aal):
    """One network call for several network-source cases (and a GARCH-source one beside
    them): each fan as the case alone gives it."""
    forecaster = seeded_forecaster(aal, "hybrid")
    garch = replace(forecaster, distribution=forecaster.distribution.model_copy(
        update={"source": "garch"}))
    cases = [(forecaster, aal), (forecaster, aal.iloc[:-7]), (garch, aal)]
    together = forecast_fans(cases, 1)
    for case, frame in zip(cases, together, strict=True):
        pd.testing.assert_frame_equal(frame, forecast_fans([case], 1)[0], check_exact=False,
                                      rtol=1e-6)
        assert list(frame.columns) == ["date", *BOUNDS]
    assert together[1]["date"].iloc[0] == aal["date"].iloc[-8] + pd.offsets.BDay(1)


@pytest.mark.parametrize("features", [FULL, FeatureConfig(window=5, volatility=True)])
def test_the_point_paths_shortcuts_equal_what_they_replaced(aal, features):
    """A forecast day's window (``next_window``) is the window the feature table gives that
    day as a row, to the bit; a baseline's next variance (``next_baseline_variance``) is the
    last value of its variance series (``saved_baseline_variance``)."""
    from tasks.distribution.gate import (
        next_baseline_variance,
        price_returns,
        saved_baseline_variance,
    )
    from tasks.features.feature_table import feature_rows, next_window
    from tasks.features.windows import window_array

    forecaster = seeded_forecaster(aal, "hybrid", features)
    for end in (200, len(aal)):
        prices = aal.iloc[:end]
        table = window_array(feature_rows(prices, features, forecaster.scaler, end - 1))
        ahead = next_window(prices.iloc[:-1], features, forecaster.scaler)
        assert ahead.dtype == table.dtype and np.array_equal(ahead, table)
        for name in ("garch", "ewma", "constant"):
            series = saved_baseline_variance(forecaster.distribution, price_returns(prices), name)
            assert next_baseline_variance(forecaster.distribution, prices, name) == \
                series.iloc[-1]
    assert next_window(aal.iloc[:3], features, forecaster.scaler).shape == \
        (0, 5, len(channel_names(features)))
