"""Deterministic generator of Kaggle-NYSE-shaped price data (dgawlik/nyse ``prices.csv`` layout).

The output mirrors the Kaggle file: columns ``date,symbol,open,close,low,high,volume`` in that
order, ISO dates, rows sorted by date then symbol. By default 501 symbols x 1,762 business days
(weekdays from 2010-01-04), i.e. 882,762 rows - a little more than Kaggle's 851,264, because
every symbol here has every day.

Prices are geometric random walks, one per symbol (its own start level, drift and volatility),
with overnight gaps between a close and the next open and intraday ranges around them, so that
``0 < low <= min(open, close)`` and ``max(open, close) <= high`` on every row. Volume is a
non-negative integer that rises on days with large moves. Everything is vectorised numpy; the
same seed always gives the same frame (and the same CSV bytes).

    python benchmarks/generate_kaggle.py OUT.csv [--symbols N] [--days N] [--seed S]
"""

from __future__ import annotations

import argparse
import string
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

KAGGLE_COLUMNS = ["date", "symbol", "open", "close", "low", "high", "volume"]
START_DATE = "2010-01-04"
PRICE_FLOOR = 0.01  # a cent: no generated price rounds to zero


def make_symbols(n_symbols: int, rng: np.random.Generator) -> np.ndarray:
    """``n_symbols`` distinct tickers of 1-4 capital letters, mostly 3 (like NYSE's), sorted."""
    letters = np.array(list(string.ascii_uppercase))
    lengths = (1, 2, 3, 4)
    pools = [26 ** k for k in lengths]
    if n_symbols > sum(pools):
        raise ValueError(f"at most {sum(pools)} symbols can be generated")
    counts = rng.multinomial(n_symbols, [0.02, 0.18, 0.6, 0.2])
    for i in range(len(lengths) - 1):  # a pool too small passes its excess to longer codes
        excess = max(0, counts[i] - pools[i])
        counts[i] -= excess
        counts[i + 1] += excess
    names = []
    for length, pool, count in zip(lengths, pools, counts, strict=True):
        codes = rng.choice(pool, size=count, replace=False)
        digits = np.stack(np.unravel_index(codes, (26,) * length), axis=1)
        names.extend("".join(row) for row in letters[digits])  # one per symbol, not per row
    return np.sort(np.array(names, dtype=object))


def generate(n_symbols: int = 501, n_days: int = 1762, seed: int = 0,
             decimals: int = 6) -> pd.DataFrame:
    """A Kaggle-shaped frame: ``n_symbols * n_days`` rows sorted by date, then symbol.

    ``date`` holds midnight timestamps (written as ``YYYY-MM-DD``); prices are rounded to
    ``decimals`` places (Kaggle's files carry 6) and volume is an ``int64``.
    """
    if n_symbols < 1 or n_days < 1:
        raise ValueError("n_symbols and n_days must be >= 1")
    rng = np.random.default_rng(seed)
    symbols = make_symbols(n_symbols, rng)
    dates = pd.bdate_range(START_DATE, periods=n_days)

    # Per-symbol parameters, shape (1, S): start level, daily drift and volatility, volume level.
    start = np.exp(rng.normal(3.4, 0.9, n_symbols))[None, :]          # median ~ $30
    drift = rng.normal(3e-4, 4e-4, n_symbols)[None, :]                 # ~ +8% a year on average
    vol = rng.uniform(0.008, 0.03, n_symbols)[None, :]                 # 13%..48% a year
    base_volume = np.exp(rng.normal(14.5, 1.0, n_symbols))[None, :]    # median ~ 2M shares

    # Daily arrays, shape (D, S): day-major, so a C-order ravel is sorted by date then symbol.
    shape = (n_days, n_symbols)
    log_return = drift - 0.5 * vol ** 2 + vol * rng.standard_t(5, shape) * np.sqrt(3 / 5)
    close = start * np.exp(np.cumsum(log_return, axis=0))
    previous_close = np.vstack([start, close[:-1]])
    open_ = previous_close * np.exp(0.25 * vol * rng.standard_normal(shape))  # overnight gap
    top = np.maximum(open_, close) * np.exp(0.5 * vol * np.abs(rng.standard_normal(shape)))
    bottom = np.minimum(open_, close) * np.exp(-0.5 * vol * np.abs(rng.standard_normal(shape)))
    # Rounding and the floor are monotone, so they keep low <= open, close <= high.
    prices = [np.maximum(np.round(values, decimals), PRICE_FLOOR)
              for values in (open_, close, bottom, top)]
    move = np.abs(np.log(close / previous_close)) / vol
    volume = np.floor(base_volume * (1 + 0.5 * move)
                      * np.exp(0.35 * rng.standard_normal(shape))).astype("int64")

    frame = pd.DataFrame({
        "date": np.repeat(dates.to_numpy().astype("datetime64[ns]"), n_symbols),
        "symbol": np.tile(symbols, n_days),
        "open": prices[0].ravel(),
        "close": prices[1].ravel(),
        "low": prices[2].ravel(),
        "high": prices[3].ravel(),
        "volume": volume.ravel(),
    })
    return frame[KAGGLE_COLUMNS]


def write_csv(path: str | Path, **kw) -> Path:
    """Generate (``generate(**kw)``) and write it as a Kaggle-style CSV: LF line ends, no index.

    pyarrow writes the body (~10x faster than ``DataFrame.to_csv``); the header is written by
    hand because pyarrow would quote its names. Dates come out as ``YYYY-MM-DD``.
    """
    return write_frame(generate(**kw), path)


def write_frame(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write a frame of ``generate``'s shape as a Kaggle-style CSV (see ``write_csv``)."""
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    table = table.set_column(0, "date", table.column("date").cast(pa.date32()))
    with open(path, "wb") as handle:
        handle.write((",".join(KAGGLE_COLUMNS) + "\n").encode())
        pa_csv.write_csv(table, handle, pa_csv.WriteOptions(include_header=False,
                                                             quoting_style="none"))
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="CSV file to write")
    parser.add_argument("--symbols", type=int, default=501)
    parser.add_argument("--days", type=int, default=1762)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--decimals", type=int, default=6)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    write_csv(args.out, n_symbols=args.symbols, n_days=args.days, seed=args.seed,
              decimals=args.decimals)
    print(f"wrote {args.out}: {args.symbols * args.days} rows in "  # noqa: T201
          f"{time.perf_counter() - started:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
