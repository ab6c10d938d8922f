"""The forecast ledger, its scores, the monitor and the degradation policy (no engine, no model)."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tasks.core.operations_config import DegradationPolicy
from tasks.core.paths import UnsafePathError
from tasks.distribution.quantile_scores import (
    QUANTILE_TAUS,
    crps_from_quantiles,
    crps_normal,
    normal_quantiles,
)
from tasks.reporting.images import inline_images, relative_images
from tasks.serving.ledger import (
    COLUMNS,
    IssuedForecast,
    append_forecasts,
    ledger_path,
    read_ledger,
    score_ledger,
)
from tasks.serving.monitor import degradation, monitor, plot_rolling, summary_markdown

DAYS = pd.bdate_range("2016-01-04", periods=80)


def prices(closes: np.ndarray | None = None) -> pd.DataFrame:
    """A symbol's lake rows: a gentle random walk over 80 business days."""
    rng = np.random.default_rng(0)
    closes = closes if closes is not None else 50 * np.exp(np.cumsum(rng.normal(0, 0.01, 80)))
    return pd.DataFrame({"date": DAYS, "close": closes})


def forecast(i: int, frame: pd.DataFrame, version: int = 1, offset: float = 0.0,
             width: float | None = None) -> IssuedForecast:
    """The forecast issued on day i: naive plus ``offset``, with intervals of ``width`` if given."""
    base = float(frame["close"].iloc[i])
    point = base + offset
    bounds = {f"{s}_{x}": np.nan for x in (50, 80, 95) for s in ("lower", "upper")}
    if width is not None:
        z = {50: 0.674, 80: 1.2816, 95: 1.96}
        bounds = {f"{s}_{x}": point + sign * z[x] * width
                  for x in (50, 80, 95) for s, sign in (("lower", -1), ("upper", 1))}
    return IssuedForecast(symbol="AAL", as_of=DAYS[i].date(), target_date=DAYS[i + 1].date(),
                          horizon=1, version=version, base_date=DAYS[i].date(), base_close=base,
                          forecast=point, median=point if width else np.nan,
                          const_vol_sigma=0.01, **bounds)


def test_append_is_idempotent_and_never_replaces_a_row(tmp_path):
    lake, frame = tmp_path / "lake", prices()
    assert append_forecasts(lake, [forecast(i, frame) for i in range(3)]) == 3
    first = read_ledger(lake, "AAL")
    assert list(first.columns) == COLUMNS
    assert first["lower_80"].isna().all() and first["scored_at"].isna().all()
    # the same keys again, even with other values: nothing is added or changed
    assert append_forecasts(lake, [forecast(i, frame, offset=5.0) for i in range(3)]) == 0
    pd.testing.assert_frame_equal(read_ledger(lake, "AAL"), first)
    # another version for the same day is another row
    assert append_forecasts(lake, [forecast(2, frame, version=2)]) == 1
    assert len(read_ledger(lake, "AAL")) == 4


def test_scoring_waits_for_the_truth_and_happens_once(tmp_path):
    lake, frame = tmp_path / "lake", prices()
    append_forecasts(lake, [forecast(i, frame, offset=0.2) for i in range(5)])
    # as of day 2: only the forecasts made on days 0 and 1 have their next close
    assert score_ledger(lake, "AAL", frame[frame["date"] <= DAYS[2]]) == 2
    ledger = read_ledger(lake, "AAL")
    done = ledger[ledger["scored_at"].notna()]
    assert list(done["as_of"]) == list(DAYS[:2])
    np.testing.assert_allclose(done["actual"], frame["close"].iloc[1:3])
    np.testing.assert_allclose(done["naive_error"],
                               frame["close"].iloc[:2].to_numpy() - frame["close"].iloc[1:3])
    np.testing.assert_allclose(done["error"] - done["naive_error"], 0.2, atol=1e-9)
    assert done["crps"].isna().all() and done["covered_80"].isna().all()  # no distribution
    assert (done["crps_const_vol"] > 0).all()
    # a lake corrected later does not rewrite a scored row; re-scoring the same day is a no-op
    changed = frame.assign(close=frame["close"] * 2)
    assert score_ledger(lake, "AAL", changed[changed["date"] <= DAYS[2]]) == 0
    pd.testing.assert_frame_equal(read_ledger(lake, "AAL"), ledger)
    assert score_ledger(lake, "AAL", frame) == 3


def test_intervals_give_crps_and_coverage(tmp_path):
    lake, frame = tmp_path / "lake", prices()
    append_forecasts(lake, [forecast(i, frame, width=0.5) for i in range(60)])
    score_ledger(lake, "AAL", frame)
    done = read_ledger(lake, "AAL")
    assert done["crps"].notna().all()
    assert set(done["covered_80"].unique()) <= {0.0, 1.0}
    inside = (done["lower_80"] <= done["actual"]) & (done["actual"] <= done["upper_80"])
    np.testing.assert_array_equal(done["covered_80"], inside.astype(float))
    assert (done["covered_95"] >= done["covered_80"]).all()


def test_quantile_crps_is_close_to_the_closed_form():
    """The seven-quantile midpoint rule reads ~3% below the exact CRPS of a normal."""
    rng = np.random.default_rng(1)
    ys = rng.normal(0, 0.02, 4000)
    q = normal_quantiles(0.0, 0.02)
    approx = np.mean([crps_from_quantiles(q, y) for y in ys])
    exact = np.mean([crps_normal(0.0, 0.02, y) for y in ys])
    assert 0.95 < approx / exact < 0.99
    assert len(QUANTILE_TAUS) == 7 and crps_from_quantiles(q, 0.0) < crps_from_quantiles(q, 0.05)


def test_a_degraded_ledger_calls_for_a_retrain(tmp_path):
    home = tmp_path / "home"
    lake, frame = home / "lake", prices()
    policy = DegradationPolicy(window=60, min_scored=40)
    # 50 forecasts 1.5 off: far worse than naive, with 80% intervals far too narrow
    append_forecasts(lake, [forecast(i, frame, offset=1.5, width=0.01) for i in range(50)])
    score_ledger(lake, "AAL", frame)
    why = degradation(read_ledger(lake, "AAL"), 1, policy)
    assert "RMSE / naive" in why and "80% interval coverage" in why and "CRPS" in why
    assert degradation(read_ledger(lake, "AAL"), 2, policy) == ""  # another champion: clean
    fewer = DegradationPolicy(min_scored=51)
    assert degradation(read_ledger(lake, "AAL"), 1, fewer) == ""  # not enough evidence yet
    # the monitor wants a retrain for the champion (no version registered: no cooldown)
    champion = home / "models" / "AAL"
    champion.mkdir(parents=True)
    (champion / "champion.json").write_text(json.dumps({"version": 1}))
    report = monitor(home, ["AAL"], policy, date(2016, 4, 22))
    assert set(report.retrain) == {"AAL"} and report.rows[0].rmse_ratio_60 > 1.1


def test_a_good_ledger_does_not(tmp_path):
    lake, frame = tmp_path / "lake", prices()
    sigma = float(np.std(np.diff(frame["close"])))
    append_forecasts(lake, [forecast(i, frame, width=sigma) for i in range(70)])
    score_ledger(lake, "AAL", frame)
    assert degradation(read_ledger(lake, "AAL"), 1, DegradationPolicy()) == ""


def test_monitor_artifact_embeds_its_plot(tmp_path):
    home = tmp_path / "home"
    frame = prices()
    append_forecasts(home / "lake", [forecast(i, frame, offset=0.1) for i in range(40)])
    score_ledger(home / "lake", "AAL", frame)
    report = monitor(home, ["AAL"], DegradationPolicy(), date(2016, 4, 22))
    image = plot_rolling(report.rolling)
    assert image.startswith("data:image/png;base64,") and len(image) < 150_000
    markdown = summary_markdown(report, image)
    assert "![rolling scores](data:image/png;base64," in markdown
    assert relative_images(markdown) == []


def test_a_market_monitor_draws_the_spread_across_symbols():
    from tasks.serving.monitor import spread

    days = pd.date_range("2016-01-04", periods=3, freq="B")
    frames = {f"S{i}": pd.DataFrame({"rmse_ratio_60": [1.0 + i / 100, np.nan, 0.9 + i / 100]},
                                    index=days) for i in range(11)}
    band = spread(frames, "rmse_ratio_60")
    assert list(band.index) == [days[0], days[2]]  # a day no symbol scored is left out
    assert band["median"].tolist() == pytest.approx([1.05, 0.95])
    assert band["low"].tolist() == pytest.approx([1.01, 0.91])
    assert band["high"].tolist() == pytest.approx([1.09, 0.99])


def test_a_market_monitors_plot_is_one_band_not_a_line_per_symbol(tmp_path):
    """Twelve symbols' ledgers: the plot is drawn from their spread, as small as one symbol's."""
    from dataclasses import replace

    home, frame = tmp_path / "home", prices()
    symbols = [f"S{i}" for i in range(12)]
    for k, symbol in enumerate(symbols):
        made = [replace(forecast(i, frame, offset=0.02 * k, width=0.3), symbol=symbol)
                for i in range(40)]
        append_forecasts(home / "lake", made)
        score_ledger(home / "lake", symbol, frame)
    report = monitor(home, symbols)
    assert list(report.rolling) == symbols
    image = plot_rolling(report.rolling)
    assert image.startswith("data:image/png;base64,") and len(image) < 150_000

    from tasks.reporting.figures import pyplot
    from tasks.serving.monitor import _draw, rolling_frame, scored_rows

    frames = {s: rolling_frame(scored_rows(read_ledger(home / "lake", s))) for s in symbols}
    for symbol in symbols:  # the monitor's frames are the ledgers' own
        pd.testing.assert_frame_equal(report.rolling[symbol], frames[symbol])
    fig, (many, few) = pyplot().subplots(2, 1)
    _draw(many, frames, "rmse_ratio")
    _draw(few, dict(list(frames.items())[:2]), "rmse_ratio")
    assert len(many.lines) == 1 and len(many.collections) == 1  # the median and its band
    assert len(few.lines) == 4  # two symbols x 20d and 60d
    pyplot().close(fig)


def test_report_images_become_data_uris(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    (tmp_path / "plots").mkdir()
    fig, ax = plt.subplots(figsize=(14, 6))
    ax.plot(range(10))
    fig.savefig(tmp_path / "plots" / "forecast.png", dpi=110)
    plt.close(fig)
    text = ("# r\n![forecast](plots/forecast.png)\n![gone](plots/missing.png)\n"
            "![escape](../../etc/passwd)\n")
    assert len(relative_images(text)) == 3
    out = inline_images(text, tmp_path)
    assert relative_images(out) == []
    assert out.count("data:image/png;base64,") == 1 and "gone: image unavailable" in out
    assert len(out) < (tmp_path / "plots" / "forecast.png").stat().st_size * 4 / 3  # downscaled


def test_ledger_paths_are_confined(tmp_path):
    assert ledger_path(tmp_path, "AAL") == tmp_path / "forecasts" / "symbol=AAL" / "part.parquet"
    with pytest.raises(UnsafePathError):
        ledger_path(tmp_path, "../x")
    assert isinstance(ledger_path(tmp_path, "BRK.B"), Path)


def test_a_ledger_with_nothing_scored_yet_has_a_blank_row_and_no_rolling_scores(tmp_path):
    """The first day of a market: forecasts issued, none come true; the row says so."""
    home, frame = tmp_path / "home", prices()
    append_forecasts(home / "lake", [forecast(i, frame) for i in range(3)])
    report = monitor(home, ["AAL"], DegradationPolicy(), date(2016, 4, 22))
    (row,) = report.rows
    assert (row.issued, row.scored, row.last_scored, row.versions_60) == (3, 0, None, "")
    assert all(getattr(row, f) is None for f in ("rmse_20", "rmse_ratio_60", "crps_ratio_60",
                                                  "coverage_80_60"))
    assert row.degraded == "" and report.retrain == {} and report.rolling == {}
    assert plot_rolling(report.rolling) is None


def test_a_holiday_is_scored_against_the_next_session_and_a_repeated_key_kept_once(tmp_path):
    lake, frame = tmp_path / "lake", prices()
    made = [forecast(3, frame), forecast(3, frame, offset=1.0), forecast(4, frame)]
    assert append_forecasts(lake, made) == 2  # the first of two rows with one key is kept
    closed = frame.drop(index=4)  # day 4 was a holiday: no close
    assert score_ledger(lake, "AAL", closed) == 2
    ledger = read_ledger(lake, "AAL").set_index("as_of")
    assert ledger.loc[DAYS[3], "actual_date"] == DAYS[5]  # the session after the holiday
    assert ledger.loc[DAYS[3], "actual"] == frame["close"].iloc[5]
    assert ledger.loc[DAYS[3], "error"] == pytest.approx(0.0 + frame["close"].iloc[3]
                                                         - frame["close"].iloc[5])
    assert ledger.loc[DAYS[4], "actual_date"] == DAYS[5]


@pytest.mark.parametrize("n", [20, 60])
def test_rolling_mean_is_pandas_rolling_mean(n):
    from tasks.serving.monitor import rolling_mean

    rng = np.random.default_rng(n)
    for size in (0, 3, 7, 100, 300):
        values = rng.normal(size=size)
        values[rng.random(size) < 0.2] = np.nan  # a forecast without quantiles has no CRPS
        expected = pd.Series(values).rolling(n, min_periods=min(n, 5)).mean().to_numpy()
        np.testing.assert_allclose(rolling_mean(values, n), expected, rtol=1e-12, atol=1e-12)


def test_one_pass_scores_and_appends_as_the_two_steps_do(tmp_path):
    """The daily flow's ledger pass: yesterday's forecasts scored and today's appended in one
    write, the same ledger as scoring and then appending; the monitor takes the ledger the pass
    returns and reports what it reports from the file."""
    from tasks.data.lake import closes_of
    from tasks.serving.ledger import issued_rows, update_ledger

    frame, now = prices(), pd.Timestamp("2026-12-05T21:00:00Z")
    one, two = tmp_path / "one" / "lake", tmp_path / "two" / "lake"
    for lake in (one, two):
        append_forecasts(lake, [forecast(i, frame, width=0.4) for i in range(30)], issued_at=now)
    today = frame[frame["date"] <= DAYS[30]]
    new = issued_rows([forecast(30, frame, width=0.4)], now)
    first = update_ledger(one, "AAL", closes_of(today), new, now)
    assert (first.added, first.scored) == (1, 30)
    pd.testing.assert_frame_equal(first.ledger, read_ledger(one, "AAL"))  # as written
    again = update_ledger(one, "AAL", closes_of(today), new, now)
    assert (again.added, again.scored) == (0, 0)  # the same day again: nothing
    assert score_ledger(two, "AAL", today, now=now) == 30
    assert append_forecasts(two, [forecast(30, frame, width=0.4)], issued_at=now) == 1
    pd.testing.assert_frame_equal(read_ledger(one, "AAL"), read_ledger(two, "AAL"))
    read = monitor(one.parent, ["AAL"])
    given = monitor(one.parent, ["AAL"], ledgers={"AAL": first.ledger})
    assert given.rows == read.rows and given.rows[0].scored == 30
    pd.testing.assert_frame_equal(given.rolling["AAL"], read.rolling["AAL"])


def test_the_ledger_pass_on_threads_writes_what_it_writes_on_one(tmp_path):
    """``update_ledgers`` over many symbols, each under its own lock on a pool of threads: the
    same files, counts and ledgers as one symbol after another, in symbol order."""
    from dataclasses import replace

    from tasks.data.lake import upsert_prices
    from tasks.serving.forecasting import update_ledgers
    from tasks.serving.ledger import issued_rows

    frame, now = prices(), pd.Timestamp("2026-12-05T21:00:00Z")
    symbols = [f"S{i:02d}" for i in range(16)]
    market = pd.concat([frame.assign(symbol=s, open=frame["close"], high=frame["close"],
                                     low=frame["close"], volume=1e6) for s in symbols])

    def made(symbol: str, days: range) -> list[IssuedForecast]:
        return [replace(forecast(i, frame, width=0.4 if i % 3 else None), symbol=symbol)
                for i in days]

    passes = {}
    for threads in (1, 8):
        lake = tmp_path / f"threads-{threads}" / "lake"
        upsert_prices(market, lake)
        append_forecasts(lake, [f for s in symbols[:-1] for f in made(s, range(30))],
                         issued_at=now)
        # today's forecasts: none for S00 (scored only), S15 has no ledger yet (appended only)
        new = issued_rows([f for s in symbols[1:] for f in made(s, range(30, 31))], now)
        passes[threads] = (lake, update_ledgers(lake, symbols, DAYS[30].date(), new, now,
                                                threads=threads))
    (one, sequential), (many, threaded) = passes[1], passes[8]
    assert list(threaded) == list(sequential) == symbols
    assert [(u.added, u.scored) for u in threaded.values()] == \
        [(u.added, u.scored) for u in sequential.values()]
    assert (threaded["S00"].added, threaded["S01"].scored, threaded["S15"].added) == (0, 30, 1)
    for symbol in symbols:
        pd.testing.assert_frame_equal(threaded[symbol].ledger, sequential[symbol].ledger)
        pd.testing.assert_frame_equal(read_ledger(many, symbol), read_ledger(one, symbol))


def test_a_ledger_written_before_the_arrow_pass_is_read_scored_and_kept(tmp_path):
    """Ledgers written by earlier versions (pandas' own types: dates in ms, issue stamps in us,
    pandas metadata) are read as the ledger's schema types them, scored and appended to; none
    of their rows or values change."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from tasks.data.lake import closes_of
    from tasks.serving.ledger import SCHEMA, issued_rows, update_ledger

    lake, frame, now = tmp_path / "lake", prices(), pd.Timestamp("2026-12-05T21:00:00Z")
    append_forecasts(lake, [forecast(i, frame, width=0.4) for i in range(5)], issued_at=now)
    score_ledger(lake, "AAL", frame[frame["date"] <= DAYS[2]], now=now)
    current = read_ledger(lake, "AAL")
    older = current.astype({c: "datetime64[ms]" for c in ("as_of", "target_date", "base_date")}
                           ).astype({"issued_at": "datetime64[us, UTC]"})
    pq.write_table(pa.Table.from_pandas(older, preserve_index=False), ledger_path(lake, "AAL"))
    assert pq.read_schema(ledger_path(lake, "AAL")).field("as_of").type == pa.timestamp("ms")

    assert SCHEMA.names == COLUMNS
    pd.testing.assert_frame_equal(read_ledger(lake, "AAL"), current)
    assert dict(read_ledger(lake, "AAL").dtypes) == dict(SCHEMA.empty_table().to_pandas().dtypes)
    done = update_ledger(lake, "AAL", closes_of(frame[frame["date"] <= DAYS[5]]),
                         issued_rows([forecast(5, frame, width=0.4)], now), now)
    assert (done.added, done.scored) == (1, 3)
    after = read_ledger(lake, "AAL")
    pd.testing.assert_frame_equal(after.iloc[:2], current.iloc[:2])  # scored before: as they were
    assert after["scored_at"].notna().sum() == 5 and len(after) == 6
    assert pq.read_schema(ledger_path(lake, "AAL")).field("as_of").type == pa.timestamp("ns")
