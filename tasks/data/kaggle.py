"""Kaggle's NYSE dataset: its directory's files, securities.csv, split-like moves in prices.csv."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from tasks.core.errors import InputError
from tasks.core.symbols import upper_ascii
from tasks.data.files import open_input, plain_or_gzipped, read_header, readable_gzip

KAGGLE_PRICE_FILES = ("prices-split-adjusted.csv", "prices.csv")
SECURITIES_FILE = "securities.csv"
_SECURITIES_RENAME = {"Ticker symbol": "symbol", "Security": "name", "GICS Sector": "sector"}
# One-day close ratios that look like a split (n:1) or a reverse split (1:n), not a market move.
SPLIT_RATIOS = (1.5, 2.0, 3.0, 4.0, 5.0, 7.0, 8.0, 10.0, 15.0, 20.0)
SPLIT_TOLERANCE = 0.02


def kaggle_prices_file(directory: Path) -> Path:
    """The prices file of an unzipped Kaggle NYSE directory; split-adjusted wins over raw.

    Each may also be gzipped (``prices.csv.gz``); the plain file wins over its .gz beside it.
    """
    for name in KAGGLE_PRICE_FILES:
        found = plain_or_gzipped(directory, name)
        if found is not None:
            return found
    raise InputError(directory, "rule 'Kaggle dataset directory': holds neither "
                                f"{' nor '.join(KAGGLE_PRICE_FILES)} (plain or .gz)",
                     f"found: {', '.join(sorted(p.name for p in directory.iterdir())[:10])}")


def securities_file(directory: Path) -> Path | None:
    """A Kaggle directory's securities.csv (or securities.csv.gz), None when it has neither."""
    return plain_or_gzipped(directory, SECURITIES_FILE)


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
    header = read_header(path)
    missing = [c for c in _SECURITIES_RENAME if c not in header]
    if missing:
        raise InputError(path, f"rule 'securities columns': missing {missing}",
                         f"found header: {','.join(header)}")
    with readable_gzip(path), open_input(path) as handle:
        frame = pd.read_csv(handle, dtype=str, usecols=list(_SECURITIES_RENAME),
                            keep_default_na=False, encoding="utf-8-sig")
    frame = frame.rename(columns=_SECURITIES_RENAME)
    frame = frame.apply(lambda column: column.str.strip())
    frame["symbol"] = frame["symbol"].map(upper_ascii)
    return frame.drop_duplicates("symbol", keep="last").reset_index(drop=True)
