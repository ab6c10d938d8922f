"""Parse a price CSV's columns: floats read fast or text parsed strictly, dates, the symbol."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from tasks.core.errors import InputError, example_rows
from tasks.core.symbols import RULE as SYMBOL_RULE
from tasks.core.symbols import is_valid_symbol, upper_ascii
from tasks.data.columns import (
    ALIASES,
    NUMERIC_COLUMNS,
    PRICE_COLUMNS,
    REQUIRED,
    header_error,
    match_columns,
)
from tasks.data.files import input_stem, is_gzip, read_header, readable_gzip

log = logging.getLogger(__name__)


def _read_csv(path: Path, fmt: str, plain_numbers: bool = False) -> pd.DataFrame | None:
    """The file's known columns as text, renamed to their canonical names.

    With ``plain_numbers`` the numeric columns are parsed by the CSV reader itself (float64),
    ten times faster on a market file; None when any cell there is not a plain number (or the
    file does not parse): the text path then normalises it or says what is wrong.
    """
    header = read_header(path)
    found = match_columns(header)
    required = [*REQUIRED, "symbol"] if fmt == "kaggle" else list(REQUIRED)
    missing = [c for c in required if c not in found]
    if missing:
        raise header_error(path, f"rule 'required columns': missing {missing}", header)
    if fmt != "kaggle":
        found.pop("symbol", None)  # a Yahoo file's symbol is its name (or --symbols)
    dtypes = {name: "float64" if plain_numbers and canonical in NUMERIC_COLUMNS else str
              for canonical, name in found.items()}
    if fmt != "kaggle":  # the other columns too: one of them may name several symbols
        dtypes |= {name: str for name in dict.fromkeys(header) if name and name not in dtypes}
    try:
        with readable_gzip(path):  # pandas opens the file, decompressing a gzipped one
            raw = pd.read_csv(path, dtype=dtypes, usecols=list(dtypes),
                              compression="gzip" if is_gzip(path) else None,
                              keep_default_na=False, skipinitialspace=True, encoding="utf-8-sig")
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as error:
        if plain_numbers:
            return None
        raise InputError(path, f"rule 'readable CSV': {type(error).__name__}: "
                               f"{str(error).strip()[:300]}") from None
    if raw.empty:
        raise InputError(path, "rule 'has rows': the file has a header but no data rows")
    raw = raw.rename(columns={name: canonical for canonical, name in found.items()})
    raw.attrs["other_columns"] = [name for name in dtypes if name not in found.values()]
    raw.index = raw.index + 2  # 1-based line numbers in error messages (line 1 is the header)
    raw.index.name = "line"
    return raw


def read_table(path: Path, fmt: str, symbols: Sequence[str]) -> pd.DataFrame:
    """The rows as ``PRICE_COLUMNS``: numbers, symbols and dates parsed, absent columns NaN."""
    raw = _read_csv(path, fmt, plain_numbers=True)
    if raw is not None:  # every numeric cell a plain number (a market file, as a rule)
        frame = raw[[c for c in NUMERIC_COLUMNS if c in raw]].copy()
    else:
        raw, frame = _text_numbers(path, fmt, _read_csv(path, fmt))
    for column in NUMERIC_COLUMNS:
        if column not in frame:
            frame[column] = np.nan  # an optional column the file does not have
    zero_open = frame["open"] == 0
    if fmt == "yahoo-csv" and zero_open.any():
        # Yahoo writes 0 where it has no opening price; 0 is not a price, so mark it missing.
        log.warning("%s: %d row(s) with Open=0 (Yahoo's marker for a missing open) read as missing",
                    path, int(zero_open.sum()))
        frame.loc[zero_open, "open"] = float("nan")
    if fmt == "kaggle":
        # ASCII-only upper-casing: validation then refuses look-alikes instead of folding them.
        symbols_seen = raw["symbol"].str.strip()
        frame["symbol"] = symbols_seen.map({s: upper_ascii(s) for s in symbols_seen.unique()})
    else:
        refuse_several_symbols(path, raw)
        frame["symbol"] = _yahoo_symbol(path, symbols)
    frame["date"] = _to_dates(path, raw["date"])
    return frame[PRICE_COLUMNS]


def symbol_like_columns(raw: pd.DataFrame) -> dict[str, list[str]]:
    """Columns other than the price columns whose values look like several tickers: text,
    every value an upper-case symbol with a letter in it, two or more of them, each on two rows
    or more on average (e.g. ``Stock``: AAL, AAPL, ... in a market file) -> their values."""
    found = {}
    for column in raw.attrs.get("other_columns", []):
        text = raw[column].astype(str).str.strip()
        values = text[text != ""].unique()
        if 2 <= len(values) <= len(text) // 2 and all(
                is_valid_symbol(v) and any(c.isalpha() for c in v) for v in values):
            found[str(column)] = sorted(values)
    return found


def refuse_several_symbols(path: Path, raw: pd.DataFrame) -> None:
    """Bad input when a file read as one symbol (no accepted symbol column) has a column that
    names several: its rows would be taken as one symbol named after the file."""
    candidates = symbol_like_columns(raw)
    if not candidates:
        return
    column, values = next(iter(candidates.items()))
    shown = ", ".join(values[:5]) + (f" and {len(values) - 5} more" if len(values) > 5 else "")
    raise InputError(path, f"rule 'symbol column': column {column!r} holds {len(values)} "
                           f"different symbols ({shown}): the rows carry several symbols, and a "
                           "file without a symbol column is read as one symbol named after "
                           "the file",
                     f"rename that column to symbol (accepted names, any case: "
                     f"{', '.join(ALIASES['symbol'])}) and each row is read as the symbol it "
                     "names")


def _yahoo_symbol(path: Path, symbols: Sequence[str]) -> str:
    """The one symbol of a Yahoo export: --symbols if it names one, else the file name."""
    if len(symbols) == 1:
        return symbols[0]
    stem = input_stem(path)
    symbol = upper_ascii(stem.strip())
    if not is_valid_symbol(symbol):
        raise InputError(path, f"rule '{SYMBOL_RULE}' (a Yahoo export's symbol is its file "
                               "name)", f"file name gives {stem!r}: rename the file after "
                                        "the ticker (e.g. AAPL.csv) or pass --symbols AAPL")
    return symbol


def _text_numbers(path: Path, fmt: str,
                  raw: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A file read as text without Yahoo's all-null rows, and its numeric columns parsed
    strictly."""
    numeric = [c for c in NUMERIC_COLUMNS if c in raw]
    if fmt == "yahoo-csv":
        nulls = raw[numeric].apply(lambda col: col.str.strip().str.lower().isin(["null", ""]))
        all_null = nulls.all(axis=1)
        if all_null.any():
            log.warning("%s: dropped %d row(s) where every value is null (Yahoo's missing days): "
                        "%s", path, int(all_null.sum()),
                        ", ".join(raw.loc[all_null, "date"].head(5)))
            raw = raw[~all_null]
    return raw, _to_numbers(path, raw, numeric)


def _to_numbers(path: Path, raw: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Parse numeric columns strictly: empty or 'null' is missing, any other text is an error."""
    frame = pd.DataFrame(index=raw.index)
    bad = pd.Series(False, index=raw.index)
    for column in columns:
        # Most cells are plain numbers: parse them as they are; only the cells that do not parse
        # go through the slower normalisation (spaces, Nasdaq's "$123.45", missing markers)
        values = pd.to_numeric(raw[column], errors="coerce").astype("float64")
        retry = values.isna()
        if retry.any():
            text = raw.loc[retry, column].str.strip().str.removeprefix("$").str.strip()
            missing = text.str.lower().isin(["", "null", "nan", "na"])
            again = pd.to_numeric(text.where(~missing), errors="coerce").astype("float64")
            values[retry] = again
            bad[retry] = again.isna() & ~missing
        frame[column] = values
    if bad.any():
        raise InputError(path, f"rule 'numeric columns are numbers': {int(bad.sum())} row(s) "
                               f"have text in {columns}", example_rows(raw[bad]))
    return frame


def _to_dates(path: Path, text: pd.Series) -> pd.Series:
    """Parse ISO dates (with or without a time part) or M/D/YYYY, as Excel re-saves them."""
    text = text.str.strip()
    dates = pd.to_datetime(text, format="ISO8601", errors="coerce")
    if dates.isna().any():
        dates = dates.fillna(pd.to_datetime(text, format="%m/%d/%Y", errors="coerce"))
    if dates.isna().any():
        raise InputError(path, f"rule 'dates parse': {int(dates.isna().sum())} row(s) have "
                               "dates that are neither YYYY-MM-DD nor M/D/YYYY",
                         example_rows(text[dates.isna()].to_frame("date")))
    return dates.dt.normalize().astype("datetime64[ns]")
