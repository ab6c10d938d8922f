"""Kaggle's NYSE dataset (its directory's files, securities.csv) and one-day moves that look like
splits in unadjusted prices, told apart from bad prints."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from tasks.core.errors import InputError
from tasks.core.symbols import upper_ascii
from tasks.data.columns import KAGGLE_HEADER
from tasks.data.files import open_input, plain_or_gzipped, read_header, readable_gzip

KAGGLE_PRICE_FILES = ("prices-split-adjusted.csv", "prices.csv")
SECURITIES_FILE = "securities.csv"
_SECURITIES_RENAME = {"Ticker symbol": "symbol", "Security": "name", "GICS Sector": "sector"}
# One-day close ratios that look like a split (n:1) or a reverse split (1:n), not a market move.
SPLIT_RATIOS = (1.5, 2.0, 3.0, 4.0, 5.0, 7.0, 8.0, 10.0, 15.0, 20.0)
SPLIT_TOLERANCE = 0.02
SPLIT_OPEN_TOLERANCE = 0.05  # a split day opens at the new level too (ALK's: within 0.6%)
# A bad print: a close that moves by a third or more (as far as the smallest split ratio) and
# is back within 10% of the day before's close the next day.
BAD_PRINT_MOVE = 1.5
REVERT_TOLERANCE = 0.10


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


def _day_moves(frame: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """Rows by symbol then date, and per row: the close (and open) over the day before's close,
    and the next day's close over the day before's (NaN across symbols and at the ends)."""
    ordered = frame.sort_values(["symbol", "date"], kind="stable").reset_index(drop=True)
    same = ordered["symbol"].to_numpy()
    close = ordered["close"].to_numpy(dtype="float64")
    before = np.concatenate([[np.nan], close[:-1]])
    after = np.concatenate([close[1:], [np.nan]])
    before[1:][same[1:] != same[:-1]] = np.nan
    after[:-1][same[:-1] != same[1:]] = np.nan
    with np.errstate(divide="ignore", invalid="ignore"):
        return ordered, {"before": before, "after": after, "ratio": before / close,
                         "open_ratio": before / ordered["open"].to_numpy(dtype="float64"),
                         "reverts": after / before}


def _moved_by(ratio: np.ndarray, factor: float) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.fmax(ratio, 1.0 / ratio) >= factor


def _bad_print_days(moves: dict[str, np.ndarray]) -> np.ndarray:
    """A move by ``BAD_PRINT_MOVE`` or more whose next close is back near the close before it."""
    back = np.abs(moves["reverts"] - 1.0) <= REVERT_TOLERANCE
    return _moved_by(moves["ratio"], BAD_PRINT_MOVE) & back


def detect_bad_prints(frame: pd.DataFrame) -> pd.DataFrame:
    """Days whose close jumps by a third or more and is back the next day: a price recorded
    wrong for one day (LNT 2016-05-19: 17.87 between 35.35 and 35.91), not a split."""
    ordered, moves = _day_moves(frame)
    bad = _bad_print_days(moves)
    return ordered.loc[bad, ["symbol", "date", "close"]].assign(
        before=moves["before"][bad], after=moves["after"][bad]).reset_index(drop=True)


def detect_splits(frame: pd.DataFrame) -> pd.DataFrame:
    """Days whose close moved from the day before by a split-like ratio (2:1, 3:1, 7:1, 1:2...)
    and stayed there: a move the next day undoes is a bad print (``detect_bad_prints``), and
    a day whose open did not move by the ratio too is a market move (AMD 2016-04-22 opened
    22% up and closed 52% up), since a split re-prices the whole day."""
    ordered, moves = _day_moves(frame)
    ratio = moves["ratio"]
    size = np.where(_moved_by(ratio, 1.0), np.fmax(ratio, 1.0 / ratio), np.nan)
    near = np.zeros(len(ordered), dtype=bool)
    for split in SPLIT_RATIOS:
        near |= np.abs(size / split - 1.0) <= SPLIT_TOLERANCE
    bad = _bad_print_days(moves)
    near &= ~bad & ~np.concatenate([[False], bad[:-1]])  # the print and the day it reverts
    with np.errstate(invalid="ignore"):
        opened = np.abs(moves["open_ratio"] / ratio - 1.0) <= SPLIT_OPEN_TOLERANCE
    near &= opened | np.isnan(moves["open_ratio"])  # no open (a close-only file): the close
    previous = ordered.groupby("symbol", sort=False)["date"].shift(1)
    found = ordered.loc[near, ["symbol", "date"]].assign(previous=previous[near],
                                                         ratio=ratio[near])
    return found.reset_index(drop=True)


def looks_like_kaggle_raw(path: Path) -> bool:
    """Whether a file has the header of Kaggle's NYSE prices.csv (the unadjusted one, unless
    its name says it is prices-split-adjusted.csv)."""
    return (read_header(path) == KAGGLE_HEADER
            and "split-adjusted" not in Path(path).name.lower())


def price_warnings(frame: pd.DataFrame, path: Path) -> list[str]:
    """Warnings naming symbols and dates of bad prints and of split-like moves (none: [])."""
    warnings = []
    prints = detect_bad_prints(frame)
    if len(prints):
        shown = ", ".join(f"{row.symbol} {row.date.date()} close {row.close:g} between "
                          f"{row.before:g} and {row.after:g}"
                          for row in prints.head(10).itertuples())
        more = f" and {len(prints) - 10} more" if len(prints) > 10 else ""
        warnings.append(f"{path}: {len(prints)} one-day close move(s) revert the next day: "
                        f"{shown}{more}. These are bad prints (a price recorded wrong for one "
                        "day), not splits; a row whose close leaves its own high-low range "
                        "breaks a validation rule, and --on-invalid drop quarantines it.")
    splits = detect_splits(frame)
    if len(splits):
        shown = ", ".join(
            f"{row.symbol} {row.previous.date()}..{row.date.date()} ({_ratio_text(row.ratio)})"
            for row in splits.head(10).itertuples())
        more = f" and {len(splits) - 10} more" if len(splits) > 10 else ""
        advice = ("Kaggle's prices.csv is not split-adjusted, so a model would learn these as "
                  "crashes; use prices-split-adjusted.csv from the same dataset."
                  if looks_like_kaggle_raw(path) else
                  "If the prices are not split-adjusted, a model learns these as crashes: give "
                  "split-adjusted prices; if they are real moves, nothing needs doing.")
        warnings.append(f"{path}: {len(splits)} one-day close move(s) look like stock splits: "
                        f"{shown}{more}. {advice}")
    return warnings


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
