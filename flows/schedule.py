"""Point in time of a scheduled run: a deployment's run trains as of its scheduled date."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

from tasks.config import RunConfig

MARKET_TZ = ZoneInfo("America/New_York")


def market_date(moment: datetime) -> date:
    """The New York calendar date of a moment (the exchange's day, not UTC's)."""
    return moment.astimezone(MARKET_TZ).date()


def scheduled_date() -> date | None:
    """The scheduled date of the current flow run if a deployment created it, else None."""
    from prefect.runtime import deployment, flow_run

    if deployment.id is None:
        return None
    return market_date(flow_run.scheduled_start_time)


def with_scheduled_as_of(config: RunConfig) -> RunConfig:
    """Default ``as_of`` to the scheduled date for deployment runs; ad-hoc runs read all data."""
    if config.as_of is not None:
        return config
    as_of = scheduled_date()
    return config if as_of is None else config.model_copy(update={"as_of": as_of})
