"""Features: vectorised lag windows, chronological split, no look-ahead in scaler or rows."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from tasks.core.errors import InputError
from tasks.core.training_config import FeatureConfig, SplitConfig, split_sizes
from tasks.data.ingest import read_prices
from tasks.data.lake import upsert_prices
from tasks.features.datasets import prepare_dataset
from tasks.features.feature_table import build_feature_frame
from tasks.features.windows import load_arrays
from tests.conftest import SAMPLE


@pytest.fixture(scope="module")
def aal() -> pd.DataFrame:
    return read_prices(SAMPLE, symbols=["AAL"])


def test_lags_are_the_previous_days(aal):
    frame, scaler = build_feature_frame(aal, FeatureConfig(window=3), SplitConfig())
    returns = np.diff(np.log(aal["close"].to_numpy()))
    row = frame.iloc[10]
    day = aal.index[aal["date"] == row["date"]][0]
    assert row["base_close"] == aal["close"].iloc[day - 1]
    assert row["lag_1"] == pytest.approx((returns[day - 2] - scaler.mean) / scaler.scale)
    assert row["lag_3"] == pytest.approx((returns[day - 4] - scaler.mean) / scaler.scale)
    assert row["target"] == pytest.approx((returns[day - 1] - scaler.mean) / scaler.scale)


def test_split_is_chronological(aal):
    frame, _ = build_feature_frame(aal, FeatureConfig(window=5), SplitConfig())
    order = frame["split"].map({"train": 0, "validation": 1, "test": 2}).to_numpy()
    assert (np.diff(order) >= 0).all() and frame["date"].is_monotonic_increasing
    assert tuple(frame["split"].value_counts()[["train", "validation", "test"]]) == \
        split_sizes(len(frame), SplitConfig())


@pytest.mark.parametrize("target", ["return", "close"])
def test_no_future_row_reaches_scaler_or_earlier_rows(aal, target):
    features = FeatureConfig(window=5, target=target)
    frame, scaler = build_feature_frame(aal, features, SplitConfig())
    first_val = frame.index[frame["split"] == "validation"][0]
    boundary = frame.loc[first_val, "date"]
    changed = aal.copy()
    later = changed["date"] >= boundary
    changed.loc[later, "close"] = changed.loc[later, "close"] * 3.0
    frame2, scaler2 = build_feature_frame(changed, features, SplitConfig())
    assert scaler2 == scaler
    pd.testing.assert_frame_equal(frame.iloc[:first_val], frame2.iloc[:first_val])


def test_too_little_history(aal):
    with pytest.raises(InputError, match="enough history"):
        build_feature_frame(aal.head(40), FeatureConfig(window=20), SplitConfig())


def test_prepare_dataset_persists_parquet_and_arrays(tmp_path, aal):
    upsert_prices(aal, tmp_path)
    ref = prepare_dataset(tmp_path, "AAL", None, FeatureConfig(window=7), SplitConfig())
    x, y, rows = load_arrays(ref.path, "train")
    # r, |r|, r^2, log GARCH and EWMA sigma, Parkinson and Garman-Klass ranges
    assert x.shape == (ref.n_train, 7, 7) and y.shape == (ref.n_train,)
    assert x[0, -1, 0] == pytest.approx(rows.loc[0, "lag_1"])  # newest lag last in time order
    assert ref.n_train + ref.n_validation + ref.n_test == len(aal) - 1 - 7
    assert "features" in ref.path and ref.as_of == "2016-12-30"


RICH = FeatureConfig(window=5, ohlcv=True, rolling=(3, 10), magnitude=False)


def test_magnitude_channels_are_the_size_of_past_moves(aal):
    frame, scaler = build_feature_frame(aal, FeatureConfig(window=5), SplitConfig())
    row = frame.iloc[40]
    day = aal.index[aal["date"] == row["date"]][0]
    r = np.log(aal["close"].iloc[day - 2] / aal["close"].iloc[day - 3])  # day t-2's return
    assert row["abs_lag_2"] * scaler.extra_scale[0] + scaler.extra_mean[0] == \
        pytest.approx(abs(r))
    assert row["sq_lag_2"] * scaler.extra_scale[1] + scaler.extra_mean[1] == pytest.approx(r * r)


@pytest.mark.parametrize("features", [
    RICH, RICH.model_copy(update={"target": "close"}),
    FeatureConfig(window=4, returns="simple", rolling=(5,))])
@pytest.mark.parametrize("column", ["close", "open", "high", "low", "volume"])
def test_no_future_row_reaches_extra_channels(aal, features, column):
    frame, scaler = build_feature_frame(aal, features, SplitConfig())
    first_val = frame.index[frame["split"] == "validation"][0]
    changed = aal.copy()
    later = changed["date"] >= frame.loc[first_val, "date"]
    changed.loc[later, column] = changed.loc[later, column] * 1.7
    frame2, scaler2 = build_feature_frame(changed, features, SplitConfig())
    assert scaler2 == scaler
    pd.testing.assert_frame_equal(frame.iloc[:first_val], frame2.iloc[:first_val])
    # the range channels read open, high and low (features.volatility, on by default)
    used = column == "close" or features.ohlcv or (features.volatility and column != "volume")
    assert frame.iloc[first_val:].equals(frame2.iloc[first_val:]) is not used


def test_extra_channels_hold_the_documented_values(aal):
    frame, scaler = build_feature_frame(aal, RICH, SplitConfig())
    row = frame.iloc[50]
    day = aal.index[aal["date"] == row["date"]][0]
    names = ["open", "high", "low", "volume", "mean3", "vol3", "mean10", "vol10",
             "log_sigma_garch", "log_sigma_ewma", "parkinson", "garman_klass"]
    means, scales = dict(zip(names, scaler.extra_mean, strict=True)), \
        dict(zip(names, scaler.extra_scale, strict=True))
    prev = aal.iloc[day - 1]
    assert row["high_lag_1"] * scales["high"] + means["high"] == \
        pytest.approx(np.log(prev["high"] / prev["close"]))
    assert row["volume_lag_1"] * scales["volume"] + means["volume"] == \
        pytest.approx(np.log1p(prev["volume"]) - np.log1p(aal["volume"].iloc[day - 2]))
    returns = np.diff(np.log(aal["close"].to_numpy()))[day - 4:day - 1]  # days t-3..t-1
    assert row["vol3_lag_1"] * scales["vol3"] + means["vol3"] == pytest.approx(returns.std())
    assert row["mean3_lag_2"] * scales["mean3"] + means["mean3"] == pytest.approx(
        np.diff(np.log(aal["close"].to_numpy()))[day - 5:day - 2].mean())
    hl, co = np.log(prev["high"] / prev["low"]), np.log(prev["close"] / prev["open"])
    assert row["parkinson_lag_1"] * scales["parkinson"] + means["parkinson"] == \
        pytest.approx(hl * hl / (4 * np.log(2)))
    assert row["garman_klass_lag_1"] * scales["garman_klass"] + means["garman_klass"] == \
        pytest.approx(0.5 * hl * hl - (2 * np.log(2) - 1) * co * co)
    x = load_arrays_from(frame)
    assert x.shape == (len(frame), 5, 13) and x[50, -1, 2] == pytest.approx(row["high_lag_1"])


def test_garch_channel_of_day_t_minus_1_is_the_gates_garch_variance_of_day_t(aal):
    """The channel's own recursion (from the training variance, over the whole history) meets
    the gate's GARCH-t baseline (arch's filter rolled on) on every row after training."""
    from tasks.distribution.volatility import baseline_dists

    frame, scaler = build_feature_frame(aal, FeatureConfig(window=5), SplitConfig())
    n_train = int((frame["split"] == "train").sum())
    names = ["abs", "sq", "log_sigma_garch", "log_sigma_ewma", "parkinson", "garman_klass"]
    j = names.index("log_sigma_garch")
    channel = frame["log_sigma_garch_lag_1"] * scaler.extra_scale[j] + scaler.extra_mean[j]
    returns = np.log(frame["close"] / frame["base_close"]).to_numpy()
    dists, params = baseline_dists(returns, n_train)
    nu = params["garch"]["nu"]
    gate_sigma = dists["garch"].scale / np.sqrt((nu - 2) / nu)
    np.testing.assert_allclose(np.exp(channel.to_numpy()[n_train:]), gate_sigma, rtol=1e-6)
    offsets = frame["offset_log_scale"].to_numpy()[n_train:] + np.log(scaler.scale)
    np.testing.assert_allclose(np.exp(offsets), dists["garch"].scale, rtol=1e-12)


def load_arrays_from(frame):
    from tasks.features.windows import window_array

    return window_array(frame)


def test_zero_open_counts_as_close():
    from tests.conftest import REAL

    wen = read_prices(REAL / "WEN.csv")
    frame, _ = build_feature_frame(wen, FeatureConfig(window=5, ohlcv=True), SplitConfig())
    assert np.isfinite(frame.filter(like="_lag_").to_numpy()).all()


def test_scaler_round_trips_through_json(aal):
    from tasks.features.scaler import Scaler

    _, scaler = build_feature_frame(aal, RICH, SplitConfig())
    assert Scaler.from_json(scaler.to_json()) == scaler and len(scaler.extra_mean) == 12
    assert len(scaler.volatility) == 6


def test_scaler_is_standard_scaling_with_scale_one_on_a_constant_channel():
    from sklearn.preprocessing import StandardScaler

    from tasks.features.scaler import Scaler

    values = np.array([[1.0, 5.0, 2.0], [3.0, 5.0, 4.0], [8.0, 5.0, 9.0]])
    scaler = Scaler.fit(values)
    assert scaler.mean == pytest.approx(4.0) and scaler.scale == pytest.approx(np.std([1, 3, 8]))
    assert scaler.extra_mean == pytest.approx((5.0, 5.0)) and scaler.extra_scale[0] == 1.0
    by_hand = (values - values.mean(axis=0)) / np.array([np.std([1, 3, 8]), 1.0,
                                                         np.std([2, 4, 9])])
    assert np.allclose(scaler.transform_all(values.astype("float32")), by_hand, atol=1e-6)
    assert scaler.transform_all(values).dtype == np.float64
    assert np.allclose(scaler.transform_all(values),
                       StandardScaler().fit(values).transform(values))
    assert np.allclose(scaler.inverse(scaler.transform(values[:, 0])), values[:, 0])


@pytest.mark.parametrize("saved", [
    '{"mean": 0.001, "scale": 0.02}',  # before the extra channels
    '{"mean": 0.001, "scale": 0.02, "extra_mean": [0.5], "extra_scale": [0.25]}',
])
def test_saved_scaler_json_files_still_load(tmp_path, saved):
    """scaler.json as the hand-written Scaler wrote it (the same format is written today)."""
    from tasks.features.scaler import Scaler

    path = tmp_path / "scaler.json"
    path.write_text(saved)
    scaler = Scaler.from_json(path.read_text())
    record = json.loads(saved)
    channels = 1 + len(record.get("extra_mean", []))
    values = np.arange(2.0 * channels).reshape(2, channels)
    mean = np.array([record["mean"], *record.get("extra_mean", [])])
    scale = np.array([record["scale"], *record.get("extra_scale", [])])
    assert np.allclose(scaler.transform_all(values), (values - mean) / scale)
    assert scaler.transform(np.array([0.021])) == pytest.approx([1.0])
    assert json.loads(scaler.to_json()) == {"extra_mean": [], "extra_scale": [],
                                            "volatility": [], "baselines": "", **record}


def test_the_scaler_keeps_the_very_baseline_fit_the_gate_would_make(aal):
    """The gate reuses the features step's GARCH/EWMA/constant fit instead of fitting again:
    it must be the fit of the same training rows, number for number."""
    from tasks.distribution.gate import frame_returns
    from tasks.distribution.volatility import fit_baselines
    from tasks.features.scaler import Scaler

    frame, scaler = build_feature_frame(aal, FeatureConfig(window=5), SplitConfig())
    n_train = int((frame["split"] == "train").sum())
    assert scaler.baseline_params() == fit_baselines(frame_returns(frame), n_train)
    assert Scaler.from_json(scaler.to_json()).baseline_params() == scaler.baseline_params()
    _, plain = build_feature_frame(aal, FeatureConfig(window=5, volatility=False), SplitConfig())
    assert plain.baseline_params() is None and plain.volatility == ()
