"""Backfill: one point-in-time training run per as-of date (trading days only), bounded.

Concurrency: each as-of date is a `train-as-of` task that runs `train_flow` as a subflow, submitted
to a ThreadPoolTaskRunner of ``max_concurrent`` workers. The bound is local and needs no server
object (a global concurrency limit would) and no deployment or worker (run_deployment would);
the default of 1 runs the dates one after the other, which is what 2 CPU cores want for Keras.
Idempotency comes from the task cache: a date whose data and config were trained before is all
cache hits and registers no new version.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path
from typing import Literal

import pandas as pd
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from tasks.core.config import RunConfig
from tasks.core.errors import InputError
from tasks.core.version_files import read_manifest
from tasks.registry.registry import RegisteredVersion

Every = Literal["day", "week", "month"]
_PERIOD = {"week": "W", "month": "M"}


@dataclass(frozen=True)
class BackfillRow:
    """What one as-of date gave one symbol: its version, and whether this backfill made it."""

    as_of: str
    symbol: str
    version: int
    new_version: bool
    promoted: bool
    rmse: float
    naive_rmse: float
    rmse_vs_naive: float
    data_end: str
    flow_run_id: str


def as_of_dates(trading_days: list[date], start: date, end: date, every: Every) -> list[date]:
    """Every trading day in [start, end], or the last trading day of each week or month in it."""
    days = pd.DatetimeIndex(sorted(set(trading_days)))
    days = days[(days >= pd.Timestamp(start)) & (days <= pd.Timestamp(end))]
    if every == "day" or days.empty:
        return [d.date() for d in days]
    last = pd.Series(days, index=days.to_period(_PERIOD[every])).groupby(level=0).max()
    return [d.date() for d in last]


def trading_days(config: RunConfig) -> list[date]:
    """Dates on which the run's input has prices for its symbols."""
    from tasks.data.ingest import read_prices

    frame = read_prices(config.input_path, config.format, config.symbols)
    return [d.date() for d in pd.DatetimeIndex(frame["date"].unique())]


def backfill_row(as_of: date, result: RegisteredVersion, flow_run_id: str) -> BackfillRow:
    """A summary row; the version is new when its manifest names this subflow run."""
    manifest = read_manifest(Path(result.path))
    m = result.metrics
    return BackfillRow(as_of.isoformat(), result.symbol, result.version,
                       manifest.flow_run_id == flow_run_id, result.promoted,
                       round(m.rmse, 4), round(m.naive_rmse, 4), round(m.rmse_vs_naive, 4),
                       manifest.as_of, flow_run_id)


trading_days_task = task(trading_days, name="trading-days", cache_policy=NO_CACHE)


def input_trading_days(config: RunConfig) -> list[date]:
    """Dates on which the run's input has prices for its symbols, read from the parse the
    first as-of date's run reuses (the cached ``ingest`` task's staged Parquet), not from a
    second parse of the file (4 s of a 501-symbol day's replay). A live download: as before."""
    if config.format == "yahoo":
        return trading_days_task(config)
    from flows.prices import staged_input
    from tasks.core.layout import Layout
    from tasks.core.locks import home_shared

    layout = Layout(Path(config.home))
    with home_shared(layout.home_lock):  # gc removes no staged file while it is read
        staged = staged_input(config, layout)
        days = pd.read_parquet(staged.path, columns=["date"])["date"].unique()
    return [d.date() for d in pd.DatetimeIndex(days)]


@task(name="train-as-of", cache_policy=NO_CACHE)
def train_as_of(config: RunConfig) -> list[BackfillRow]:
    """Run the training flow as of ``config.as_of`` (a subflow; its own tasks are cached)."""
    from flows.training import train_flow

    state = train_flow(config, return_state=True)
    run_id = str(state.state_details.flow_run_id)
    return [backfill_row(config.as_of, r, run_id) for r in state.result()]


def publish_summary(rows: list[BackfillRow]) -> None:
    """The backfill's summary as a keyed table artifact."""
    from prefect.artifacts import create_table_artifact

    create_table_artifact(table=[asdict(r) for r in rows], key="backfill-summary",
                          description="One row per as-of date and symbol")


@flow(name="closecast-backfill")
def backfill_flow(config: RunConfig, start: date, end: date,
                  every: Every = "week") -> list[BackfillRow]:
    """Train as of each trading date between start and end (per day, week or month)."""
    log = get_run_logger()
    dates = as_of_dates(input_trading_days(config), start, end, every)
    if not dates:
        raise InputError(config.input_path, f"rule 'trading days in range': no prices between "
                                            f"{start} and {end}")
    log.info("backfill of %d as-of date(s), every %s: %s .. %s", len(dates), every,
             dates[0], dates[-1])
    futures = [train_as_of.submit(config.model_copy(update={"as_of": d})) for d in dates]
    rows: list[BackfillRow] = []
    for i, (as_of, future) in enumerate(zip(dates, futures, strict=True), 1):
        done = future.result()
        rows.extend(done)
        log.info("as-of %d/%d %s: %s", i, len(dates), as_of, ", ".join(
            f"{r.symbol} v{r.version} ({'new' if r.new_version else 'unchanged'})" for r in done))
    publish_summary(rows)
    return rows


def run_backfill(config: RunConfig, start: date, end: date, every: Every,
                 max_concurrent: int = 1):
    """Run the backfill flow with at most ``max_concurrent`` as-of dates training at once."""
    from prefect.task_runners import ThreadPoolTaskRunner

    runner = ThreadPoolTaskRunner(max_workers=max_concurrent)
    bounded = backfill_flow.with_options(task_runner=runner)
    return bounded(config, start, end, every, return_state=True)


def format_table(rows: list[BackfillRow]) -> str:
    """The summary as aligned text for the terminal."""
    columns = ["as_of", "symbol", "version", "new_version", "promoted", "rmse", "naive_rmse",
               "rmse_vs_naive", "data_end"]
    frame = pd.DataFrame([asdict(r) for r in rows], columns=[*columns, "flow_run_id"])
    return frame[columns].to_string(index=False)
