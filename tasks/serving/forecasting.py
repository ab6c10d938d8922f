"""Issue: each champion's next-business-day forecast as of a date, appended to the ledger."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from tasks.core.layout import Layout
from tasks.core.logs import named_few
from tasks.core.version_files import read_metrics
from tasks.data.lake import read_closes, read_partition
from tasks.forecaster.paths import forecast_fans
from tasks.registry.registry import read_champion
from tasks.serving.ledger import (
    BOUNDS,
    IssuedForecast,
    LedgerUpdate,
    by_symbol,
    const_vol_sigma,
    issued_rows,
    update_ledger,
)
from tasks.serving.predict import Champion, load_champion


@dataclass(frozen=True)
class Ready:
    """A symbol whose champion can forecast as of the day: the champion and its rows."""

    symbol: str
    champion: Champion
    prices: pd.DataFrame


def ready_to_forecast(layout: Layout, symbol: str, as_of: date,
                      log: logging.Logger | logging.LoggerAdapter) -> Ready | None:
    """The symbol's champion and its rows <= ``as_of``, when it may forecast the next day.

    None (and a log line saying why) when the lake has no close on ``as_of`` (a holiday, or the
    day's data is missing), when there is too little history, or when the champion was trained
    on data after ``as_of`` (its forecast would be in-sample, not a live forecast).
    """
    prices = read_partition(layout.lake, symbol, as_of)  # point in time: nothing after as_of
    if prices.empty or prices["date"].iloc[-1] != pd.Timestamp(as_of):
        log.info("%s: no close on %s in the lake; no forecast issued", symbol, as_of)
        return None
    champion = load_champion(layout.models, symbol)
    metrics = read_metrics(champion.path)
    if len(prices) < champion.forecaster.history_needed:
        log.warning("%s: cannot forecast as of %s: %d rows, need %d", symbol, as_of, len(prices),
                    champion.forecaster.history_needed)
        return None
    trained_through = date.fromisoformat(metrics.test_end)
    if trained_through > as_of:
        log.warning("%s: champion v%d was trained on data up to %s, after %s: a forecast would "
                    "be in-sample; none issued", symbol, champion.version, trained_through,
                    as_of)
        return None
    return Ready(symbol, champion, champion.forecaster.inputs(prices, layout.lake))


def to_issued(ready: Ready, as_of: date, frame: pd.DataFrame) -> IssuedForecast:
    """A ledger row from the champion's forecast frame (``forecaster.paths.forecast_fans``:
    ``date``, ``close`` and, with a distribution, ``median`` and ``lower_50 .. upper_95``; first
    row: horizon 1)."""
    first, prices = frame.iloc[0], ready.prices
    point = float(first["close"])
    extra = {c: float(first[c]) if c in first and pd.notna(first[c]) else np.nan
             for c in ["median", *BOUNDS]}
    if np.isnan(extra["median"]) and not np.isnan(extra["lower_50"]):
        extra["median"] = point  # a distribution's point forecast is its median
    return IssuedForecast(symbol=ready.symbol, as_of=as_of, target_date=first["date"].date(),
                          horizon=1, version=ready.champion.version,
                          base_date=prices["date"].iloc[-1].date(),
                          base_close=float(prices["close"].iloc[-1]), forecast=point,
                          const_vol_sigma=const_vol_sigma(prices), **extra)


def issue_forecasts(layout: Layout, symbols: list[str], as_of: date,
                    log: logging.Logger | logging.LoggerAdapter) -> list[IssuedForecast]:
    """Each symbol's champion forecast for the business day after ``as_of``, from rows <= as_of
    only; the symbols that share a network (a global model) are forecast in one call."""
    ready = [r for s in symbols if (r := ready_to_forecast(layout, s, as_of, log)) is not None]
    frames = forecast_fans([(r.champion.forecaster, r.prices) for r in ready], 1)
    return [to_issued(r, as_of, frame) for r, frame in zip(ready, frames, strict=True)]


def champions_among(models: Path, symbols: list[str]) -> list[str]:
    """The symbols that have a champion."""
    return [s for s in symbols if read_champion(models, s) is not None]


@dataclass(frozen=True)
class LedgerDay:
    """A day in the ledger: the forecasts made as of it, how many of them were new to the
    ledger, and how many earlier forecasts it scored."""

    forecasts: list[IssuedForecast]
    added: int
    scored: int
    # Each symbol's ledger as the pass left it: what the monitor reads, without reading it again.
    ledgers: dict[str, pd.DataFrame] = field(default_factory=dict, repr=False, compare=False)


@task(name="forecast-next-day", cache_policy=NO_CACHE)
def next_day_forecasts_task(home: str, symbols: list[str], as_of: date) -> list[IssuedForecast]:
    """Forecast the next business day for each symbol with a champion (``ledger_task`` records
    them)."""
    log, layout = get_run_logger(), Layout(Path(home))
    issued = issue_forecasts(layout, champions_among(layout.models, symbols), as_of, log)
    log.info("as of %s: %d forecast(s) made: %s", as_of, len(issued),
             named_few([f"{f.symbol} v{f.version} {f.target_date}: {f.forecast:.4f}"
                        for f in issued]) or "none")
    return issued


LEDGER_THREADS = 2  # a write's fsync releases the GIL (4 threads measured slower than 2 and 1)


def update_ledgers(lake: Path, symbols: list[str], as_of: date, new: pa.Table,
                   now: pd.Timestamp, threads: int = LEDGER_THREADS) -> dict[str, LedgerUpdate]:
    """``update_ledger`` of each of ``symbols`` and of each symbol in ``new`` (``issued_rows``),
    scored against its lake rows <= ``as_of``, on ``threads`` threads (each symbol's pass holds
    that symbol's lock: passes of different symbols share nothing); in symbol order."""
    rows = by_symbol(new)

    def update(symbol: str) -> LedgerUpdate:
        return update_ledger(lake, symbol, read_closes(lake, symbol, as_of), rows.get(symbol), now)

    names = sorted(set(symbols) | set(rows))
    with ThreadPoolExecutor(max_workers=threads) as pool:
        return dict(zip(names, pool.map(update, names), strict=True))


def ledger_frames(updates: dict[str, LedgerUpdate]) -> dict[str, pd.DataFrame]:
    """Each symbol's ledger after the pass, as ``read_ledger`` gives it: one conversion of all
    of them, sliced (a conversion per symbol cost ~1.4 ms)."""
    if not updates:
        return {}
    frame = pa.concat_tables([u.table for u in updates.values()]).to_pandas()
    ends = np.cumsum([u.table.num_rows for u in updates.values()])
    return {symbol: frame.iloc[end - u.table.num_rows:end].reset_index(drop=True)
            for (symbol, u), end in zip(updates.items(), ends, strict=True)}


@task(name="ledger", cache_policy=NO_CACHE)
def ledger_task(home: str, symbols: list[str], as_of: date,
                forecasts: list[IssuedForecast]) -> LedgerDay:
    """One pass over each symbol's ledger: score every earlier forecast whose next close is
    known as of ``as_of``, and append the day's ``forecasts`` (idempotent)."""
    lake, now = Layout(Path(home)).lake, pd.Timestamp(datetime.now(UTC))
    updates = update_ledgers(lake, symbols, as_of, issued_rows(forecasts, now), now)
    added = sum(u.added for u in updates.values())
    scored = sum(u.scored for u in updates.values())
    get_run_logger().info("as of %s: %d forecast(s) issued, %d new in the ledger; %d earlier "
                          "forecast(s) scored", as_of, len(forecasts), added, scored)
    return LedgerDay(forecasts, added, scored, ledger_frames(updates))
