"""Ingest: read a Kaggle NYSE or Yahoo CSV (or any file shaped like them) into one price frame.

A gzipped file reads as the plain one, whatever its name: its first bytes tell.

The normalised frame has columns ``symbol, date, open, high, low, close, volume``;
dates are midnight timestamps, prices and volume are floats. Only a date and a close are
required (plus a symbol column, or the file name as the symbol): open, high, low and volume
are optional and all-missing (NaN) when the file has no such column. Column names are matched
case-insensitively with common aliases (see ``tasks.data.columns.ALIASES``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from prefect import get_run_logger, task

from tasks.core.atomic import atomic_write_parquet
from tasks.core.caching import IO_RETRIES, by_file_content
from tasks.core.errors import ClosecastError, InputError
from tasks.core.hashing import files_sha256, short_key
from tasks.core.paths import confined
from tasks.core.symbols import normalize_symbols, shown_symbols
from tasks.data.columns import detect_format
from tasks.data.kaggle import kaggle_prices_file, price_warnings, read_securities, securities_file
from tasks.data.parsing import read_table

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
    frame = read_table(path, fmt, symbols)
    if symbols:
        missing = sorted(set(symbols) - set(frame["symbol"]))
        if missing:
            raise InputError(path, f"rule 'requested symbols present': no rows for {missing}",
                             f"symbols in file: {sorted(frame['symbol'].unique())[:20]}")
        frame = frame[frame["symbol"].isin(symbols)]
    # File order is kept: validation checks that each symbol's dates increase as written.
    frame = frame.reset_index(drop=True)
    if fmt == "kaggle":
        warnings = price_warnings(frame, path)
        for warning in warnings:
            log.warning(warning)
        frame.attrs["warnings"] = warnings
    return frame


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
