"""Per-symbol columns the suite checks: date step, business-day gap, days of history (lake too).

Per-symbol rules (dates increasing, gaps, history length) are made checkable column by column
by adding three derived columns, computed once with vectorised pandas; GX then checks those
like any other column, so its results and Data Docs name every rule.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from tasks.core.symbols import is_valid_symbol
from tasks.data.columns import PRICE_COLUMNS

STEP = "days_after_previous"  # days since the latest earlier row of the symbol, in file order
GAP = "business_days_since_previous"  # business days since the symbol's previous day
HISTORY = "days_of_history"  # the symbol's days (this input and the lake) up to as_of
DERIVED = [STEP, GAP, HISTORY]
STRING_DTYPE = pd.Series(["x"]).dtype.name  # "str" on pandas 3, "object" on pandas 2


def known_dates(lake: Path | None, symbols: list[str]) -> pd.DataFrame:
    """(symbol, date) already in the lake for these symbols: history the input extends."""
    return stored_rows(lake, symbols, ["date"])


def stored_rows(lake: Path | None, symbols: list[str],
                columns: list[str] | None = None) -> pd.DataFrame:
    """The lake's rows of these symbols (``columns`` of them, beside ``symbol``)."""
    from tasks.data.lake import read_partitions

    # An invalid symbol has no partition (its rows fail the symbol rule): never build its path.
    valid = [s for s in symbols if is_valid_symbol(s)] if lake is not None else []
    rows = read_partitions(lake, valid, columns) if valid else None  # the store reads them again
    if rows is None or rows.empty:
        return pd.DataFrame({"symbol": pd.Series(dtype=STRING_DTYPE),
                             "date": pd.Series(dtype="datetime64[ns]")})
    return rows


def unchanged_rows(checked: pd.DataFrame, stored: pd.DataFrame) -> np.ndarray:
    """Rows the lake already holds exactly (every price column equal; NaN equal to NaN), whose
    key the input has once and that keep their symbol's dates increasing: what validation
    checked when they were stored, and what storing them again does not change."""
    columns = [c for c in PRICE_COLUMNS if c not in ("symbol", "date")]
    none = np.zeros(len(checked), dtype=bool)
    if stored.empty or not all(c in checked and c in stored and
                               pd.api.types.is_float_dtype(checked[c]) for c in columns):
        return none  # a column missing, or not numbers: the whole input is checked
    symbols = pd.Index(stored["symbol"].unique())

    def keys(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        code = symbols.get_indexer(frame["symbol"]).astype("int64")
        dates = frame["date"].to_numpy("datetime64[D]")
        valid = (code >= 0) & ~np.isnat(dates)
        return code * 2**32 + np.where(valid, dates.astype("int64"), 0), valid

    stored_keys = pd.Index(keys(stored)[0])
    if not stored_keys.is_unique:
        return none
    checked_keys, valid = keys(checked)
    at = stored_keys.get_indexer(checked_keys)
    same = valid & (at >= 0)
    for column in columns:
        new = checked[column].to_numpy("float64")
        old = stored[column].to_numpy("float64")[np.maximum(at, 0)]
        same &= (new == old) | (np.isnan(new) & np.isnan(old))
    once = ~checked.duplicated(["symbol", "date"], keep=False).to_numpy()
    in_order = ~(checked[STEP].to_numpy("float64") < 0)
    return same & once & in_order


def with_history_columns(frame: pd.DataFrame, known: pd.DataFrame,
                         as_of: date | None = None) -> pd.DataFrame:
    """The frame plus the derived per-symbol columns the suite checks (vectorised, no row loop)."""
    keys = frame[["symbol", "date"]].reset_index(drop=True)
    running_max = keys.groupby("symbol")["date"].cummax()
    previous_max = running_max.groupby(keys["symbol"]).shift(1)
    step = (keys["date"] - previous_max).dt.days.astype("float64")
    days = (pd.concat([keys, known[["symbol", "date"]]], ignore_index=True).dropna()
            .drop_duplicates().sort_values(["symbol", "date"], kind="stable"))
    previous = days.groupby("symbol")["date"].shift(1)
    has_previous = previous.notna().to_numpy()
    gaps = np.full(len(days), np.nan)
    gaps[has_previous] = np.busday_count(
        previous[has_previous].to_numpy().astype("datetime64[D]"),
        days["date"][has_previous].to_numpy().astype("datetime64[D]"))
    days[GAP] = gaps
    counted = days if as_of is None else days[days["date"] <= pd.Timestamp(as_of)]
    codes, names = pd.factorize(keys["symbol"])  # a missing symbol: code -1, no history
    per_symbol = counted.groupby("symbol").size().reindex(names, fill_value=0).to_numpy("int64")
    history = pd.Series(np.where(codes >= 0, per_symbol[codes], 0), dtype="int64")
    gap = keys.merge(days, on=["symbol", "date"], how="left")[GAP]
    # Any column the normalised layout lacks or adds is kept visible, for the schema rule.
    layout = [c for c in PRICE_COLUMNS if c in frame] + \
        [c for c in frame.columns if c not in PRICE_COLUMNS and c not in DERIVED]
    out = frame.reset_index(drop=True)[layout].copy()
    out[STEP], out[GAP], out[HISTORY] = step.to_numpy(), gap.to_numpy(), history.to_numpy()
    return out
