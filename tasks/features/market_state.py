"""The market's state per day, from a run's universe point in time: what every symbol's network
may see of the market on its origin day (the market moves together; a per-symbol GARCH sees only
its own symbol).

A day's state reads that day's rows of the universe (and each symbol's row before, for its
return), all known at that day's close: a forecast as of day d reads the state of day d, the
day before the day it forecasts. Values are logs of

- ``market_abs``: the cross-sectional mean |log return| of the day,
- ``market_range``: the cross-sectional mean intraday range log(high / low) of the day (the mean
  |log return| where no symbol of the day has a valid high and low: a close-only file),
- ``market_dispersion``: the cross-sectional standard deviation of the day's log returns,

each floored at ``FLOOR`` (a day with one symbol has no dispersion). A symbol's rows carry the
state of their own dates (``with_market``); a day on which the symbol traded but the universe
had no return (its first day) is NaN, as a first day's return is.
"""

from __future__ import annotations

import functools
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from tasks.core.atomic import atomic_write_parquet
from tasks.core.hashing import frame_sha256
from tasks.core.paths import confined
from tasks.data.lake import partition_states, read_partition

MARKET_COLUMNS = ("market_abs", "market_range", "market_dispersion")
FLOOR = 1e-6  # log(1e-6) = -13.8: a day without a measurable move or spread


def symbol_moves(prices: pd.DataFrame) -> pd.DataFrame:
    """A symbol's ``date``, log return and log(high / low) per day (NaN where undefined: the
    first day, a missing or non-positive price, high below low)."""
    close = prices["close"].to_numpy(dtype="float64")
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.concatenate([[np.nan], np.diff(np.log(close))])[:len(close)]
        if {"high", "low"} <= set(prices.columns):
            high = prices["high"].to_numpy(dtype="float64")
            low = prices["low"].to_numpy(dtype="float64")
            spread = np.where((low > 0) & (high >= low), np.log(high / low), np.nan)
        else:
            spread = np.full(len(close), np.nan)
    return pd.DataFrame({"date": prices["date"].to_numpy(), "r": np.where(np.isfinite(r), r,
                                                                          np.nan),
                         "spread": spread})


def market_state(universe: Iterable[pd.DataFrame]) -> pd.DataFrame:
    """``MARKET_COLUMNS`` per date (the index, ascending) over the symbols' price frames."""
    moves = pd.concat([symbol_moves(p) for p in universe], ignore_index=True)
    if moves.empty:
        return pd.DataFrame(columns=list(MARKET_COLUMNS), index=pd.DatetimeIndex([], name="date"))
    moves["abs"] = moves["r"].abs()
    day = moves.groupby("date", sort=True)
    mean_abs = day["abs"].mean()
    spread = day["spread"].mean().where(lambda s: s.notna(), mean_abs)
    dispersion = day["r"].std(ddof=0)
    state = pd.DataFrame({"market_abs": mean_abs, "market_range": spread,
                          "market_dispersion": dispersion})
    return np.log(state.clip(lower=FLOOR)).where(state.notna())


def with_market(prices: pd.DataFrame, state: pd.DataFrame) -> pd.DataFrame:
    """``prices`` with the state of each of its dates in ``MARKET_COLUMNS`` (NaN where the
    state has no value for the date); the rows and their order unchanged."""
    joined = state.reindex(pd.DatetimeIndex(prices["date"]))
    out = prices.drop(columns=[c for c in MARKET_COLUMNS if c in prices.columns])
    for column in MARKET_COLUMNS:
        out[column] = joined[column].to_numpy(dtype="float64")
    return out


@dataclass(frozen=True)
class MarketRef:
    """A training run's market state, stored in the lake under its content hash, and the
    universe it was computed from (which a version keeps, to rebuild the state later)."""

    path: str
    universe: tuple[str, ...]


def universe_prices(lake: Path, universe: Sequence[str],
                    as_of: date | None) -> list[pd.DataFrame]:
    """The universe's lake rows up to ``as_of``, one frame per symbol (an empty one skipped)."""
    frames = (read_partition(lake, symbol, as_of) for symbol in universe)
    return [frame for frame in frames if not frame.empty]


def store_market_state(lake: Path, universe: Sequence[str], as_of: date | None) -> MarketRef:
    """The universe's state up to ``as_of`` written to ``lake/market/<hash>.parquet`` (once:
    the name is the content's)."""
    state = market_state(universe_prices(lake, universe, as_of))
    frame = state.reset_index()
    target = confined(lake, "market", f"{frame_sha256(frame)[:16]}.parquet")
    if not target.exists():
        atomic_write_parquet(frame, target)
    return MarketRef(str(target), tuple(universe))


def with_stored_state(prices: pd.DataFrame, ref: MarketRef | None) -> pd.DataFrame:
    """``prices`` with a stored state joined (``with_market``); as they are without one."""
    return prices if ref is None else with_market(prices, _stored_state(ref.path))


@functools.lru_cache(maxsize=4)
def _stored_state(path: str) -> pd.DataFrame:
    """A stored state, read once per process for all of a run's symbols (its name is its
    content's hash: the file never changes; ``with_market`` only reads it)."""
    return pd.read_parquet(path).set_index("date")


_STATES: OrderedDict[tuple, pd.DataFrame] = OrderedDict()
_STATES_LOCK = threading.Lock()
_STATES_KEEP = 4


def universe_state(lake: Path, universe: Sequence[str], as_of: date | None) -> pd.DataFrame:
    """The universe's state up to ``as_of`` from the lake as it is now (what a version's
    forecasts read: ``Forecaster.universe``); computed once per process while the universe's
    partitions stay as they are (a daily run forecasts every symbol from one state)."""
    key = (str(lake), as_of, partition_states(lake, tuple(universe)))
    with _STATES_LOCK:
        if key in _STATES:
            return _STATES[key]
    state = market_state(universe_prices(lake, universe, as_of))
    with _STATES_LOCK:
        _STATES[key] = state
        while len(_STATES) > _STATES_KEEP:
            _STATES.popitem(last=False)
    return state
