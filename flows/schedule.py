"""What a deployment's run does differently: it trains as of its scheduled date, and it may
only touch the roots allowed for it."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from tasks.core.config import RunConfig
from tasks.core.paths import allowed_roots, require_within

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


def declared_home(parameters: dict) -> str | None:
    """The home a deployment declares in its own parameters (a training config's, or predict's)."""
    config = parameters.get("config")
    if isinstance(config, dict) and config.get("home"):
        return str(config["home"])
    return str(parameters["home"]) if parameters.get("home") else None


def deployment_defaults(deployment_id: str) -> dict:
    """The parameters a deployment was declared with (not the run's, which the UI can change)."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return dict(client.read_deployment(deployment_id).parameters or {})


def confine_deployment_run(home: Path | str, inputs: tuple[Path | str, ...] = ()) -> None:
    """A run started from a deployment (UI, API, schedule) reads and writes only under the roots
    allowed for it; parameters typed into the UI are untrusted. Ad-hoc CLI runs are not limited."""
    from prefect.runtime import deployment

    if deployment.id is None:
        return
    roots = allowed_roots([declared_home(deployment_defaults(deployment.id))])
    require_within("home", Path(home), roots)
    for path in inputs:
        require_within("input", Path(path), roots)


def ends_with_gc(config: RunConfig) -> bool:
    """Whether this flow run collects garbage at its end: retention on, and the run is a
    deployment's own (the daily or weekly schedule, or a UI run), not a subflow of one (the
    daily run's retrain) and not an ad-hoc command (``closecast gc`` is there for those)."""
    from prefect.context import FlowRunContext
    from prefect.runtime import deployment

    context = FlowRunContext.get()
    nested = context is not None and context.flow_run.parent_task_run_id is not None
    return config.retention.enabled and deployment.id is not None and not nested
