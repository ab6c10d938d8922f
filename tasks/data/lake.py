"""Persist: the price lake, a Parquet dataset partitioned by symbol, upserted on (symbol, date)."""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from prefect import get_run_logger, task
from prefect.cache_policies import CacheKeyFnPolicy

from tasks.core.atomic import atomic_write_parquet, atomic_write_text, read_parquet
from tasks.core.caching import BY_CONTENT, IO_RETRIES
from tasks.core.hashing import file_state, frame_sha256
from tasks.core.locks import file_lock
from tasks.core.logs import named_few
from tasks.core.paths import confined
from tasks.core.symbols import is_valid_symbol
from tasks.data.columns import PRICE_COLUMNS
from tasks.data.ingest import StagedPrices

PARTITION_FILE = "part.parquet"
PARTITION_COLUMNS = PRICE_COLUMNS[1:]  # a partition's file: the symbol is its directory
SECURITIES_FILE = "securities.parquet"  # symbol, name, sector: beside prices/, not inside it


@dataclass(frozen=True)
class PartitionRef:
    """One symbol's partition and the identity of its content (sha256 of its rows)."""

    symbol: str
    path: str
    rows: int
    content_sha256: str
    first_date: str
    last_date: str


def partition_path(lake: Path, symbol: str) -> Path:
    """Where a symbol's rows live: ``lake/prices/symbol=S/part.parquet``."""
    return confined(lake, "prices", f"symbol={symbol}", PARTITION_FILE)


@contextmanager
def partition_lock(lake: Path, symbol: str) -> Iterator[None]:
    """An exclusive, crash-safe (flock) lock on one symbol's partition, across processes."""
    with file_lock(confined(lake, ".locks", f"{symbol}.lock")):
        yield


_READ: OrderedDict[Path, tuple[tuple[int, int, int], pd.DataFrame]] = OrderedDict()
_READ_LOCK = threading.Lock()
_READ_KEEP = 1024  # partitions kept (a 1,800-day partition is ~0.1 MiB in memory)


def _read_unchanged(path: Path) -> pd.DataFrame | None:
    """``pd.read_parquet(path)``, read once per process while the file stays as it was: every
    write replaces a partition (``atomic_write_parquet``), which changes its inode, so a file
    with the inode, size and mtime of a read is that read's file. None when it does not exist.

    A daily run reads each partition in validation, in the store, in issuing and in scoring;
    the store keeps what it wrote as the next read (a test checks that a read of the file
    returns that frame, dtypes included).
    """
    frame = _shared_read(path)
    return None if frame is None else frame.copy()


def _shared_read(path: Path) -> pd.DataFrame | None:
    """``_read_unchanged`` without the copy: the frame the cache keeps, not to be changed."""
    try:
        key = file_state(path)
    except FileNotFoundError:
        return None
    with _READ_LOCK:
        kept = _READ.get(path)
        if kept is not None and kept[0] == key:
            _READ.move_to_end(path)
            return kept[1]
    frame = read_parquet(path)
    _remember(path, frame, key)  # keeps a copy
    return frame


def _remember(path: Path, frame: pd.DataFrame, key: tuple[int, int, int] | None = None) -> None:
    """Keep ``frame`` as what reading ``path`` (as it is now) returns."""
    key = key or file_state(path)
    with _READ_LOCK:
        _READ[path] = (key, frame.copy())
        while len(_READ) > _READ_KEEP:
            _READ.popitem(last=False)


def read_partition(lake: Path, symbol: str, as_of: date | None = None) -> pd.DataFrame:
    """Read one symbol's rows (only its partition), up to and including ``as_of``."""
    frame = _read_unchanged(partition_path(lake, symbol))
    if frame is None:
        return pd.DataFrame(columns=PRICE_COLUMNS)
    if as_of is not None:
        keep = frame["date"] <= pd.Timestamp(as_of)
        if not keep.all():  # as of the latest day (every daily read) there is nothing to drop
            frame = frame[keep]
    frame.insert(0, "symbol", symbol)  # after the filter: taking rows of strings costs most
    return frame.reset_index(drop=True)


def read_partitions(lake: Path, symbols: list[str],
                    columns: list[str] | None = None) -> pd.DataFrame:
    """The rows of these symbols' partitions (``columns`` of them, beside ``symbol``) in one
    frame, in the order given; symbols without rows have none. ``read_partition`` of each, then
    a concat, without a copy and a column of symbol strings per symbol (~0.8 s for 501)."""
    frames, names = [], []
    for symbol in symbols:
        frame = _shared_read(partition_path(lake, symbol))
        if frame is not None and len(frame):
            frames.append(frame if columns is None else frame[columns])
            names.append(symbol)
    if not frames:
        return pd.DataFrame(columns=["symbol", *(columns or PARTITION_COLUMNS)])
    rows = pd.concat(frames, ignore_index=True)  # new frames: the cache's stay as they are
    rows.insert(0, "symbol", pd.Series(np.repeat(np.array(names, dtype=object),
                                                 [len(f) for f in frames])))
    return rows


class Closes(NamedTuple):
    """A symbol's closes in date order: what scoring a forecast needs of its rows."""

    dates: np.ndarray  # datetime64[ns]
    closes: np.ndarray


def closes_of(prices: pd.DataFrame) -> Closes:
    """The dates and closes of ``prices``, in date order (the lake's order already)."""
    if not prices["date"].is_monotonic_increasing:
        prices = prices.sort_values("date")
    return Closes(prices["date"].to_numpy("datetime64[ns]"), prices["close"].to_numpy(float))


def read_closes(lake: Path, symbol: str, as_of: date | None = None) -> Closes:
    """``closes_of(read_partition(lake, symbol, as_of))`` without building a frame (the daily
    ledger pass scores 501 symbols: the frames cost ~1.4 ms each)."""
    frame = _shared_read(partition_path(lake, symbol))
    if frame is None:
        return Closes(np.array([], dtype="datetime64[ns]"), np.array([], dtype=float))
    closes = closes_of(frame)
    if as_of is None:
        return closes
    end = np.searchsorted(closes.dates, np.datetime64(as_of, "ns"), side="right")
    return Closes(closes.dates[:end], closes.closes[:end])


def symbols_under(root: Path, file_name: str) -> list[str]:
    """The symbols of ``root/symbol=S/<file_name>`` files, sorted (a stray directory is not
    one): the lake's prices, the forecast ledger."""
    if not root.is_dir():
        return []
    names = (p.name.removeprefix("symbol=") for p in root.glob("symbol=*")
             if (p / file_name).is_file())
    return sorted(filter(is_valid_symbol, names))


def lake_symbols(lake: Path) -> list[str]:
    """Every symbol with a partition in the lake, sorted."""
    return symbols_under(lake / "prices", PARTITION_FILE)


def symbol_groups(symbols: np.ndarray) -> tuple[np.ndarray, list[tuple[str, int, int]]]:
    """The order that puts each symbol's rows together (symbols sorted; a symbol's rows keep
    their order), and each symbol with its rows' [start, end) in that order. A missing symbol
    (None, NaN) has no group: its rows are left out of the order."""
    codes, names = pd.factorize(symbols, sort=True)  # a missing symbol: -1
    order = np.flatnonzero(codes >= 0)
    order = order[np.argsort(codes[order], kind="stable")]
    counts = np.bincount(codes[order], minlength=len(names))
    ends = np.cumsum(counts)
    return order, list(zip(map(str, names), (ends - counts).tolist(), ends.tolist(), strict=True))


def upsert_prices(frame: pd.DataFrame, lake: Path) -> list[PartitionRef]:
    """Merge new rows into each symbol's partition; a newer row for a (symbol, date) wins.

    The merge works on the partition's own columns: the symbol lives in the directory name
    (hive style), not in the file, and a column of symbol strings cost more than the merge.
    A ref's ``content_sha256`` is the sha256 of those columns' values (``frame_sha256``).
    """
    order, groups = symbol_groups(frame["symbol"].to_numpy())
    values = frame[PARTITION_COLUMNS].take(order)  # each symbol's rows together, in file order
    refs = []
    for symbol, start, end in groups:
        target = partition_path(lake, symbol)
        with partition_lock(lake, symbol):  # read-merge-write: no concurrent lost update
            old = _shared_read(target)  # the cache's frame: read, never changed
            stored = _merged(old, values.iloc[start:end])
            if old is None or len(old) != len(stored) or not old.equals(stored):
                atomic_write_parquet(stored, target)
                _remember(target, stored)  # what reading it back returns: issuing reads it next
        refs.append(PartitionRef(symbol, str(target), len(stored), frame_sha256(stored),
                                 stored["date"].iloc[0].date().isoformat(),
                                 stored["date"].iloc[-1].date().isoformat()))
    return refs


def _merged(old: pd.DataFrame | None, rows: pd.DataFrame) -> pd.DataFrame:
    """A partition's rows with ``rows`` merged in: a newer row for a date wins, in date order."""
    if old is None or not len(old):
        merged = rows.reset_index(drop=True)
    else:
        merged = pd.concat([old, rows], ignore_index=True)
    return (merged.drop_duplicates(subset=["date"], keep="last")
            .sort_values("date", kind="stable").reset_index(drop=True))


def partition_states(lake: Path, symbols: tuple[str, ...]) -> str:
    """Size and mtime of each symbol's partition, as one key (every write replaces a partition,
    so a changed one has a new key); a symbol validation refuses never has one."""
    states = []
    for symbol in filter(is_valid_symbol, symbols):
        path = partition_path(lake, symbol)
        stat = path.stat() if path.exists() else None
        states.append(f"{symbol}:{stat.st_size}:{stat.st_mtime_ns}" if stat else f"{symbol}:-")
    return "|".join(states)


def _stamp_path(lake: Path, staged: StagedPrices) -> Path:
    return lake / "_stamps" / f"{staged.source_sha256[:32]}.json"


def stored_sources(lake: Path) -> set[str]:
    """The first 16 hex characters of the sha256 of every source a store has written into the
    lake (its stamp exists); staged files are named by them (``tasks.data.ingest``)."""
    stamps = lake / "_stamps"
    return {p.name[:16] for p in stamps.glob("*.json")} if stamps.is_dir() else set()


def _lake_state_key(context: Any, parameters: dict[str, Any]) -> str:
    """Key a store on the lake state it starts from, so a lake changed since is re-merged.

    After a store, the partitions are in a state that the store itself produced; a stamp
    records it, and an unchanged lake maps back to the key of that store (a cache hit).
    """
    lake, staged = Path(parameters["lake"]), parameters["staged"]
    state = partition_states(lake, staged.symbols)
    stamp = _stamp_path(lake, staged)
    if stamp.exists():
        record = json.loads(stamp.read_text())
        if record["after"] == state:
            return record["before"]
    return state


def upsert_securities(securities: pd.DataFrame, lake: Path) -> Path:
    """Merge symbol -> name, sector into ``lake/securities.parquet`` (newer rows win)."""
    target = lake / SECURITIES_FILE
    old = pd.read_parquet(target) if target.exists() else securities.iloc[:0]
    merged = (pd.concat([old, securities], ignore_index=True)
              .drop_duplicates("symbol", keep="last").sort_values("symbol").reset_index(drop=True))
    if not target.exists() or not old.equals(merged):
        atomic_write_parquet(merged, target)
    return target


def store_and_stamp(staged: StagedPrices, lake: Path,
                    rows_path: str | None = None) -> list[PartitionRef]:
    """Upsert validated rows (and securities) and stamp before/after states for the cache key."""
    before = partition_states(lake, staged.symbols)
    refs = upsert_prices(pd.read_parquet(rows_path or staged.path), lake)
    if staged.securities_path:
        upsert_securities(pd.read_parquet(staged.securities_path), lake)
    stamp = _stamp_path(lake, staged)
    stamp.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(stamp, json.dumps({"before": before,  # never read half-written
                                         "after": partition_states(lake, staged.symbols)}))
    return refs


@task(name="store-prices", persist_result=True, **IO_RETRIES,
      cache_policy=BY_CONTENT + CacheKeyFnPolicy(cache_key_fn=_lake_state_key))
def store_prices_task(staged: StagedPrices, rows_path: str, lake: str) -> list[PartitionRef]:
    """Upsert validated rows (``rows_path``, named by content) into the lake."""
    refs = store_and_stamp(staged, Path(lake), rows_path)
    rows = sum(r.rows for r in refs)
    get_run_logger().info("lake holds %d symbol(s), %d rows: %s", len(refs), rows,
                          named_few([f"{r.symbol}: {r.rows} rows" for r in refs]))
    return refs
