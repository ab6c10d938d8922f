"""The forecast ledger: every issued forecast, append-only, scored once when its day arrives.

``lake/forecasts/symbol=S/part.parquet`` holds one row per (symbol, as_of, target_date,
version). Issuing appends rows (an existing key is kept as it is); scoring fills the score
columns of rows whose next close is now known, once: a scored row is never rewritten, so the
ledger is point in time. Both read-merge-write under the symbol's ledger lock, atomically.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from tasks.core.atomic import atomic_write_table
from tasks.core.locks import file_lock
from tasks.core.paths import confined
from tasks.data.lake import Closes, closes_of, symbol_groups, symbols_under
from tasks.distribution.quantile_scores import LEVELS, crps_from_quantiles, normal_quantiles

KEY = ["symbol", "as_of", "target_date", "version"]
BOUNDS = [f"{side}_{level}" for level in LEVELS for side in ("lower", "upper")]
ISSUE_COLUMNS = ["symbol", "as_of", "target_date", "horizon", "version", "base_date",
                 "base_close", "forecast", "median", *BOUNDS, "const_vol_sigma", "issued_at"]
SCORE_COLUMNS = ["actual_date", "actual", "error", "naive_error", "crps", "crps_const_vol",
                 *[f"covered_{level}" for level in LEVELS], "scored_at"]
COLUMNS = ISSUE_COLUMNS + SCORE_COLUMNS
DATES = ["as_of", "target_date", "base_date", "actual_date"]


@dataclass(frozen=True)
class IssuedForecast:
    """One next-day forecast as the ledger stores it; bounds are NaN when there is no interval.

    ``const_vol_sigma`` is the std of daily log returns up to ``as_of``: the constant-volatility
    baseline issued beside the forecast, so that its score is point in time too.
    """

    symbol: str
    as_of: date
    target_date: date
    horizon: int
    version: int
    base_date: date
    base_close: float
    forecast: float
    median: float
    lower_50: float
    upper_50: float
    lower_80: float
    upper_80: float
    lower_95: float
    upper_95: float
    const_vol_sigma: float


def ledger_path(lake: Path, symbol: str) -> Path:
    """``lake/forecasts/symbol=S/part.parquet``, confined to the lake."""
    return confined(lake, "forecasts", f"symbol={symbol}", "part.parquet")


@contextmanager
def ledger_lock(lake: Path, symbol: str) -> Iterator[None]:
    """Exclusive lock on one symbol's ledger (issuing and scoring read-merge-write)."""
    with file_lock(confined(lake, ".locks", f"forecasts-{symbol}.lock")):
        yield


# The ledger's columns as stored and read: files written by earlier versions (dates in ms or
# us, strings as large_string) are cast to it on read, so every ledger has the same types.
SCHEMA = pa.schema(
    [pa.field("symbol", pa.string()), *[pa.field(c, pa.timestamp("ns")) for c in DATES[:2]],
     pa.field("horizon", pa.int64()), pa.field("version", pa.int64()),
     pa.field("base_date", pa.timestamp("ns")),
     *[pa.field(c, pa.float64()) for c in ISSUE_COLUMNS[6:-1]],
     pa.field("issued_at", pa.timestamp("ns", tz="UTC")),
     pa.field("actual_date", pa.timestamp("ns")),
     *[pa.field(c, pa.float64()) for c in SCORE_COLUMNS[1:-1]],
     pa.field("scored_at", pa.timestamp("ns", tz="UTC"))])


@functools.cache
def _empty_ledger() -> pd.DataFrame:
    return SCHEMA.empty_table().to_pandas()


def empty_ledger() -> pd.DataFrame:
    """A ledger with no rows and the right column types (a copy of one built once)."""
    return _empty_ledger().copy()


def _conform(table: pa.Table) -> pa.Table:
    """``table`` with the ledger's columns, in order, as ``SCHEMA`` types them."""
    if table.schema.names != COLUMNS:
        table = table.select(COLUMNS)
    return table if table.schema.equals(SCHEMA) else table.cast(SCHEMA)


def _read_table(path: Path) -> pa.Table | None:
    """The ledger file at ``path`` (None when there is none), conformed to ``SCHEMA``."""
    try:
        file = pq.ParquetFile(path)
    except FileNotFoundError:
        return None
    with file:
        return _conform(file.read())


def read_ledger(lake: Path, symbol: str) -> pd.DataFrame:
    """One symbol's ledger (empty when it has none)."""
    table = _read_table(ledger_path(lake, symbol))
    return empty_ledger() if table is None else table.to_pandas()


def ledger_symbols(lake: Path) -> list[str]:
    """Symbols that have a ledger."""
    return symbols_under(lake / "forecasts", "part.parquet")


def _write(path: Path, table: pa.Table) -> pa.Table:
    """Write the ledger in (as_of, version) order; the table written."""
    as_of = table["as_of"].to_numpy()
    if len(as_of) > 1 and not (as_of[1:] > as_of[:-1]).all():  # in order already, as a rule
        table = table.sort_by([("as_of", "ascending"), ("version", "ascending")])  # stable
    atomic_write_table(table, path)
    return table


def issued_rows(forecasts: list[IssuedForecast], issued_at: pd.Timestamp) -> pa.Table:
    """Forecasts as ledger rows, not yet scored (one table for all their symbols)."""
    new = pd.DataFrame([asdict(f) for f in forecasts], columns=ISSUE_COLUMNS[:-1])
    for column in DATES[:3]:
        new[column] = pd.to_datetime(new[column])
    new = new.assign(issued_at=issued_at, **{c: np.nan for c in SCORE_COLUMNS})
    new["actual_date"] = pd.Series(pd.NaT, index=new.index, dtype="datetime64[ns]")
    new["scored_at"] = pd.Series(pd.NaT, index=new.index, dtype="datetime64[ns, UTC]")
    new = new.astype({"horizon": "int64", "version": "int64"})[COLUMNS]
    return pa.Table.from_pandas(new, schema=SCHEMA, preserve_index=False).replace_schema_metadata()


def by_symbol(rows: pa.Table) -> dict[str, pa.Table]:
    """The rows of each symbol (``issued_rows``), in the order given, by symbol."""
    order, groups = symbol_groups(rows["symbol"].to_numpy(zero_copy_only=False))
    rows = rows.take(order)
    return {symbol: rows.slice(start, end - start) for symbol, start, end in groups}


def append_forecasts(lake: Path, forecasts: list[IssuedForecast],
                     issued_at: datetime | None = None) -> int:
    """Append forecasts not yet in the ledger; a key already there is left untouched.

    Returns how many rows were added (0 on a repeat: issuing is idempotent).
    """
    rows = issued_rows(forecasts, pd.Timestamp(issued_at or datetime.now(UTC)))
    return sum(update_ledger(lake, symbol, None, new, None).added
               for symbol, new in by_symbol(rows).items())


class LedgerUpdate(NamedTuple):
    """What one pass over a symbol's ledger did, and the ledger as it stands after it."""

    added: int
    scored: int
    table: pa.Table

    @property
    def ledger(self) -> pd.DataFrame:
        """The ledger after the pass, as ``read_ledger`` gives it."""
        return self.table.to_pandas()


def update_ledger(lake: Path, symbol: str, closes: Closes | None,
                  new: pa.Table | None, now: pd.Timestamp | None) -> LedgerUpdate:
    """One read-merge-write of a symbol's ledger: score its forecasts whose next close is in
    ``closes`` (``score_table``, at ``now``), then append the rows of ``new`` (``issued_rows``)
    whose key it does not hold. Written at most once, atomically, under the ledger's lock.

    Scoring first scores nothing ``new`` could add: a new row's as-of is the day of the last
    close, so its next close is not there yet. Arrow tables throughout: the pandas frames
    a pass used to build cost ~10 ms a symbol, most of a 501-symbol day's ledger pass.
    """
    with ledger_lock(lake, symbol):
        path = ledger_path(lake, symbol)
        old = _read_table(path)
        table, scored = old, 0
        if old is not None and closes is not None and old["scored_at"].null_count:
            table = score_table(old, closes, now)
            scored = old["scored_at"].null_count - table["scored_at"].null_count
        fresh = _new_keys(new, old) if new is not None else None
        added = 0 if fresh is None else fresh.num_rows
        if added:
            table = fresh if table is None else pa.concat_tables([table, fresh]).combine_chunks()
        if added or scored:
            table = _write(path, table)
    return LedgerUpdate(added, scored, SCHEMA.empty_table() if table is None else table)


def _keys(table: pa.Table) -> list[tuple]:
    return list(zip(*(table[c].to_numpy(zero_copy_only=False) for c in KEY), strict=True))


def _new_keys(new: pa.Table, old: pa.Table | None) -> pa.Table:
    """The rows of ``new`` whose key is in neither ``old`` nor an earlier row of ``new``."""
    seen = set() if old is None else set(_keys(old))
    keep = []
    for key in _keys(new):
        keep.append(key not in seen)
        seen.add(key)
    return new.filter(pa.array(keep, type=pa.bool_()))


def score_table(table: pa.Table, closes: Closes, now: pd.Timestamp) -> pa.Table:
    """Score unscored rows whose next close after ``as_of`` is in ``closes`` (others untouched).

    The actual is the first close after the forecast's as-of date (the next session: if the
    target business day was a holiday, the session after it). Errors are forecast - actual.
    """
    days = closes.dates
    pending = np.flatnonzero(table["scored_at"].is_null().to_numpy(zero_copy_only=False))
    after = np.searchsorted(days, table["as_of"].to_numpy()[pending], side="right")
    known = after < len(days)  # the first close after as_of has come
    at, after = pending[known], after[known]
    if not len(at):
        return table
    actual = closes.closes[after]

    def column(name: str) -> np.ndarray:
        return table[name].to_numpy()[at]

    quantiles = np.column_stack([column(c) for c in [*BOUNDS, "median"]])
    distribution = [distribution_scores(q, b, s, a) for q, b, s, a in zip(
        quantiles, column("base_close"), column("const_vol_sigma"), actual, strict=True)]
    values = {"actual_date": days[after], "scored_at": now.to_datetime64(), "actual": actual,
              "error": column("forecast") - actual, "naive_error": column("base_close") - actual,
              **dict(zip(["crps", "crps_const_vol", *[f"covered_{x}" for x in LEVELS]],
                         np.array(distribution, dtype=float).T, strict=True))}
    for name, value in values.items():
        index = SCHEMA.get_field_index(name)
        filled = table[name].to_numpy().copy()
        filled[at] = value
        table = table.set_column(index, SCHEMA.field(index),
                                 pa.array(filled, type=SCHEMA.field(index).type, from_pandas=True))
    return table


def distribution_scores(quantiles: np.ndarray, base: float, sigma: float,
                        actual: float) -> list[float]:
    """CRPS (model, constant volatility) in log-return units, then coverage per level, of one
    forecast: its ``quantiles`` in ``BOUNDS`` order then its median, its base close and its
    constant-volatility sigma.

    The model's CRPS is NaN when it issued no quantiles; both CRPS use the same quantile
    approximation (tasks.distribution.quantile_scores), so their ratio compares like with like.
    """
    base, sigma, bounds = float(base), float(sigma), quantiles[:-1]
    realised = float(np.log(actual / base))
    model = (crps_from_quantiles(np.log(quantiles / base), realised)
             if np.isfinite(quantiles).all() and (quantiles > 0).all() else np.nan)
    baseline = (crps_from_quantiles(normal_quantiles(0.0, sigma), realised)
                if np.isfinite(sigma) and sigma > 0 else np.nan)
    covered = [float(low <= actual <= high) if np.isfinite([low, high]).all() else np.nan
               for low, high in zip(bounds[::2], bounds[1::2], strict=True)]
    return [model, baseline, *covered]


def score_ledger(lake: Path, symbol: str, prices: pd.DataFrame,
                 now: datetime | None = None) -> int:
    """Score the symbol's forecasts whose next close is in ``prices`` (read as of the run's date).

    Returns how many rows were scored now; rows scored before are never rewritten.
    """
    return update_ledger(lake, symbol, closes_of(prices), None,
                         pd.Timestamp(now or datetime.now(UTC))).scored


def const_vol_sigma(prices: pd.DataFrame) -> float:
    """Std of daily log returns over all rows given (the caller passes rows <= as_of)."""
    returns = np.diff(np.log(prices["close"].to_numpy(dtype=float)))
    return float(np.std(returns, ddof=1)) if len(returns) > 1 else float("nan")
