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

from tasks.core.atomic import atomic_write_parquet, read_parquet
from tasks.core.locks import file_lock
from tasks.core.paths import confined
from tasks.data.lake import symbols_under
from tasks.distribution.quantile_scores import LEVELS, crps_from_quantiles, normal_quantiles

KEY = ["symbol", "as_of", "target_date", "version"]
BOUNDS = [f"{side}_{level}" for level in LEVELS for side in ("lower", "upper")]
ISSUE_COLUMNS = ["symbol", "as_of", "target_date", "horizon", "version", "base_date",
                 "base_close", "forecast", "median", *BOUNDS, "const_vol_sigma", "issued_at"]
SCORE_COLUMNS = ["actual_date", "actual", "error", "naive_error", "crps", "crps_const_vol",
                 *[f"covered_{level}" for level in LEVELS], "scored_at"]
COLUMNS = ISSUE_COLUMNS + SCORE_COLUMNS
DATES = ["as_of", "target_date", "base_date", "actual_date"]
STAMPS = ["issued_at", "scored_at"]


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


@functools.cache
def _empty_ledger() -> pd.DataFrame:
    frame = pd.DataFrame({c: pd.Series(dtype="float64") for c in COLUMNS})
    frame["symbol"] = frame["symbol"].astype("object")
    for column in [*DATES, *STAMPS]:
        frame[column] = pd.Series(dtype="datetime64[ns]" if column in DATES
                                  else "datetime64[ns, UTC]")
    return frame.astype({"horizon": "int64", "version": "int64"})


def empty_ledger() -> pd.DataFrame:
    """A ledger with no rows and the right column types (a copy of one built once: building
    it took longer than reading a stored ledger)."""
    return _empty_ledger().copy()


def read_ledger(lake: Path, symbol: str) -> pd.DataFrame:
    """One symbol's ledger (empty when it has none)."""
    path = ledger_path(lake, symbol)
    return read_parquet(path) if path.exists() else empty_ledger()


def ledger_symbols(lake: Path) -> list[str]:
    """Symbols that have a ledger."""
    return symbols_under(lake / "forecasts", "part.parquet")


def _write(path: Path, frame: pd.DataFrame) -> pd.DataFrame:
    """Write the ledger in (as_of, version) order; the frame written."""
    if list(frame.columns) != COLUMNS:
        frame = frame[COLUMNS]
    if not (frame["as_of"].is_monotonic_increasing and frame["as_of"].is_unique):
        frame = frame.sort_values(["as_of", "version"], kind="stable")  # already so, as a rule
    if not frame.index.equals(pd.RangeIndex(len(frame))):
        frame = frame.reset_index(drop=True)
    atomic_write_parquet(frame, path)
    return frame


def issued_rows(forecasts: list[IssuedForecast], issued_at: pd.Timestamp) -> pd.DataFrame:
    """Forecasts as ledger rows, not yet scored (one frame for all their symbols)."""
    new = pd.DataFrame([asdict(f) for f in forecasts], columns=ISSUE_COLUMNS[:-1])
    for column in DATES[:3]:
        new[column] = pd.to_datetime(new[column])
    new = new.assign(issued_at=issued_at, **{c: np.nan for c in SCORE_COLUMNS})
    new["actual_date"] = pd.Series(pd.NaT, index=new.index, dtype="datetime64[ns]")
    new["scored_at"] = pd.Series(pd.NaT, index=new.index, dtype="datetime64[ns, UTC]")
    return new.astype({"horizon": "int64", "version": "int64"})[COLUMNS]


def append_forecasts(lake: Path, forecasts: list[IssuedForecast],
                     issued_at: datetime | None = None) -> int:
    """Append forecasts not yet in the ledger; a key already there is left untouched.

    Returns how many rows were added (0 on a repeat: issuing is idempotent).
    """
    rows = issued_rows(forecasts, pd.Timestamp(issued_at or datetime.now(UTC)))
    return sum(update_ledger(lake, str(symbol), None, new, None).added
               for symbol, new in rows.groupby("symbol", sort=True))


class LedgerUpdate(NamedTuple):
    """What one pass over a symbol's ledger did, and the ledger as it stands after it."""

    added: int
    scored: int
    ledger: pd.DataFrame


def update_ledger(lake: Path, symbol: str, prices: pd.DataFrame | None,
                  new: pd.DataFrame | None, now: pd.Timestamp | None) -> LedgerUpdate:
    """One read-merge-write of a symbol's ledger: score its forecasts whose next close is in
    ``prices`` (``score_rows``, at ``now``), then append the rows of ``new`` (``issued_rows``)
    whose key it does not hold. Written at most once, atomically, under the ledger's lock.

    Scoring first scores nothing ``new`` could add: a new row's as-of is the day of ``prices``'
    last close, so its next close is not there yet.
    """
    with ledger_lock(lake, symbol):
        path = ledger_path(lake, symbol)
        old = read_parquet(path) if path.exists() else None
        frame, scored = old, 0
        if old is not None and prices is not None and old["scored_at"].isna().any():
            frame = score_rows(old, prices, now)
            scored = int(old["scored_at"].isna().sum() - frame["scored_at"].isna().sum())
        fresh = _new_keys(new, old) if new is not None else []
        if len(fresh):
            frame = fresh if frame is None or frame.empty else pd.concat([frame, fresh],
                                                                         ignore_index=True)
        if len(fresh) or scored:
            frame = _write(path, frame)
    return LedgerUpdate(len(fresh), scored, empty_ledger() if frame is None else frame)


def _keys(frame: pd.DataFrame) -> list[tuple]:
    return list(zip(*(frame[c].to_numpy() for c in KEY), strict=True))


def _new_keys(new: pd.DataFrame, old: pd.DataFrame | None) -> pd.DataFrame:
    """The rows of ``new`` whose key is in neither ``old`` nor an earlier row of ``new``."""
    seen = set() if old is None else set(_keys(old))
    keep = []
    for key in _keys(new):
        keep.append(key not in seen)
        seen.add(key)
    return new[np.array(keep, dtype=bool)]


def score_rows(rows: pd.DataFrame, prices: pd.DataFrame, now: pd.Timestamp) -> pd.DataFrame:
    """Score unscored rows whose next close after ``as_of`` is in ``prices`` (others untouched).

    The actual is the first close after the forecast's as-of date (the next session: if the
    target business day was a holiday, the session after it). Errors are forecast - actual.
    """
    rows = rows.copy(deep=False)  # copy on write: the caller's frame keeps its columns
    days, closes = _closes(prices)
    pending = np.flatnonzero(rows["scored_at"].isna().to_numpy())
    after = np.searchsorted(days, rows["as_of"].to_numpy()[pending], side="right")
    known = after < len(days)  # the first close after as_of has come
    at, after = pending[known], after[known]
    if not len(at):
        return rows
    actual = closes[after]

    def column(name: str) -> np.ndarray:
        return rows[name].to_numpy(float)[at]

    quantiles = np.column_stack([column(c) for c in [*BOUNDS, "median"]])
    distribution = [distribution_scores(q, b, s, a) for q, b, s, a in zip(
        quantiles, column("base_close"), column("const_vol_sigma"), actual, strict=True)]
    values = {"actual_date": days[after], "scored_at": now, "actual": actual,
              "error": column("forecast") - actual, "naive_error": column("base_close") - actual,
              **dict(zip(["crps", "crps_const_vol", *[f"covered_{x}" for x in LEVELS]],
                         np.array(distribution, dtype=float).T, strict=True))}
    for name, value in values.items():  # whole columns: a .loc per cell cost ~4 ms a symbol
        column_values = rows[name].array.copy()
        column_values[at] = value
        rows[name] = column_values
    return rows


def _closes(prices: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """The dates and closes of ``prices`` in date order (the lake's order already)."""
    if not prices["date"].is_monotonic_increasing:
        prices = prices.sort_values("date")
    return prices["date"].to_numpy(), prices["close"].to_numpy()


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
    return update_ledger(lake, symbol, prices, None,
                         pd.Timestamp(now or datetime.now(UTC))).scored


def const_vol_sigma(prices: pd.DataFrame) -> float:
    """Std of daily log returns over all rows given (the caller passes rows <= as_of)."""
    returns = np.diff(np.log(prices["close"].to_numpy(dtype=float)))
    return float(np.std(returns, ddof=1)) if len(returns) > 1 else float("nan")
