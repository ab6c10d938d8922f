"""The daily flow, after the close: ingest -> validate -> store -> issue the next day's forecasts
-> score the forecasts whose day has come -> monitor (artifacts) -> retrain degraded symbols.
And its replay over past dates, point in time."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from flows.prices import store_new_prices
from flows.schedule import confine_deployment_run, ends_with_gc, with_scheduled_as_of
from tasks.core.config import RunConfig
from tasks.core.layout import Layout
from tasks.core.locks import home_shared
from tasks.core.operations_config import DegradationPolicy
from tasks.data.lake import PartitionRef
from tasks.housekeeping.retention import gc_task
from tasks.serving.forecasting import ledger_task, next_day_forecasts_task
from tasks.serving.ledger import ledger_symbols
from tasks.serving.monitor import MonitorRow, monitor_task, publish_monitor_task


@dataclass(frozen=True)
class DailyResult:
    """What one day did: forecasts issued, forecasts scored, the monitor, retrains started."""

    as_of: str
    issued: int
    added: int
    scored: int
    monitor: list[MonitorRow]
    retrained: dict[str, str] = field(default_factory=dict)


@task(name="latest-close", cache_policy=NO_CACHE)
def latest_close(partitions: list[PartitionRef]) -> date:
    """An ad-hoc run's as-of date: the latest day stored for its symbols."""
    return max(date.fromisoformat(p.last_date) for p in partitions)


@task(name="retrain", cache_policy=NO_CACHE)
def retrain_task(config: RunConfig, symbol: str, as_of: date, why: str) -> int | None:
    """Train ``symbol`` as of ``as_of`` (the training flow as a subflow); its new version."""
    from flows.training import train_flow

    get_run_logger().warning("%s degraded (%s): retraining as of %s", symbol, why, as_of)
    results = train_flow(config.model_copy(update={"symbols": (symbol,), "as_of": as_of}))
    return next((r.version for r in results if r.symbol == symbol), None)


@flow(name="closecast-daily")
def daily_flow(config: RunConfig = RunConfig(),  # noqa: B008 (frozen)
               policy: DegradationPolicy = DegradationPolicy()) -> DailyResult:  # noqa: B008
    """Forecast the next business day with each champion and score what has come true."""
    config = with_scheduled_as_of(config)  # a deployment's run: as of its scheduled date
    confine_deployment_run(config.home, (config.input_path,) if config.format != "yahoo" else ())
    layout = Layout(Path(config.home))
    with home_shared(layout.home_lock):  # gc removes nothing while a run uses the home
        result = forecast_and_score(config, policy, layout)
    if ends_with_gc(config):
        gc_task(str(layout.home), config.retention)
    return result


def forecast_and_score(config: RunConfig, policy: DegradationPolicy,
                       layout: Layout) -> DailyResult:
    """The daily flow's work, under the home lock."""
    log, home = get_run_logger(), str(config.home)
    partitions = store_new_prices(config, layout)
    as_of = config.as_of or latest_close(partitions)
    symbols = [p.symbol for p in partitions]
    forecasts = next_day_forecasts_task(home, symbols, as_of)
    watched = sorted(set(ledger_symbols(layout.lake)) & set(symbols)
                     | {f.symbol for f in forecasts})
    day = ledger_task(home, watched, as_of, forecasts)  # scores what came true, then appends
    report = monitor_task(home, watched, policy, as_of, day.ledgers)
    publish_monitor_task(home, report, report.retrain)
    retrained = {s: f"v{retrain_task(config, s, as_of, why)}: {why}"
                 for s, why in report.retrain.items()}
    log.info("as of %s: %d issued (%d new), %d scored, retrained: %s", as_of,
             len(day.forecasts), day.added, day.scored, ", ".join(retrained) or "none")
    return DailyResult(as_of.isoformat(), len(day.forecasts), day.added, day.scored,
                       report.rows, retrained)


@flow(name="closecast-replay")
def replay_flow(config: RunConfig, start: date, end: date,
                policy: DegradationPolicy = DegradationPolicy()) -> list[DailyResult]:  # noqa: B008
    """The daily flow as of each trading day in [start, end], in order (point in time)."""
    from flows.backfill import as_of_dates, input_trading_days
    from tasks.core.errors import InputError

    dates = as_of_dates(input_trading_days(config), start, end, "day")
    if not dates:
        raise InputError(config.input_path, f"rule 'trading days in range': no prices between "
                                            f"{start} and {end}")
    get_run_logger().info("replaying the daily flow over %d day(s): %s .. %s", len(dates),
                          dates[0], dates[-1])
    return [daily_flow(config.model_copy(update={"as_of": d}), policy) for d in dates]
