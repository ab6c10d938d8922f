"""`closecast serve`: serve the deployments of prefect.yaml from this one process."""

from __future__ import annotations

import importlib
import logging
from pathlib import Path
from typing import Any

from flows.deployments import PREFECT_FILE, DeploymentSpec, load_deployments

log = logging.getLogger(__name__)


def load_flow(spec: DeploymentSpec) -> Any:
    """Import a deployment's flow from its entrypoint (module path and function name)."""
    return getattr(importlib.import_module(spec.module), spec.function)


def to_runner_deployment(flow: Any, spec: DeploymentSpec) -> Any:
    """The served twin of a prefect.yaml deployment: same name, schedules and parameters."""
    from prefect.deployments.runner import EntrypointType
    from prefect.schedules import Cron

    return flow.to_deployment(
        name=spec.name, description=spec.description, tags=list(spec.tags),
        schedules=[Cron(s.cron, timezone=s.timezone) for s in spec.schedules],
        concurrency_limit=spec.concurrency_limit, parameters=spec.flow_parameters(),
        # by module path, so runs find the flow whatever the serving process's directory
        entrypoint_type=EntrypointType.MODULE_PATH)


def runner_deployments(path: Path = PREFECT_FILE) -> list[Any]:
    """Runner deployments for every deployment in the file."""
    return [to_runner_deployment(load_flow(spec), spec) for spec in load_deployments(path)]


def serve_deployments(path: Path = PREFECT_FILE, limit: int | None = None) -> None:
    """Register the deployments with the Prefect API and run their flow runs until stopped."""
    from prefect import serve

    deployments = runner_deployments(path)
    log.info("serving %s", ", ".join(d.name for d in deployments))
    serve(*deployments, limit=limit)
