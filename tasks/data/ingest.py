"""Ingest: read a Kaggle NYSE or Yahoo CSV (or any file shaped like them) into one price frame.

A gzipped file reads as the plain one, whatever its name: its first bytes tell.

The normalised frame has columns ``symbol, date, open, high, low, close, volume``;
dates are midnight timestamps, prices and volume are floats. Only a date and a close are
required (plus a symbol column, or the file name as the symbol): open, high, low and volume
are optional and all-missing (NaN) when the file has no such column. Column names are matched
case-insensitively with common aliases (see ``ALIASES``).
"""

from __future__ import annotations

import gzip
import logging
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pandas as pd
from prefect import get_run_logger, task

from tasks.core.atomic import atomic_write_parquet
from tasks.core.caching import IO_RETRIES, by_file_content
from tasks.core.errors import ClosecastError, InputError, example_rows
from tasks.core.hashing import files_sha256, short_key
from tasks.core.paths import confined
from tasks.core.symbols import RULE as SYMBOL_RULE
from tasks.core.symbols import is_valid_symbol, normalize_symbols, shown_symbols, upper_ascii

PRICE_COLUMNS = ["symbol", "date", "open", "high", "low", "close", "volume"]
NUMERIC_COLUMNS = ["open", "high", "low", "close", "volume"]
KAGGLE_HEADER = ["date", "symbol", "open", "close", "low", "high", "volume"]
YAHOO_HEADER = ["Date", "Open", "High", "Low", "Close", "Adj Close", "Volume"]
# Accepted header names per column, compared case-insensitively with "_" read as a space.
# For the close, the first name present wins: Close (Yahoo's and Kaggle's close, split-adjusted
# only, consistent with their open/high/low) over Nasdaq's Close/Last over Adj Close (also
# adjusted for dividends), which is read only when a file has no plain close.
ALIASES: dict[str, tuple[str, ...]] = {
    "date": ("date", "datetime", "timestamp"),
    "symbol": ("symbol", "ticker", "ticker symbol"),
    "open": ("open",),
    "high": ("high",),
    "low": ("low",),
    "close": ("close", "close/last", "adj close", "adjclose", "adjusted close"),
    "volume": ("volume", "vol"),
}
REQUIRED = ("date", "close")
KAGGLE_PRICE_FILES = ("prices-split-adjusted.csv", "prices.csv")
SECURITIES_FILE = "securities.csv"
_SECURITIES_RENAME = {"Ticker symbol": "symbol", "Security": "name", "GICS Sector": "sector"}
# A gzip stream starts with these two bytes, whatever the file is called.
GZIP_MAGIC = b"\x1f\x8b"
# One-day close ratios that look like a split (n:1) or a reverse split (1:n), not a market move.
SPLIT_RATIOS = (1.5, 2.0, 3.0, 4.0, 5.0, 7.0, 8.0, 10.0, 15.0, 20.0)
SPLIT_TOLERANCE = 0.02

log = logging.getLogger(__name__)


def input_sha256(path: Path) -> str:
    """Hex sha256 of a file's bytes (the identity of an input, whatever its name or mtime)."""
    path = Path(path)
    return files_sha256(input_files(path), named=path.is_dir())


def input_files(path: Path) -> list[Path]:
    """The files an input reads: itself, or a Kaggle dataset directory's prices and securities."""
    if not path.is_dir():
        return [path]
    files = [kaggle_prices_file(path)]
    securities = securities_file(path)
    return files + [securities] if securities is not None else files


def kaggle_prices_file(directory: Path) -> Path:
    """The prices file of an unzipped Kaggle NYSE directory; split-adjusted wins over raw.

    Each may also be gzipped (``prices.csv.gz``); the plain file wins over its .gz beside it.
    """
    for name in KAGGLE_PRICE_FILES:
        found = _plain_or_gzipped(directory, name)
        if found is not None:
            return found
    raise InputError(directory, "rule 'Kaggle dataset directory': holds neither "
                                f"{' nor '.join(KAGGLE_PRICE_FILES)} (plain or .gz)",
                     f"found: {', '.join(sorted(p.name for p in directory.iterdir())[:10])}")


def securities_file(directory: Path) -> Path | None:
    """A Kaggle directory's securities.csv (or securities.csv.gz), None when it has neither."""
    return _plain_or_gzipped(directory, SECURITIES_FILE)


def _plain_or_gzipped(directory: Path, name: str) -> Path | None:
    for candidate in (directory / name, directory / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def is_gzip(path: Path) -> bool:
    """Whether a file holds a gzip stream (its first bytes, not its name, decide)."""
    with open(path, "rb") as handle:
        return handle.read(2) == GZIP_MAGIC


def input_stem(path: Path) -> str:
    """A file's name without its extension, looking through ``.gz``: AAPL.csv.gz -> AAPL."""
    name = Path(path).name
    if name.lower().endswith(".gz"):
        name = name[:-3]
    return Path(name).stem


def _open_input(path: Path) -> BinaryIO:
    """The file's bytes, decompressed when it is gzipped."""
    return gzip.open(path, "rb") if is_gzip(path) else open(path, "rb")


@contextmanager
def _readable_gzip(path: Path) -> Iterator[None]:
    """Turn a truncated or corrupt gzip stream into bad input (not an I/O fault to retry)."""
    try:
        yield
    except (EOFError, gzip.BadGzipFile, zlib.error) as error:
        kind = "zlib.error" if isinstance(error, zlib.error) else type(error).__name__
        raise InputError(path, "rule 'readable gzip': the compressed file is truncated or "
                               f"corrupt ({kind}: {str(error).strip()[:200]}); "
                               "re-download it or pass the uncompressed CSV") from None


def _key(name: str) -> str:
    return " ".join(name.strip().lower().replace("_", " ").split())


def match_columns(header: Sequence[str]) -> dict[str, str]:
    """Canonical column -> the header name that supplies it (aliases, any case)."""
    keys = {_key(h): h for h in reversed(header)}  # the first of duplicate names wins
    found = {}
    for canonical, names in ALIASES.items():
        name = next((n for n in names if n in keys), None)
        if name is not None:
            found[canonical] = keys[name]
    return found


def _accepted() -> str:
    return "; ".join(f"{c}: {', '.join(names)}" for c, names in ALIASES.items())


def _header_error(path: Path, rule: str, header: Sequence[str]) -> InputError:
    return InputError(path, f"{rule} (accepted names, any case: {_accepted()}; "
                            "open, high, low and volume are optional)",
                      f"found header: {','.join(header) or '(empty)'}")


def detect_format(path: Path) -> str:
    """``kaggle`` when the file names its symbols in a column, ``yahoo-csv`` when only dated."""
    header = _read_header(path)
    found = match_columns(header)
    # Decide on the distinctive column only, so a file missing some other column is reported
    # as exactly that, not as an unknown format.
    if "symbol" in found:
        return "kaggle"
    if "date" in found:
        return "yahoo-csv"
    raise _header_error(path, "rule 'known header': need a date and a close column", header)


def read_prices(path: Path, fmt: str | None = None, symbols: Sequence[str] = ()) -> pd.DataFrame:
    """Read and normalise one price file; raise InputError naming the file, rule and rows."""
    path = Path(path)
    if path.is_dir():
        path = kaggle_prices_file(path)
    symbols = list(normalize_symbols(symbols, "--symbols"))
    fmt = fmt or detect_format(path)
    if fmt not in ("kaggle", "yahoo-csv"):
        raise InputError(path, f"rule 'file format': {fmt!r} is not a file format "
                               "(use kaggle or yahoo-csv; live yahoo needs --symbols)")
    frame = _read_table(path, fmt, symbols)
    if symbols:
        missing = sorted(set(symbols) - set(frame["symbol"]))
        if missing:
            raise InputError(path, f"rule 'requested symbols present': no rows for {missing}",
                             f"symbols in file: {sorted(frame['symbol'].unique())[:20]}")
        frame = frame[frame["symbol"].isin(symbols)]
    # File order is kept: validation checks that each symbol's dates increase as written.
    frame = frame.reset_index(drop=True)
    if fmt == "kaggle":
        warning = split_warning(frame, path)
        if warning:
            log.warning(warning)
        frame.attrs["warnings"] = [warning] if warning else []
    return frame


def detect_splits(frame: pd.DataFrame) -> pd.DataFrame:
    """Days whose close moved from the day before by a split-like ratio (2:1, 3:1, 7:1, 1:2...)."""
    ordered = frame.sort_values(["symbol", "date"], kind="stable")
    by_symbol = ordered.groupby("symbol", sort=False)
    ratio = (by_symbol["close"].shift(1) / ordered["close"]).to_numpy(dtype="float64")
    with np.errstate(divide="ignore", invalid="ignore"):
        size = np.fmax(ratio, 1.0 / ratio)
    near = np.zeros(len(ordered), dtype=bool)
    for split in SPLIT_RATIOS:
        near |= np.abs(size / split - 1.0) <= SPLIT_TOLERANCE
    found = ordered.loc[near, ["symbol", "date"]].assign(
        previous=by_symbol["date"].shift(1)[near], ratio=ratio[near])
    return found.reset_index(drop=True)


def split_warning(frame: pd.DataFrame, path: Path) -> str | None:
    """A warning naming symbols and dates of split-like moves, or None when there are none."""
    splits = detect_splits(frame)
    if splits.empty:
        return None
    shown = ", ".join(
        f"{row.symbol} {row.previous.date()}..{row.date.date()} ({_ratio_text(row.ratio)})"
        for row in splits.head(10).itertuples())
    more = f" and {len(splits) - 10} more" if len(splits) > 10 else ""
    return (f"{path}: {len(splits)} one-day close move(s) look like stock splits: {shown}{more}. "
            "Kaggle's prices.csv is not split-adjusted, so a model would learn these as crashes; "
            "use prices-split-adjusted.csv from the same dataset.")


def _ratio_text(ratio: float) -> str:
    return f"{ratio:.2g}:1 split" if ratio >= 1 else f"1:{1 / ratio:.2g} reverse split"


def read_securities(directory: Path) -> pd.DataFrame | None:
    """Kaggle's securities.csv as ``symbol, name, sector``, or None when the directory has none."""
    path = securities_file(directory)
    if path is None:
        return None
    header = _read_header(path)
    missing = [c for c in _SECURITIES_RENAME if c not in header]
    if missing:
        raise InputError(path, f"rule 'securities columns': missing {missing}",
                         f"found header: {','.join(header)}")
    with _readable_gzip(path), _open_input(path) as handle:
        frame = pd.read_csv(handle, dtype=str, usecols=list(_SECURITIES_RENAME),
                            keep_default_na=False, encoding="utf-8-sig")
    frame = frame.rename(columns=_SECURITIES_RENAME)
    frame = frame.apply(lambda column: column.str.strip())
    frame["symbol"] = frame["symbol"].map(upper_ascii)
    return frame.drop_duplicates("symbol", keep="last").reset_index(drop=True)


def _read_header(path: Path) -> list[str]:
    if not path.exists():
        raise InputError(path, "rule 'file exists': no such file")
    if path.is_dir():
        raise InputError(path, "rule 'file is a CSV': this is a directory")
    with _readable_gzip(path), _open_input(path) as handle:
        first = handle.readline(4096)
    if not first.strip():
        raise InputError(path, "rule 'not empty': the file is empty")
    try:
        text = first.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(path, "rule 'UTF-8 text CSV': the file is not text",
                         f"first bytes: {first[:40]!r}") from None
    return [column.strip() for column in text.strip().split(",")]


def _read_csv(path: Path, fmt: str, plain_numbers: bool = False) -> pd.DataFrame | None:
    """The file's known columns as text, renamed to their canonical names.

    With ``plain_numbers`` the numeric columns are parsed by the CSV reader itself (float64),
    ten times faster on a market file; None when any cell there is not a plain number (or the
    file does not parse): the text path then normalises it or says what is wrong.
    """
    header = _read_header(path)
    found = match_columns(header)
    required = [*REQUIRED, "symbol"] if fmt == "kaggle" else list(REQUIRED)
    missing = [c for c in required if c not in found]
    if missing:
        raise _header_error(path, f"rule 'required columns': missing {missing}", header)
    if fmt != "kaggle":
        found.pop("symbol", None)  # a Yahoo file's symbol is its name (or --symbols)
    dtypes = {name: "float64" if plain_numbers and canonical in NUMERIC_COLUMNS else str
              for canonical, name in found.items()}
    try:
        with _readable_gzip(path):  # pandas opens the file, decompressing a gzipped one
            raw = pd.read_csv(path, dtype=dtypes, usecols=list(found.values()),
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
    raw.index = raw.index + 2  # 1-based line numbers in error messages (line 1 is the header)
    raw.index.name = "line"
    return raw


def _read_table(path: Path, fmt: str, symbols: Sequence[str]) -> pd.DataFrame:
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
        frame["symbol"] = _yahoo_symbol(path, symbols)
    frame["date"] = _to_dates(path, raw["date"])
    return frame[PRICE_COLUMNS]


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


@dataclass(frozen=True)
class StagedPrices:
    """A parsed input written to Parquet, identified by the sha256 of the source file."""

    source: str
    source_sha256: str
    path: str
    rows: int
    symbols: tuple[str, ...]
    securities_path: str | None = None
    warnings: tuple[str, ...] = ()


def stage_prices(path: Path, fmt: str | None, symbols: Sequence[str],
                 staging: Path) -> StagedPrices:
    """Parse an input file (or Kaggle directory) and write it, unvalidated, to staging Parquet."""
    path = Path(path)
    sha = input_sha256(path) if path.exists() else ""
    frame, securities = read_input(path, fmt, symbols)
    label = "_".join(symbols) or "all"
    if len(label) > 64:  # many symbols: a file name has at most 255 bytes
        label = short_key(label)
    stem = f"{sha[:16]}-{label}"
    target = atomic_write_parquet(frame, confined(staging, f"{stem}.parquet"))
    securities_path = (
        str(atomic_write_parquet(securities, confined(staging, f"{stem}-securities.parquet")))
        if securities is not None else None)
    return StagedPrices(str(path), sha, str(target), len(frame),
                        tuple(sorted(frame["symbol"].unique())), securities_path,
                        tuple(frame.attrs.get("warnings", [])))


def read_input(path: Path, fmt: str | None,
                 symbols: Sequence[str]) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """Prices (and a Kaggle directory's securities); whatever parsing raises is bad input.

    Only an I/O fault (OSError other than a permission refusal) escapes unchanged, so that the
    task retries it; retrying cannot fix a file's content.
    """
    try:
        frame = read_prices(path, fmt, symbols)
        return frame, read_securities(path) if path.is_dir() else None
    except ClosecastError:
        raise
    except PermissionError as error:
        raise InputError(path, f"rule 'readable file': {error.strerror or error}") from None
    except OSError:
        raise
    except Exception as error:  # noqa: BLE001 - any parse failure is the file's, not ours
        text = str(error).strip().splitlines()[0][:300] if str(error).strip() else ""
        raise InputError(path, f"rule 'readable prices': {type(error).__name__}: {text}") \
            from error


@task(name="ingest", cache_policy=by_file_content(input_sha256), persist_result=True, **IO_RETRIES)
def ingest_task(path: str, fmt: str | None, symbols: tuple[str, ...], staging: str) -> StagedPrices:
    """Parse the input file into staging (cached on the file's bytes; I/O retried)."""
    staged = stage_prices(Path(path), fmt, symbols, Path(staging))
    logger = get_run_logger()
    logger.info("ingested %s: %d rows, symbols %s", path, staged.rows,
                shown_symbols(staged.symbols))
    for warning in staged.warnings:
        logger.warning(warning)
    return staged
