"""The market-state input (``features.market``): the documented values, point in time (planted
future rows and a later listing change nothing up to the origin), simulated days repeating the
last known state, and a global run whose versions keep their universe, so that predict and the
daily flow rebuild from the lake the state the network was trained on."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tasks.core.errors import InputError
from tasks.core.training_config import FeatureConfig
from tasks.data.ingest import read_prices
from tasks.features.channels import channel_names, channel_values
from tasks.features.market_state import (
    FLOOR,
    MARKET_COLUMNS,
    market_state,
    universe_state,
    with_market,
)
from tasks.features.path_channels import PathChannels
from tests.conftest import MARKET_SUBSET, SAMPLE

MARKET = FeatureConfig(window=5, market=True, volatility=False)


def _frame(symbol: str, days: list[str], close: list[float], high=None, low=None):
    frame = pd.DataFrame({"date": pd.to_datetime(days), "symbol": symbol, "close": close,
                          "open": close, "volume": 100.0})
    frame["high"] = high if high is not None else close
    frame["low"] = low if low is not None else close
    return frame


def test_the_state_is_the_days_mean_move_mean_range_and_dispersion():
    days = ["2020-01-02", "2020-01-03", "2020-01-06"]
    a = _frame("A", days, [10.0, 11.0, 11.0], high=[10.5, 11.5, 12.0], low=[9.5, 10.5, 10.0])
    b = _frame("B", days, [20.0, 19.0, 19.0], high=[21.0, 20.0, 19.0], low=[19.0, 18.0, 19.0])
    state = market_state([a, b])
    r = np.array([np.log(11 / 10), np.log(19 / 20)])
    day2 = state.loc["2020-01-03"]
    assert day2["market_abs"] == pytest.approx(np.log(np.abs(r).mean()))
    assert day2["market_dispersion"] == pytest.approx(np.log(r.std()))
    assert day2["market_range"] == pytest.approx(np.log(np.mean([np.log(11.5 / 10.5),
                                                                  np.log(20 / 18)])))
    # no move anywhere: floored, not -inf; no return on the first day: NaN, as its return
    assert state.loc["2020-01-06", "market_abs"] == pytest.approx(np.log(FLOOR))
    assert state.loc["2020-01-02", ["market_abs", "market_dispersion"]].isna().all()
    assert state.loc["2020-01-02", "market_range"] == pytest.approx(
        np.log(np.mean([np.log(10.5 / 9.5), np.log(21 / 19)])))


def test_a_close_only_market_reads_its_mean_move_as_its_range():
    days = ["2020-01-02", "2020-01-03"]
    frames = [_frame(s, days, c).drop(columns=["high", "low"])
              for s, c in (("A", [10.0, 11.0]), ("B", [20.0, 19.0]))]
    state = market_state(frames)
    assert state.loc["2020-01-03", "market_range"] == state.loc["2020-01-03", "market_abs"]


@pytest.fixture(scope="module")
def market() -> dict[str, pd.DataFrame]:
    """Four symbols of the real market file's quirk rows (gaps, a bad print, a young listing)."""
    frame = read_prices(MARKET_SUBSET)
    return {s: rows.reset_index(drop=True) for s, rows in frame.groupby("symbol")
            if s in ("AAL", "AOS", "DWDP", "LNT")}


def test_planted_future_rows_and_a_later_listing_change_no_state_up_to_the_origin(market):
    before = market_state(market.values())
    origin = market["AOS"]["date"].iloc[len(market["AOS"]) // 2]  # AOS trades on after it
    changed = {s: f.copy() for s, f in market.items()}
    later = changed["AAL"]["date"] > origin
    for column in ("open", "high", "low", "close"):
        changed["AAL"].loc[later, column] *= 3.0
    listing = market["AOS"][market["AOS"]["date"] > origin].assign(symbol="NEW")
    after = market_state([*changed.values(), listing, listing.iloc[:0]])  # and one with no rows
    pd.testing.assert_frame_equal(before.loc[:origin], after.loc[:origin])
    assert not np.allclose(before.loc[origin:].iloc[1:], after.loc[origin:].iloc[1:])
    # and so every channel row up to the origin of a symbol's features
    aal_before = channel_values(with_market(market["AAL"], before), MARKET)
    aal_after = channel_values(with_market(changed["AAL"], after), MARKET)
    upto = int((market["AAL"]["date"] <= origin).sum())
    np.testing.assert_array_equal(aal_before[:upto], aal_after[:upto])


def test_the_channels_read_the_joined_state_and_say_when_it_is_missing(market):
    state = market_state(market.values())
    values = channel_values(with_market(market["LNT"], state), MARKET)
    names = channel_names(MARKET)
    assert names[-3:] == list(MARKET_COLUMNS)
    np.testing.assert_array_equal(values[:, -3:],
                                  state.loc[market["LNT"]["date"]].to_numpy())
    with pytest.raises(InputError, match="market state for features.market"):
        channel_values(market["LNT"], MARKET)


def test_a_simulated_day_repeats_the_last_known_state(market):
    known = with_market(market["LNT"], market_state(market.values())).iloc[-40:]
    channels = PathChannels.start(known.reset_index(drop=True), MARKET, (), 3)
    channels.append(channels.closes[:, -1] * np.array([0.98, 1.0, 1.03]))
    channels.append(channels.closes[:, -1] * 1.01)
    rows = channels.window(2)  # the two simulated days of each path
    last = known[list(MARKET_COLUMNS)].iloc[-1].to_numpy()
    np.testing.assert_array_equal(rows[:, :, -3:], np.broadcast_to(last, (3, 2, 3)))


def test_the_lakes_state_is_rebuilt_point_in_time_and_kept_while_the_lake_is(tmp_path):
    from tasks.data.lake import upsert_prices

    lake = tmp_path / "lake"
    prices = read_prices(SAMPLE)
    upsert_prices(prices, lake)
    as_of = date(2015, 6, 30)
    state = universe_state(lake, ("AAL", "ZION"), as_of)
    expected = market_state([g[g["date"] <= pd.Timestamp(as_of)]
                             for _, g in prices.groupby("symbol")])
    pd.testing.assert_frame_equal(state, expected)
    assert universe_state(lake, ("AAL", "ZION"), as_of) is state  # the lake did not change
    upsert_prices(prices.assign(close=prices["close"] * 2.0).iloc[:1], lake)
    assert universe_state(lake, ("AAL", "ZION"), as_of) is not state


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_harness")
def test_a_global_run_keeps_its_universe_and_serving_rebuilds_its_state(tmp_path):
    from flows.daily import daily_flow
    from flows.training import train_flow
    from tasks.core.config import RunConfig
    from tasks.core.training_config import BacktestConfig, GlobalModelConfig, ModelConfig
    from tasks.data.lake import read_partition
    from tasks.forecaster.paths import forecast_recursive
    from tasks.serving.ledger import read_ledger
    from tasks.serving.predict import load_champion

    home = tmp_path / "home"
    config = RunConfig(home=home, input=SAMPLE, as_of=date(2016, 6, 30),
                       features=FeatureConfig(window=5, market=True),
                       model=ModelConfig(units=(4,), epochs=1, batch_size=256, patience=1),
                       backtest=BacktestConfig(folds=1, epochs=1),
                       global_model=GlobalModelConfig(mode="global"))
    results = train_flow(config)
    assert sorted(r.symbol for r in results) == ["AAL", "ZION"]
    stored = sorted((home / "lake" / "market").glob("*.parquet"))
    assert len(stored) == 1
    trained_state = pd.read_parquet(stored[0]).set_index("date")
    for result in results:
        saved = json.loads((Path(result.path) / "config.json").read_text())
        assert saved["market_universe"] == ["AAL", "ZION"] and saved["features"]["market"]
    champion = load_champion(home / "models", "AAL")
    assert champion.forecaster.universe == ("AAL", "ZION")
    # what serving rebuilds from the lake is the state the network was trained on
    lake = home / "lake"
    rebuilt = universe_state(lake, champion.forecaster.universe, config.as_of)
    pd.testing.assert_frame_equal(rebuilt, trained_state, check_freq=False)
    # the daily flow issues forecasts a day later, from the state up to that day only
    day = date(2016, 7, 1)
    result = daily_flow(config.model_copy(update={"as_of": day}))
    assert result.issued == 2
    prices = read_partition(lake, "AAL", day)
    expected = forecast_recursive(champion.forecaster,
                                  champion.forecaster.inputs(prices, lake), 1)
    ledger = read_ledger(lake, "AAL")
    assert ledger["forecast"].iloc[-1] == pytest.approx(expected["close"].iloc[0])
    # a forecaster that reads the market cannot forecast from the prices alone
    with pytest.raises(InputError, match="market state"):
        forecast_recursive(champion.forecaster, prices, 1)
