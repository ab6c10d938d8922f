"""Live sources: prices fetched over the network behind a small Protocol (Yahoo via yfinance).

Tests swap the downloader for a fake (``YahooSource(download=fake)`` or by setting
``DOWNLOADER``); nothing here reaches the network unless yfinance itself is called.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
from prefect import get_run_logger, task
from prefect.cache_policies import INPUTS, CacheKeyFnPolicy

from tasks.core.atomic import atomic_write_parquet
from tasks.core.caching import CODE, IO_RETRIES, TASK_CODE
from tasks.core.errors import ClosecastError
from tasks.core.hashing import frame_sha256
from tasks.data.columns import PRICE_COLUMNS
from tasks.data.ingest import StagedPrices

Downloader = Callable[..., pd.DataFrame]
_YF_COLUMNS = {"Open": "open", "High": "high", "Low": "low", "Close": "close", "Volume": "volume"}


class SourceError(ClosecastError):
    """A source answered, but with something retrying cannot fix (unknown symbol, no rows)."""


class PriceSource(Protocol):
    """Anything that returns one symbol's normalised daily prices for a date range."""

    def fetch(self, symbol: str, start: date, end: date | None) -> pd.DataFrame: ...


def yfinance_download(**kwargs: Any) -> pd.DataFrame:
    """``yfinance.download``, imported only when a live download is asked for."""
    try:
        import yfinance
    except ImportError:
        raise SourceError("live Yahoo needs yfinance: pip install 'closecast[yahoo]'") from None
    frame = yfinance.download(**kwargs)
    if frame is None or frame.empty:
        # yfinance reports per-ticker failures in a dict instead of raising: a network failure
        # must surface as one (retried), while "no data / delisted" stays an empty answer.
        errors = getattr(getattr(yfinance, "shared", None), "_ERRORS", {}) or {}
        text = " ".join(str(v) for v in errors.values())
        if any(word in text.lower() for word in _TRANSIENT_WORDS):
            raise ConnectionError(f"yahoo download failed: {text[:300]}")
    return frame


_TRANSIENT_WORDS = ("timeout", "timed out", "connection", "temporarily", "rate limit", "429")


# The downloader YahooSource uses when none is given; tests replace it with a fake.
DOWNLOADER: Downloader = yfinance_download


class YahooSource:
    """Daily prices from Yahoo Finance through yfinance (close is split-adjusted, not dividends)."""

    def __init__(self, download: Downloader | None = None, timeout: float = 30.0) -> None:
        self.download = download
        self.timeout = timeout

    def fetch(self, symbol: str, start: date, end: date | None) -> pd.DataFrame:
        """Download one symbol; an empty answer means an unknown symbol (a permanent error)."""
        download = self.download or DOWNLOADER
        # yfinance's end is exclusive: ask for the day after, so ``end`` itself is included.
        try:
            raw = download(tickers=symbol, start=start.isoformat(),
                           end=(end + timedelta(days=1)).isoformat() if end else None,
                           auto_adjust=False, actions=False, progress=False, threads=False,
                           timeout=self.timeout)
        except OSError as error:  # retried; if it outlives the retries, the CLI names the source
            if error.filename is None:
                error.filename = f"yahoo:{symbol}"
            raise
        if raw is None or raw.empty:
            raise SourceError(f"yahoo: no prices for {symbol!r} from {start} to {end or 'today'} "
                              "(unknown or delisted symbol?); not retried")
        return normalise_yahoo_frame(raw, symbol)


def normalise_yahoo_frame(raw: pd.DataFrame, symbol: str) -> pd.DataFrame:
    """yfinance's frame (Date index, maybe (field, ticker) columns) as closecast's price frame."""
    if isinstance(raw.columns, pd.MultiIndex):
        raw = raw.xs(symbol, axis=1, level=-1) if symbol in raw.columns.get_level_values(-1) \
            else raw.droplevel(-1, axis=1)
    missing = [c for c in _YF_COLUMNS if c not in raw.columns]
    if missing:
        raise SourceError(f"yahoo: answer for {symbol!r} lacks columns {missing}")
    frame = raw[list(_YF_COLUMNS)].rename(columns=_YF_COLUMNS).astype("float64")
    frame["open"] = frame["open"].where(frame["open"] != 0, np.nan)  # Yahoo's 0 = no open
    dates = pd.DatetimeIndex(raw.index)
    if dates.tz is not None:
        dates = dates.tz_localize(None)
    frame["date"] = dates.normalize().astype("datetime64[ns]")
    frame["symbol"] = symbol
    frame = frame.dropna(subset=["open", "high", "low", "close", "volume"], how="all")
    return frame[PRICE_COLUMNS].reset_index(drop=True)


def fetch_prices(source: PriceSource, symbols: Sequence[str], start: date,
                 end: date | None) -> pd.DataFrame:
    """Every symbol's prices from a source, one frame in symbol order."""
    return pd.concat([source.fetch(s, start, end) for s in symbols], ignore_index=True)


def stage_download(source: PriceSource, symbols: Sequence[str], start: date, end: date | None,
                   staging: Path) -> StagedPrices:
    """Fetch symbols and stage them as Parquet, identified by the sha256 of the rows."""
    frame = fetch_prices(source, symbols, start, end)
    sha = frame_sha256(frame)
    target = atomic_write_parquet(frame, staging / f"yahoo-{sha[:16]}.parquet")
    label = f"yahoo:{','.join(symbols)}:{start}..{end or 'today'}"
    return StagedPrices(label, sha, str(target), len(frame), tuple(sorted(set(symbols))))


def require_live_request(symbols: Sequence[str], start: date | None) -> date:
    """Live Yahoo needs symbols and a start day; say so before anything runs."""
    if not symbols or start is None:
        raise SourceError("--format yahoo downloads live prices: give --symbols A,B and "
                          "--start YYYY-MM-DD")
    return start


def _fetch_day_key(context: Any, parameters: dict[str, Any]) -> str:
    """A download is identified by what was asked and the UTC day it was asked on."""
    return datetime.now(UTC).date().isoformat()


# Keyed on symbols + start + end + the fetch day: there is no file whose bytes could name it.
# A re-run on the same day reuses the download (no second hit on Yahoo); the next day fetches
# again, because yesterday's answer lacks the newest close.
BY_REQUEST_AND_DAY = INPUTS + CacheKeyFnPolicy(cache_key_fn=_fetch_day_key) + TASK_CODE + CODE


@task(name="fetch-yahoo", cache_policy=BY_REQUEST_AND_DAY, persist_result=True, **IO_RETRIES)
def fetch_yahoo_task(symbols: tuple[str, ...], start: date, end: date | None,
                     staging: str) -> StagedPrices:
    """Download from Yahoo and stage; timeouts and connection errors are retried with backoff."""
    staged = stage_download(YahooSource(), symbols, start, end, Path(staging))
    get_run_logger().info("fetched %s: %d rows", staged.source, staged.rows)
    return staged
