"""Lake: partitioned by symbol, upserted on (symbol, date), atomic, read per symbol."""

from __future__ import annotations

from datetime import date

import pandas as pd

from tasks.ingest import read_prices
from tasks.lake import partition_path, read_partition, upsert_prices
from tests.conftest import SAMPLE


def test_upsert_is_idempotent_and_partitioned(tmp_path):
    prices = read_prices(SAMPLE)
    first = upsert_prices(prices, tmp_path)
    mtimes = {r.symbol: partition_path(tmp_path, r.symbol).stat().st_mtime_ns for r in first}
    second = upsert_prices(prices, tmp_path)
    assert first == second
    assert {r.symbol: partition_path(tmp_path, r.symbol).stat().st_mtime_ns for r in second} == mtimes
    assert sorted(p.name for p in (tmp_path / "prices").iterdir()) == ["symbol=AAL", "symbol=ZION"]
    assert len(pd.read_parquet(tmp_path / "prices")) == len(prices)


def test_newer_rows_are_added_and_win(tmp_path):
    prices = read_prices(SAMPLE, symbols=["AAL"])
    upsert_prices(prices.iloc[:100], tmp_path)
    update = prices.iloc[90:120].copy()
    update.loc[update.index[0], "close"] = 123.0
    (ref,) = upsert_prices(update, tmp_path)
    stored = read_partition(tmp_path, "AAL")
    assert ref.rows == len(stored) == 120
    assert stored.loc[90, "close"] == 123.0
    assert stored["date"].is_monotonic_increasing and not stored["date"].duplicated().any()


def test_read_partition_as_of(tmp_path):
    upsert_prices(read_prices(SAMPLE), tmp_path)
    frame = read_partition(tmp_path, "ZION", date(2012, 6, 29))
    assert frame["date"].max() == pd.Timestamp("2012-06-29")
    assert set(frame["symbol"]) == {"ZION"}
