"""The calendar and overnight-gap channels: known at the origin, the documented values, an exact
rebuild from a forecast's tail, and versions saved before them still load."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from tasks.core.training_config import FeatureConfig, SplitConfig
from tasks.data.ingest import read_prices
from tasks.features.channels import channel_names, channel_values
from tasks.features.feature_table import build_feature_frame, feature_rows
from tasks.features.origin_inputs import CALENDAR_FILL, CALENDAR_HISTORY, CALENDAR_LAGS
from tasks.forecaster.forecaster import Forecaster, Network, load_settings, save_forecaster
from tasks.forecaster.paths import forecast_recursive, forecast_tail
from tests.conftest import SAMPLE

BOTH = FeatureConfig(window=5, calendar=True, gap=True)
# the same without the volatility channels, whose values need a training fit
PLAIN = BOTH.model_copy(update={"volatility": False})


@pytest.fixture(scope="module")
def aal() -> pd.DataFrame:
    return read_prices(SAMPLE, symbols=["AAL"])


def _origin_columns(features: FeatureConfig) -> list[int]:
    names = channel_names(features)
    return [names.index(n) for n in names if n.startswith("calendar") or n == "gap"]


def _z2_by_hand(close: np.ndarray, day: int) -> float:
    """r_day^2 over the EWMA (0.94) of the 60 squared returns before it, weights normalised."""
    r = np.diff(np.log(close))  # r[i] is day i+1's return
    past = r[day - 61:day - 1][::-1]  # days day-1 .. day-60, newest first
    weights = 0.06 * 0.94 ** np.arange(60)
    return min(r[day - 1] ** 2 / (weights @ past ** 2 / weights.sum()), 100.0)


@pytest.mark.parametrize("origin", [400, 900])
def test_planted_future_rows_change_no_value_up_to_the_origin(aal, origin):
    rng = np.random.default_rng(origin)
    changed = aal.copy()
    for column in ("open", "high", "low", "close"):
        changed.loc[origin + 1:, column] *= rng.uniform(0.5, 2.0, len(aal) - origin - 1)
    before, after = channel_values(aal, PLAIN), channel_values(changed, PLAIN)
    columns = _origin_columns(PLAIN)
    np.testing.assert_array_equal(before[:origin + 1, columns], after[:origin + 1, columns])
    assert not np.allclose(before[origin + 1:, columns], after[origin + 1:, columns])


def test_planted_future_rows_reach_no_earlier_feature_row_or_the_scaler(aal):
    frame, scaler = build_feature_frame(aal, BOTH, SplitConfig())
    first_val = frame.index[frame["split"] == "validation"][0]
    changed = aal.copy()
    later = changed["date"] >= frame.loc[first_val, "date"]
    changed.loc[later, ["open", "close"]] *= np.where(np.arange(later.sum()) % 2, 1.3, 0.8)[:, None]
    frame2, scaler2 = build_feature_frame(changed, BOTH, SplitConfig())
    assert scaler2 == scaler and "calendar252_lag_1" in frame and "gap_lag_5" in frame
    pd.testing.assert_frame_equal(frame.iloc[:first_val], frame2.iloc[:first_val])


def test_a_calendar_channel_is_the_largest_z2_around_its_lag_before_the_forecast_day(aal):
    close = aal["close"].to_numpy(dtype="float64")
    values = channel_values(aal, PLAIN)
    names = channel_names(PLAIN)
    origin = 700  # forecasting day 701
    for lag in CALENDAR_LAGS:
        days = [origin + 1 - lag - 1, origin + 1 - lag, origin + 1 - lag + 1]
        expected = np.log1p(max(_z2_by_hand(close, d) for d in days))
        assert values[origin, names.index(f"calendar{lag}")] == pytest.approx(expected)
    # before its days have a z^2 (60 returns of EWMA, then the lag) a channel reads the fill
    assert values[CALENDAR_LAGS[-1] + 60, names.index("calendar252")] == CALENDAR_FILL
    assert values[CALENDAR_LAGS[-1] + 61, names.index("calendar252")] != CALENDAR_FILL


def test_the_gap_channel_is_log_open_over_the_previous_close(aal):
    values = channel_values(aal, PLAIN)
    gap = values[:, channel_names(PLAIN).index("gap")]
    assert gap[300] == pytest.approx(np.log(aal["open"].iloc[300] / aal["close"].iloc[299]))
    assert np.isnan(gap[0])
    close_only = aal.assign(open=np.nan)
    assert (channel_values(close_only, PLAIN)[1:, channel_names(PLAIN).index("gap")] == 0).all()


def test_a_forecasts_tail_gives_the_whole_historys_channel_values(aal):
    frame, scaler = build_feature_frame(aal, BOTH, SplitConfig())
    forecaster = Forecaster(Network(None, None), BOTH, scaler, 1.0)
    assert forecaster.history_needed == 5 + CALENDAR_HISTORY + 2
    tail, rebased = forecast_tail(forecaster, aal)
    whole = channel_values(aal, BOTH, scaler.volatility)[-5:]
    np.testing.assert_allclose(channel_values(tail, BOTH, rebased.volatility)[-5:], whole,
                               rtol=1e-9)
    shorter = channel_values(tail.iloc[3:], BOTH, rebased.volatility)[-5:]
    assert not np.allclose(shorter[:, _origin_columns(BOTH)], whole[:, _origin_columns(BOTH)])


def test_a_saved_version_with_them_forecasts_as_its_whole_history_says(tmp_path, aal):
    from tasks.forecaster.network import build_lstm

    features = FeatureConfig(window=5, calendar=True, gap=True, volatility=False)
    _, scaler = build_feature_frame(aal, features, SplitConfig())
    save_forecaster(tmp_path, scaler, {"features": features.model_dump(mode="json")}, 1.0)
    saved, scaler, alpha, universe = load_settings(tmp_path)
    assert universe == ()
    assert saved == features
    model = build_lstm(5, len(channel_names(features)), units=(4,), seed=3, head="point")
    forecaster = Forecaster(Network.of(model), saved, scaler, alpha)
    step = forecast_recursive(forecaster, aal, 1)
    last = aal.iloc[-1]
    placeholder = pd.DataFrame([{**last.to_dict(), "date": step["date"].iloc[0],
                                 "open": last["close"], "high": last["close"],
                                 "low": last["close"]}])
    rows = feature_rows(pd.concat([aal, placeholder], ignore_index=True), saved, scaler,
                        len(aal))
    from tasks.features.windows import window_array

    raw = forecaster.network.params(window_array(rows))
    expected = last["close"] * np.exp(raw[0, 0] * scaler.scale + scaler.mean)
    assert step["close"].iloc[0] == pytest.approx(expected, rel=1e-6)


def test_a_version_saved_before_them_loads_without_them(tmp_path):
    old = {"window": 20, "target": "return", "returns": "log", "ohlcv": False, "rolling": [],
           "magnitude": True, "volatility": True}
    (tmp_path / "config.json").write_text(json.dumps({"features": old, "shrink_alpha": 0.5}))
    (tmp_path / "scaler.json").write_text(json.dumps({"mean": 0.0, "scale": 1.0}))
    features, _, _, _ = load_settings(tmp_path)
    assert not features.calendar and not features.gap
    assert FeatureConfig().fingerprint() == "f1cdd6ddfe32"  # as before the fields existed
    assert "calendar" not in FeatureConfig().model_dump() and "gap" not in \
        FeatureConfig().model_dump()
    assert channel_names(features) == channel_names(FeatureConfig())


def test_the_reports_method_note_names_the_optional_inputs_a_version_turns_on():
    from tasks.forecaster.heads import HEADS, method_text

    hybrid = HEADS["hybrid"]
    assert method_text(hybrid, {"window": 20}) == hybrid.method == method_text(hybrid)
    note = method_text(hybrid, BOTH.model_dump(mode="json"))
    assert note.startswith(hybrid.method) and "252 trading days" in note and "overnight" in note
