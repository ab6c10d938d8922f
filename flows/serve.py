"""`closecast serve`: serve the deployments of prefect.yaml from this one process."""

from __future__ import annotations

import importlib
import logging
from pathlib import Path
from typing import Any

from flows.deployments import PREFECT_FILE, DeploymentSpec, load_deployments

log = logging.getLogger(__name__)


def load_flow(spec: DeploymentSpec) -> Any | None:
    """Import a deployment's flow lazily; None (with a warning) if its module does not exist."""
    try:
        module = importlib.import_module(spec.module)
    except ModuleNotFoundError as error:
        if error.name != spec.module:
            raise
        log.warning("deployment %s skipped: %s does not exist in this checkout",
                    spec.name, spec.entrypoint)
        return None
    return getattr(module, spec.function)


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
    """Runner deployments for every deployment in the file whose flow exists."""
    found = []
    for spec in load_deployments(path):
        flow = load_flow(spec)
        if flow is not None:
            found.append(to_runner_deployment(flow, spec))
    return found


def serve_deployments(path: Path = PREFECT_FILE, limit: int | None = None) -> None:
    """Register the deployments with the Prefect API and run their flow runs until stopped."""
    from prefect import serve

    deployments = runner_deployments(path)
    log.info("serving %s", ", ".join(d.name for d in deployments))
    serve(*deployments, limit=limit)
