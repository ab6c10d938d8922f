"""Price columns and the header names that supply them; the file format a header shows."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from tasks.core.errors import InputError
from tasks.data.files import read_header

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
    # Kaggle's S&P 500 file (all_stocks_5yr.csv) calls its ticker column "Name"
    "symbol": ("symbol", "ticker", "ticker symbol", "name"),
    "open": ("open",),
    "high": ("high",),
    "low": ("low",),
    "close": ("close", "close/last", "adj close", "adjclose", "adjusted close"),
    "volume": ("volume", "vol"),
}
REQUIRED = ("date", "close")


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


def header_error(path: Path, rule: str, header: Sequence[str]) -> InputError:
    """Bad input: a header rule broken, with the accepted names and the header found."""
    return InputError(path, f"{rule} (accepted names, any case: {_accepted()}; "
                            "open, high, low and volume are optional)",
                      f"found header: {','.join(header) or '(empty)'}")


def detect_format(path: Path) -> str:
    """``kaggle`` when the file names its symbols in a column, ``yahoo-csv`` when only dated."""
    header = read_header(path)
    found = match_columns(header)
    # Decide on the distinctive column only, so a file missing some other column is reported
    # as exactly that, not as an unknown format.
    if "symbol" in found:
        return "kaggle"
    if "date" in found:
        return "yahoo-csv"
    raise header_error(path, "rule 'known header': need a date and a close column", header)
