"""Lake: partitioned by symbol, upserted on (symbol, date), atomic, read per symbol."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from tasks.core.hashing import frame_sha256
from tasks.data.ingest import read_prices
from tasks.data.lake import partition_path, read_partition, upsert_prices
from tests.conftest import KAGGLE_SUBSET, REAL, SAMPLE


def test_upsert_is_idempotent_and_partitioned(tmp_path):
    prices = read_prices(SAMPLE)
    first = upsert_prices(prices, tmp_path)
    mtimes = {r.symbol: partition_path(tmp_path, r.symbol).stat().st_mtime_ns for r in first}
    second = upsert_prices(prices, tmp_path)
    assert first == second
    assert {r.symbol: partition_path(tmp_path, r.symbol).stat().st_mtime_ns
            for r in second} == mtimes
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
    # the ref names the content stored: its sha256 is that of the partition's own columns
    assert ref.content_sha256 == frame_sha256(stored.drop(columns="symbol"))
    (before,) = upsert_prices(prices.iloc[:100], tmp_path / "again")
    assert before.content_sha256 != ref.content_sha256


def test_rows_without_a_symbol_are_not_stored_and_the_rest_are(tmp_path):
    prices = read_prices(SAMPLE)
    holed = prices.astype({"symbol": object})
    holed.loc[holed.index[:5], "symbol"] = None
    refs = upsert_prices(holed, tmp_path)
    assert [r.symbol for r in refs] == ["AAL", "ZION"]
    assert sum(r.rows for r in refs) == len(prices) - 5


def test_read_partition_as_of(tmp_path):
    upsert_prices(read_prices(SAMPLE), tmp_path)
    frame = read_partition(tmp_path, "ZION", date(2012, 6, 29))
    assert frame["date"].max() == pd.Timestamp("2012-06-29")
    assert set(frame["symbol"]) == {"ZION"}


def test_a_partition_is_read_once_and_a_file_replaced_by_another_writer_again(tmp_path,
                                                                            monkeypatch):
    """One process reads a partition in validation, the store, issuing and scoring: the store
    keeps what it wrote, the file is read again only once something else has replaced it, and
    no caller shares another's frame."""
    from tasks.core.atomic import atomic_write_parquet

    prices = read_prices(SAMPLE, symbols=["AAL"])
    upsert_prices(prices.iloc[:100], tmp_path)
    import tasks.data.lake as lake_module

    reads = []
    real_read = lake_module.read_parquet
    monkeypatch.setattr(lake_module, "read_parquet", lambda path: reads.append(path)
                        or real_read(path))
    first = read_partition(tmp_path, "AAL")
    first.loc[0, "close"] = -1.0  # a caller changing its frame changes no other read
    again = read_partition(tmp_path, "AAL")
    assert again.loc[0, "close"] == prices["close"].iloc[0] and len(again) == 100
    assert reads == []  # both are what the store wrote
    other = prices.iloc[:101].drop(columns="symbol").reset_index(drop=True)
    atomic_write_parquet(other, partition_path(tmp_path, "AAL"))  # another process's write
    assert len(read_partition(tmp_path, "AAL")) == 101 and len(reads) == 1
    assert len(read_partition(tmp_path, "AAL")) == 101 and len(reads) == 1
    partition_path(tmp_path, "AAL").unlink()
    assert read_partition(tmp_path, "AAL").empty


@pytest.mark.parametrize("source", [SAMPLE, KAGGLE_SUBSET, REAL / "AMZN.csv"])
def test_a_partition_the_store_wrote_reads_back_as_the_file_does(tmp_path, source):
    """The store keeps what it wrote as the next read of the partition: it must be the file's
    own frame, dtypes included, for a new partition and for a merge into one."""
    prices = read_prices(source)
    for rows in (prices.iloc[:300], prices):  # written new, then merged
        for ref in upsert_prices(rows, tmp_path):
            kept = read_partition(tmp_path, ref.symbol)
            from_file = pd.read_parquet(partition_path(tmp_path, ref.symbol))
            from_file.insert(0, "symbol", ref.symbol)
            pd.testing.assert_frame_equal(kept, from_file, check_exact=True)


def _lake_files(lake) -> dict:
    from tests.conftest import tree_state

    return tree_state(lake)


def test_newer_file_adds_only_new_days_and_same_file_changes_nothing(tmp_path):
    from tasks.data.ingest import stage_prices
    from tasks.data.lake import store_and_stamp

    lines = SAMPLE.read_text().splitlines(keepends=True)
    older = tmp_path / "older.csv"
    older.write_text("".join(lines[:-20]))  # the last 10 days of AAL and ZION missing
    newer = tmp_path / "newer.csv"
    newer.write_text("".join(lines))
    lake = tmp_path / "lake"
    store_and_stamp(stage_prices(older, None, (), tmp_path / "st"), lake)
    before = read_partition(lake, "AAL")
    refs = store_and_stamp(stage_prices(newer, None, (), tmp_path / "st"), lake)
    after = read_partition(lake, "AAL")
    assert len(after) == len(before) + 10 == refs[0].rows
    pd.testing.assert_frame_equal(after.iloc[:len(before)], before)  # old days untouched
    assert after["date"].iloc[-10:].min() > before["date"].max()

    state = _lake_files(lake / "prices")
    again = store_and_stamp(stage_prices(newer, None, (), tmp_path / "st"), lake)
    assert again == refs
    assert _lake_files(lake / "prices") == state, "re-ingesting the same file rewrote a partition"


def test_crash_mid_write_leaves_the_previous_partition(tmp_path, monkeypatch):
    import pytest

    prices = read_prices(SAMPLE, symbols=["AAL"])
    upsert_prices(prices.iloc[:500], tmp_path)
    state = _lake_files(tmp_path)
    import tasks.core.atomic

    real_write = tasks.core.atomic.pq.write_table

    def crash_half_way(table, path, *args, **kwargs):
        real_write(table, path, *args, **kwargs)
        with open(path, "r+b") as handle:  # a torn write: half the bytes, then the crash
            handle.truncate(handle.seek(0, 2) // 2)
        raise OSError("disk full")

    monkeypatch.setattr(tasks.core.atomic.pq, "write_table", crash_half_way)
    with pytest.raises(OSError, match="disk full"):
        upsert_prices(prices, tmp_path)
    monkeypatch.undo()
    assert _lake_files(tmp_path) == state, "no temp file left, partition untouched"
    pd.testing.assert_frame_equal(read_partition(tmp_path, "AAL"),
                                  prices.iloc[:500].reset_index(drop=True))


KILLED_WRITER = """
import os, sys, time
import tasks.core.atomic
from tasks.data.ingest import read_prices
from tasks.data.lake import upsert_prices
real = tasks.core.atomic.pq.write_table
def slow(table, path, *a, **k):
    real(table, path, *a, **k)
    with open(path, "r+b") as h:
        h.truncate(h.seek(0, 2) // 2)
    print("writing", flush=True)
    time.sleep(60)
tasks.core.atomic.pq.write_table = slow
upsert_prices(read_prices(sys.argv[2], symbols=["AAL"]), __import__("pathlib").Path(sys.argv[1]))
"""


def test_killed_writer_leaves_the_previous_partition_readable(tmp_path):
    import os
    import signal
    import subprocess
    import sys

    from tests.conftest import ROOT

    prices = read_prices(SAMPLE, symbols=["AAL"])
    upsert_prices(prices.iloc[:500], tmp_path)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    writer = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(tmp_path), str(SAMPLE)],
                              cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline().strip() == "writing"
        os.kill(writer.pid, signal.SIGKILL)
    finally:
        writer.wait(timeout=30)
    assert list((tmp_path / "prices" / "symbol=AAL").glob(".tmp-*")), "killed mid-write"
    stored = read_partition(tmp_path, "AAL")
    pd.testing.assert_frame_equal(stored, prices.iloc[:500].reset_index(drop=True))
    assert len(pd.read_parquet(tmp_path / "prices")) == 500, "a torn temp file is never read"


def test_securities_are_upserted_beside_the_prices(tmp_path):
    from tasks.data.lake import upsert_securities

    first = pd.DataFrame({"symbol": ["AAL", "ZION"], "name": ["American", "Zions"],
                          "sector": ["Industrials", "Financials"]})
    target = upsert_securities(first, tmp_path)
    mtime = target.stat().st_mtime_ns
    assert upsert_securities(first, tmp_path).stat().st_mtime_ns == mtime
    upsert_securities(first.iloc[[1]].assign(name="Zions Bancorporation"), tmp_path)
    stored = pd.read_parquet(target)
    assert stored["name"].tolist() == ["American", "Zions Bancorporation"]
    assert not (tmp_path / "prices").exists()


def test_many_partitions_read_at_once_are_each_partition_read(tmp_path):
    """``read_partitions`` (validation's view of the lake) is ``read_partition`` of each symbol,
    concatenated, for all columns or some; a symbol with no partition has no rows, and changing
    the frame it gives changes no later read (the reads come from the process's cache)."""
    from tasks.data.lake import read_closes, read_partitions

    lake = tmp_path / "lake"
    upsert_prices(read_prices(KAGGLE_SUBSET), lake)
    symbols = sorted(read_prices(KAGGLE_SUBSET)["symbol"].unique())
    asked = [symbols[1], "NOPE", symbols[0]]
    each = [read_partition(lake, s) for s in asked]
    assert each[1].empty
    whole = pd.concat([each[0], each[2]], ignore_index=True)
    pd.testing.assert_frame_equal(read_partitions(lake, asked), whole, check_exact=True)
    pd.testing.assert_frame_equal(read_partitions(lake, asked, ["date"]),
                                  whole[["symbol", "date"]])
    got = read_partitions(lake, asked)
    got.loc[:, "close"] = -1.0
    pd.testing.assert_frame_equal(read_partition(lake, symbols[1]), each[0])
    assert read_partitions(lake, ["NOPE"]).empty
    closes = read_closes(lake, symbols[0], each[2]["date"].iloc[9].date())
    assert list(closes.closes) == list(each[2]["close"].iloc[:10])
    assert (closes.dates == each[2]["date"].to_numpy()[:10]).all()
