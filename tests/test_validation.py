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


def test_gap_limit_is_configurable_and_real_closures_pass(tmp_path):
    from tasks.data.history_columns import GAP, with_history_columns
    from tasks.data.price_suite import Limits

    real = read_prices(REAL / "AMZN.csv")
    gaps = with_history_columns(real, real.iloc[:0][["symbol", "date"]])[GAP]
    assert gaps.max() == 5  # 9/11: 2001-09-10 -> 2001-09-17
    validate_prices(real, "AMZN.csv", tmp_path, Limits(max_gap_business_days=5))
    with pytest.raises(DataValidationError, match="no gap longer than 4 business days"):
        validate_prices(real, "AMZN.csv", tmp_path, Limits(max_gap_business_days=4))
    frame = pd.concat([_series(30), _series(30, start="2016-04-01")], ignore_index=True)
    with pytest.raises(DataValidationError) as info:
        validate_prices(frame, "gap.csv", tmp_path)
    assert "rule 'no gap longer than 10 business days' broken by 1 row" in str(info.value)
    assert "2016-04-01" in str(info.value)


def test_dates_must_increase_per_symbol(tmp_path):
    frame = _series(30)
    swapped = frame.iloc[[*range(10), 11, 10, *range(12, 30)]]
    with pytest.raises(DataValidationError, match="dates increasing per symbol.*broken by 1 row"):
        validate_prices(swapped, "order.csv", tmp_path)
    interleaved = pd.concat([frame, _series(30, "BBB")]).sort_values("date", kind="stable")
    validate_prices(interleaved, "ok.csv", tmp_path)  # increasing per symbol, not overall


def test_minimum_history_counts_the_lake(tmp_path):
    from tasks.data.lake import upsert_prices
    from tasks.data.price_suite import Limits

    limits = Limits(min_history=50)
    with pytest.raises(DataValidationError, match="at least 50 days of history.*broken by 40"):
        validate_prices(_series(40), "short.csv", tmp_path, limits)
    lake = tmp_path / "lake"
    upsert_prices(_series(60).iloc[:45], lake)
    newer = _series(60).iloc[40:]  # 20 rows: 5 already stored, 15 new -> 60 days in all
    report = validate_prices(newer, "newer.csv", tmp_path, limits, lake=lake)
    assert report.success
    with pytest.raises(DataValidationError, match="at least 50 days"):
        validate_prices(newer, "newer.csv", tmp_path, limits, lake=lake,
                        as_of=pd.Timestamp("2016-02-26").date())


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


def test_drop_quarantines_offending_rows_and_short_symbols(tmp_path):
    from tasks.data.price_suite import Limits

    frame = pd.concat([_series(60), _series(20, "TINY")], ignore_index=True)
    frame.loc[5, "high"] = 1.0  # high < low
    report = validate_prices(frame, "mixed.csv", tmp_path, Limits(min_history=50), "drop",
                             kept_target=tmp_path / "kept.parquet")
    assert not report.success and report.quarantined == 21
    quarantined = pd.read_parquet(report.quarantine_path)
    assert quarantined.groupby("symbol").size().to_dict() == {"AAA": 1, "TINY": 20}
    assert "low <= high" in quarantined.loc[quarantined["symbol"] == "AAA", "rules"].iloc[0]
    kept = pd.read_parquet(report.kept_path)
    assert len(kept) == 59 and set(kept["symbol"]) == {"AAA"}


def test_validation_of_851k_rows_passes_a_kaggle_size_frame(tmp_path):
    """Kaggle scale (851k rows) validates whole; its speed is measured by benchmarks/bench_data.py,
    not asserted here (a wall-clock limit in a test is flaky under load)."""
    from tasks.data.price_suite import Limits

    base = _series(1762, start="2010-01-04")
    frame = pd.concat([base.assign(symbol=f"S{i:03d}") for i in range(483)], ignore_index=True)
    report = validate_prices(frame, "big.csv", tmp_path, Limits(min_history=77))
    assert report.success and report.rows == 851_046 and not report.failures


def test_fail_reports_counts_and_examples_without_listing_every_row(tmp_path):
    """fail needs counts and a few rows (SUMMARY); drop needs every offending row (COMPLETE)."""
    frame = read_prices(KAGGLE_SUBSET, symbols=["AAL"]).head(300)
    frame.loc[frame.index[20:220:2], "volume"] = -1.0  # 100 bad rows, no gap once dropped
    report = validate_prices(frame, "bad.csv", tmp_path / "fail", raise_on_failure=False)
    (rule,) = [r for r in report.rules if not r.success]
    assert rule.name == "volume is finite and >= 0" and rule.unexpected == 100
    assert rule.examples.count("\n") >= 5  # header plus the first five offending rows
    raw = json.loads((tmp_path / "fail" / "bad.csv.result.json").read_text())
    (failed,) = [r for r in raw["results"] if not r["success"]]
    assert "unexpected_index_list" not in failed["result"]
    assert len(failed["result"]["partial_unexpected_index_list"]) == 5

    dropped = validate_prices(frame, "bad.csv", tmp_path / "drop", policy="drop",
                              raise_on_failure=False)
    assert dropped.quarantined == 100  # every offending row, not only the examples


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
