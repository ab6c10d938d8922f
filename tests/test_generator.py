"""The Kaggle-shaped generator (benchmarks/generate_kaggle.py): shape, invariants, determinism,
and that the pipeline's own ingest and validation accept what it writes."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd

from tasks.data.columns import PRICE_COLUMNS, detect_format
from tasks.data.ingest import read_prices
from tasks.data.validation import validate_prices

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("generate_kaggle",
                                               ROOT / "benchmarks" / "generate_kaggle.py")
generate_kaggle = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(generate_kaggle)

KAGGLE_COLUMNS = ["date", "symbol", "open", "close", "low", "high", "volume"]


def test_shape_order_and_ohlc_invariants():
    frame = generate_kaggle.generate(n_symbols=5, n_days=30, seed=3)
    assert list(frame.columns) == KAGGLE_COLUMNS
    assert frame.shape == (150, 7)
    assert frame["symbol"].nunique() == 5
    dates = pd.DatetimeIndex(frame["date"].unique())
    assert dates[0] == pd.Timestamp("2010-01-04") and len(dates) == 30
    assert (dates.dayofweek < 5).all()  # weekdays only
    # Sorted by date, then symbol, like Kaggle's file; one row per (symbol, date).
    assert frame.equals(frame.sort_values(["date", "symbol"]).reset_index(drop=True))
    assert not frame.duplicated(["symbol", "date"]).any()
    low, high = frame["low"], frame["high"]
    body_low = np.minimum(frame["open"], frame["close"])
    body_high = np.maximum(frame["open"], frame["close"])
    assert (low > 0).all() and (low <= body_low).all() and (body_high <= high).all()
    assert (frame["volume"] >= 0).all()


def test_same_seed_same_data_and_other_seed_differs():
    first = generate_kaggle.generate(n_symbols=5, n_days=30, seed=7)
    again = generate_kaggle.generate(n_symbols=5, n_days=30, seed=7)
    other = generate_kaggle.generate(n_symbols=5, n_days=30, seed=8)
    pd.testing.assert_frame_equal(first, again)
    assert not np.allclose(first["close"], other["close"])


def test_written_csv_is_read_and_validated_by_the_pipeline(tmp_path):
    path = generate_kaggle.write_csv(tmp_path / "prices.csv", n_symbols=5, n_days=30, seed=1)
    assert path.read_text().splitlines()[0] == ",".join(KAGGLE_COLUMNS)
    assert generate_kaggle.write_csv(tmp_path / "again.csv", n_symbols=5, n_days=30,
                                     seed=1).read_bytes() == path.read_bytes()
    assert detect_format(path) == "kaggle"
    frame = read_prices(path)
    assert list(frame.columns) == PRICE_COLUMNS and len(frame) == 150
    expected = generate_kaggle.generate(n_symbols=5, n_days=30, seed=1)
    merged = frame.merge(expected, on=["symbol", "date"], suffixes=("", "_generated"))
    assert len(merged) == 150
    for column in ("open", "high", "low", "close", "volume"):
        np.testing.assert_allclose(merged[column], merged[f"{column}_generated"])
    report = validate_prices(frame, str(path), tmp_path / "validation")
    assert report.success and report.rows == 150


def test_bench_market_pair_appends_one_valid_business_day(tmp_path):
    spec = importlib.util.spec_from_file_location("bench_market",
                                                  ROOT / "benchmarks" / "bench_market.py")
    bench_market = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench_market)
    base, plus, new_day, before = bench_market.write_pair(tmp_path, symbols=5, days=30, seed=2)
    base_lines, plus_lines = base.read_text().splitlines(), plus.read_text().splitlines()
    # The same rows byte for byte, then one row per symbol on the next business day.
    assert plus_lines[:len(base_lines)] == base_lines and len(plus_lines) == len(base_lines) + 5
    assert {line.split(",")[0] for line in plus_lines[len(base_lines):]} == {new_day}
    last_base = pd.Timestamp(base_lines[-1].split(",")[0])
    assert pd.Timestamp(new_day) == last_base + pd.offsets.BDay(1)
    assert pd.Timestamp(before) == last_base  # the cold run's last day: the daily flow's day

    frame = read_prices(plus)
    report = validate_prices(frame, str(plus), tmp_path / "validation")
    assert report.success and report.rows == 155
