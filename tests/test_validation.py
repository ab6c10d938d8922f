"""Validation: a real GX suite passes real data and names rules and rows on bad data."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from tasks.core.errors import DataValidationError
from tasks.data.ingest import read_prices
from tasks.data.validation import validate_prices
from tests.conftest import KAGGLE_SUBSET, REAL


@pytest.fixture(scope="module")
def prices() -> pd.DataFrame:
    return read_prices(KAGGLE_SUBSET, symbols=["AAL"]).head(40)


@pytest.mark.parametrize("name", ["AMZN.csv", "WEN.csv", KAGGLE_SUBSET.name])
def test_real_files_pass(tmp_path, name):
    report = validate_prices(read_prices(REAL / name), name, tmp_path)
    assert report.success and report.failures == ()
    result = json.loads((tmp_path / f"{name}.result.json").read_text())
    assert result["success"] is True and len(result["results"]) == report.evaluated >= 15


def _broken(prices: pd.DataFrame, row: int, **values) -> pd.DataFrame:
    frame = prices.copy()
    for column, value in values.items():
        frame.loc[row, column] = value
    return frame


@pytest.mark.parametrize(("change", "rule"), [
    ({"high": 1.0}, "low <= high"),
    ({"close": 99.0}, "close <= high"),
    ({"low": 50.0}, "low <= open"),
    ({"open": 60.0}, "open <= high"),
    ({"close": -1.0}, "close is a finite price > 0"),
    ({"open": 0.0}, "open is a finite price > 0"),
    ({"close": np.inf}, "close is a finite price > 0"),
    ({"close": np.nan}, "not null: close"),
    ({"volume": -5.0}, "volume is finite and >= 0"),
])
def test_each_rule_names_itself_and_the_row(tmp_path, prices, change, rule):
    frame = _broken(prices, 7, **change)
    with pytest.raises(DataValidationError) as info:
        validate_prices(frame, "bad.csv", tmp_path)
    message = str(info.value)
    assert "bad.csv" in message and f"rule '{rule}'" in message
    assert "2010-01-13" in message  # the date of row 7: the offending row is shown


def test_duplicates_fail(tmp_path, prices):
    frame = pd.concat([prices, prices.iloc[[3]]], ignore_index=True)
    with pytest.raises(DataValidationError, match=r"unique \(symbol, date\)' broken by 2 row"):
        validate_prices(frame, "dup.csv", tmp_path)


def _series(days: int, symbol: str = "AAA", start: str = "2016-01-04") -> pd.DataFrame:
    dates = pd.bdate_range(start, periods=days).astype("datetime64[ns]")
    return pd.DataFrame({"symbol": symbol, "date": dates, "open": 10.0, "high": 11.0,
                         "low": 9.0, "close": 10.5, "volume": 100.0})


def test_a_gap_is_a_note_its_rows_are_kept_and_the_limit_is_configurable(tmp_path):
    """A gap is a fact about the data (days missing in the source), not a bad row: validation
    passes, says it in one line naming the symbol and the days, and drop quarantines nothing."""
    from tasks.data.history_columns import GAP, with_history_columns
    from tasks.data.price_suite import Limits

    real = read_prices(REAL / "AMZN.csv")
    gaps = with_history_columns(real, real.iloc[:0][["symbol", "date"]])[GAP]
    assert gaps.max() == 5  # 9/11: 2001-09-10 -> 2001-09-17
    assert validate_prices(real, "AMZN.csv", tmp_path, Limits(max_gap_business_days=5)).notes \
        == ()
    report = validate_prices(real, "AMZN.csv", tmp_path, Limits(max_gap_business_days=4))
    assert report.success and report.failures == ()
    (note,) = report.notes
    assert note.startswith("1 gap(s) longer than 4 business days, kept: AMZN 2001-09-10.."
                           "2001-09-17 (5 business days)")
    raw = json.loads((tmp_path / "AMZN.csv.result.json").read_text())
    (gap,) = [r for r in raw["results"] if r["expectation_config"]["meta"]["rule"].startswith(
        "no gap")]
    assert not gap["success"] and gap["expectation_config"]["severity"] == "info"

    frame = pd.concat([_series(30), _series(30, start="2016-04-01")], ignore_index=True)
    report = validate_prices(frame, "gap.csv", tmp_path, policy="drop",
                             kept_target=tmp_path / "kept.parquet")
    assert report.success and report.quarantined == 0 and report.kept_path == ""
    assert "AAA 2016-02-12..2016-04-01 (35 business days)" in report.notes[0]


def test_dates_must_increase_per_symbol(tmp_path):
    frame = _series(30)
    swapped = frame.iloc[[*range(10), 11, 10, *range(12, 30)]]
    with pytest.raises(DataValidationError, match="dates increasing per symbol.*broken by 1 row"):
        validate_prices(swapped, "order.csv", tmp_path)
    interleaved = pd.concat([frame, _series(30, "BBB")]).sort_values("date", kind="stable")
    validate_prices(interleaved, "ok.csv", tmp_path)  # increasing per symbol, not overall


def test_too_little_history_is_a_note_that_counts_the_lake(tmp_path):
    from tasks.data.lake import upsert_prices
    from tasks.data.price_suite import Limits

    limits = Limits(min_history=50)
    report = validate_prices(_series(40), "short.csv", tmp_path, limits)
    assert report.success and report.notes == (
        "1 symbol(s) with less history than a model needs (50 days), kept: AAA (40 days); "
        "training leaves them out until they have it",)
    lake = tmp_path / "lake"
    upsert_prices(_series(60).iloc[:45], lake)
    newer = _series(60).iloc[40:]  # 20 rows: 5 already stored, 15 new -> 60 days in all
    assert validate_prices(newer, "newer.csv", tmp_path, limits, lake=lake).notes == ()
    early = validate_prices(newer, "newer.csv", tmp_path, limits, lake=lake,
                            as_of=pd.Timestamp("2016-02-26").date())
    assert early.success and "AAA (40 days)" in early.notes[0]


def test_data_docs_html_and_readable_summary(tmp_path, prices):
    from pathlib import Path

    from tasks.data.validation import summary_text

    frame = prices.copy()
    frame.loc[3, "volume"] = -1.0
    report = validate_prices(frame, "vol.csv", tmp_path, raise_on_failure=False)
    docs = Path(report.docs_path)
    assert docs == tmp_path / "gx" / "uncommitted" / "data_docs" / "local_site" / "index.html"
    assert docs.exists() and "closecast-prices" in docs.read_text()
    pages = list((docs.parent / "validations").rglob("*.html"))
    assert pages and "volume" in pages[0].read_text()
    text = summary_text(report, "vol.csv")
    assert "FAILED  volume is finite and >= 0: 1 row(s)" in text
    assert "2010-01-07" in text and str(docs) in text


def test_drop_quarantines_offending_rows_and_keeps_short_symbols(tmp_path):
    from tasks.data.price_suite import Limits

    frame = pd.concat([_series(60), _series(20, "TINY")], ignore_index=True)
    frame.loc[5, "high"] = 1.0  # high < low
    report = validate_prices(frame, "mixed.csv", tmp_path, Limits(min_history=50), "drop",
                             kept_target=tmp_path / "kept.parquet")
    assert not report.success and report.quarantined == 1
    quarantined = pd.read_parquet(report.quarantine_path)
    assert quarantined["symbol"].tolist() == ["AAA"]
    assert "low <= high" in quarantined["rules"].iloc[0]
    kept = pd.read_parquet(report.kept_path)
    assert len(kept) == 79 and kept.groupby("symbol").size().to_dict() == {"AAA": 59, "TINY": 20}
    assert "TINY (20 days)" in report.notes[0]


def test_the_same_bad_rows_fed_again_are_not_quarantined_again(tmp_path):
    """A growing input file fed every day drops the same bad rows each time: the quarantine
    keeps them once (the real-file year replay found one file of them per input file); rows
    not quarantined before get a file of their own."""
    from tasks.data.price_suite import Limits

    frame = _series(60)
    frame.loc[5, "high"] = 1.0  # high < low
    first = validate_prices(frame, "prices-1.csv", tmp_path, Limits(min_history=50), "drop",
                            kept_target=tmp_path / "kept.parquet")
    longer = pd.concat([frame, _series(61).iloc[60:]], ignore_index=True)  # one more day
    second = validate_prices(longer, "prices-2.csv", tmp_path, Limits(min_history=50), "drop",
                             kept_target=tmp_path / "kept.parquet")
    assert second.quarantined == 1 and second.quarantine_path == first.quarantine_path
    assert sorted(p.name for p in (tmp_path / "quarantine").iterdir()) == [
        "prices-1.csv.parquet"]
    longer.loc[7, "high"] = 1.0  # a new bad row: a new file, with both
    third = validate_prices(longer, "prices-3.csv", tmp_path, Limits(min_history=50), "drop",
                            kept_target=tmp_path / "kept.parquet")
    assert third.quarantined == 2 and third.quarantine_path.endswith("prices-3.csv.parquet")
    assert len(list((tmp_path / "quarantine").iterdir())) == 2


def test_validation_of_851k_rows_passes_a_kaggle_size_frame(tmp_path):
    """Kaggle scale (851k rows) validates whole; its speed is measured by benchmarks/bench_data.py,
    not asserted here (a wall-clock limit in a test is flaky under load)."""
    from tasks.data.price_suite import Limits

    base = _series(1762, start="2010-01-04")
    frame = pd.concat([base.assign(symbol=f"S{i:03d}") for i in range(483)], ignore_index=True)
    report = validate_prices(frame, "big.csv", tmp_path, Limits(min_history=77))
    assert report.success and report.rows == 851_046 and not report.failures


def test_fail_reports_counts_and_examples_without_listing_every_row(tmp_path):
    """fail needs counts, a few rows and a count of what drop would quarantine (SUMMARY, the
    first COUNTED_ROWS of each rule); drop needs every offending row (COMPLETE)."""
    from tasks.data.validation import drop_advice

    frame = read_prices(KAGGLE_SUBSET, symbols=["AAL"]).head(300)
    frame.loc[frame.index[20:220:2], "volume"] = -1.0  # 100 bad rows
    report = validate_prices(frame, "bad.csv", tmp_path / "fail", raise_on_failure=False)
    (rule,) = [r for r in report.rules if r.failed]
    assert rule.name == "volume is finite and >= 0" and rule.unexpected == 100
    assert rule.examples.count("\n") >= 5  # header plus the first five offending rows
    raw = json.loads((tmp_path / "fail" / "bad.csv.result.json").read_text())
    (failed,) = [r for r in raw["results"] if not r["success"] and
                 r["expectation_config"]["severity"] == "critical"]
    assert "unexpected_index_list" not in failed["result"]
    assert len(failed["result"]["partial_unexpected_index_list"]) == 100
    assert report.offending == (100, 100)
    assert drop_advice(report).startswith(
        "--on-invalid drop would quarantine 100 of the 300 rows (to validation/quarantine/, "
        "each with the rules it broke) and store the other 200")
    with pytest.raises(DataValidationError) as info:
        validate_prices(frame, "bad.csv", tmp_path / "fail")
    assert str(info.value).splitlines()[-1] == drop_advice(report)

    dropped = validate_prices(frame, "bad.csv", tmp_path / "drop", policy="drop",
                              raise_on_failure=False)
    assert dropped.quarantined == 100  # every offending row, not only the examples


def test_past_the_counted_rows_the_advice_gives_bounds(tmp_path):
    """More offending rows than a failed run keeps (COUNTED_ROWS = 1000 per rule): what drop
    would quarantine is bounded (at least the largest count, at most their sum), and true."""
    from tasks.data.validation import drop_advice

    frame = read_prices(KAGGLE_SUBSET, symbols=["AAL"])
    frame.loc[frame.index[:1200], "volume"] = -1.0
    frame.loc[frame.index[1190:1210], "high"] = np.nan  # 10 of them volume rows too
    report = validate_prices(frame, "many.csv", tmp_path / "fail", raise_on_failure=False)
    assert report.offending == (1200, 1220)
    assert "would quarantine between 1,200 and 1,220 of the 1,762 rows" in drop_advice(report)
    dropped = validate_prices(frame, "many.csv", tmp_path / "drop", policy="drop",
                              raise_on_failure=False)
    assert dropped.quarantined == 1210


def _stored(tmp_path, frame: pd.DataFrame):
    from tasks.data.lake import upsert_prices

    lake = tmp_path / "lake"
    upsert_prices(frame, lake)
    return lake


def test_a_market_file_checks_only_the_rows_the_lake_does_not_hold(tmp_path):
    """The daily flow reads a market file whole every day: the rows the lake holds exactly are
    not checked again; a new bad row is found and named by its date."""
    frame = _series(60)
    lake = _stored(tmp_path, frame.iloc[:59])
    report = validate_prices(frame, "plus1.csv", tmp_path, lake=lake, skip_stored=True)
    assert report.success and report.unchanged == 59 and report.rows == 60
    raw = json.loads((tmp_path / "plus1.csv.result.json").read_text())
    counts = {r["result"].get("element_count") for r in raw["results"]} - {None}
    assert counts == {1}  # the suite ran on the new row alone
    bad = _broken(frame, 59, high=1.0)
    with pytest.raises(DataValidationError, match=r"low <= high.*broken by 1 row") as caught:
        validate_prices(bad, "plus1.csv", tmp_path, lake=lake, skip_stored=True)
    assert str(frame["date"].iloc[59].date()) in str(caught.value)
    # `closecast validate` (no skip) checks every row: the same count of rows, all evaluated
    assert validate_prices(frame, "all.csv", tmp_path, lake=lake).unchanged == 0


@pytest.mark.parametrize(("change", "rule"), [
    (lambda f: _broken(f, 10, volume=-1.0), "volume is finite"),  # a stored row, changed
    (lambda f: pd.concat([f, f.iloc[[10]]], ignore_index=True), r"unique \(symbol, date\)"),
    (lambda f: f.iloc[[*range(10), 11, 10, *range(12, 60)]], "dates increasing"),
])
def test_a_stored_row_changed_repeated_or_out_of_order_is_checked(tmp_path, change, rule):
    frame = _series(60)
    lake = _stored(tmp_path, frame)
    with pytest.raises(DataValidationError, match=rule):
        validate_prices(change(frame), "again.csv", tmp_path, lake=lake, skip_stored=True)


def test_drop_among_stored_rows_quarantines_the_new_bad_row_alone(tmp_path):
    frame = _series(60)
    lake = _stored(tmp_path, frame.iloc[:50])
    bad = _broken(frame, 55, high=1.0)
    report = validate_prices(bad, "mixed.csv", tmp_path, policy="drop", lake=lake,
                             kept_target=tmp_path / "kept.parquet", skip_stored=True,
                             raise_on_failure=False)
    assert report.unchanged == 50 and report.quarantined == 1
    quarantined = pd.read_parquet(report.quarantine_path)
    assert quarantined["date"].tolist() == [frame["date"].iloc[55]]
    kept = pd.read_parquet(report.kept_path)
    assert len(kept) == 59 and frame["date"].iloc[55] not in set(kept["date"])


def test_a_gap_among_stored_rows_is_said_once_not_every_day(tmp_path):
    """A market file brings its whole history daily: a gap is noted when its rows are new."""
    frame = pd.concat([_series(30), _series(30, start="2016-04-01")], ignore_index=True)
    first = validate_prices(frame, "day1.csv", tmp_path, skip_stored=True,
                            lake=tmp_path / "lake")
    assert "AAA 2016-02-12..2016-04-01" in first.notes[0]
    lake = _stored(tmp_path, frame)
    again = validate_prices(pd.concat([frame, _series(31, start="2016-04-01").tail(1)],
                                      ignore_index=True), "day2.csv", tmp_path, lake=lake,
                            skip_stored=True)
    assert again.success and again.unchanged == 60 and again.notes == ()
