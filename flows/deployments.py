"""The deployments of deployments/prefect.yaml, read and validated in one place."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field

from tasks.core.config import RunConfig

ROOT = Path(__file__).resolve().parent.parent
PREFECT_FILE = ROOT / "deployments" / "prefect.yaml"


class ScheduleSpec(BaseModel):
    """A cron schedule in an IANA timezone."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    cron: str
    timezone: str = "UTC"


class DeploymentSpec(BaseModel):
    """An entry of prefect.yaml's ``deployments:`` (keys only `prefect deploy` uses are ignored)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    name: str
    entrypoint: str = Field(pattern=r"^[\w/]+\.py:\w+$")
    description: str | None = None
    tags: tuple[str, ...] = ()
    schedules: tuple[ScheduleSpec, ...] = ()
    concurrency_limit: int | None = None
    config: RunConfig | None = None
    parameters: dict[str, Any] = {}

    @property
    def module(self) -> str:
        """``flows/training.py:train_flow`` -> ``flows.training``."""
        return self.entrypoint.split(":")[0].removesuffix(".py").replace("/", ".")

    @property
    def function(self) -> str:
        return self.entrypoint.split(":")[1]

    def flow_parameters(self) -> dict[str, Any]:
        """Parameters as the flow receives them; a training ``config`` fully spelled out."""
        if self.config is None:
            return dict(self.parameters)
        return {**self.parameters, "config": self.config.model_dump(mode="json")}


def parse_deployment(entry: dict[str, Any]) -> DeploymentSpec:
    """Validate one deployment entry; a ``config`` parameter must be a valid RunConfig."""
    parameters = dict(entry.get("parameters") or {})
    config = parameters.pop("config", None)
    return DeploymentSpec.model_validate({
        **entry, "parameters": parameters,
        "config": RunConfig.model_validate(config) if config is not None else None})


def load_deployments(path: Path = PREFECT_FILE) -> list[DeploymentSpec]:
    """Every deployment declared in a prefect.yaml, validated."""
    document = yaml.safe_load(Path(path).read_text()) or {}
    return [parse_deployment(entry) for entry in document.get("deployments") or []]
