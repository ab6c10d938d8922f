"""Artifacts: the run's results as keyed Prefect artifacts, readable in the UI."""

from __future__ import annotations

import re
from pathlib import Path

from prefect import task
from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact

from tasks.caching import BY_CONTENT
from tasks.registry import RegisteredVersion


def artifact_key(*parts: str) -> str:
    """Prefect artifact keys allow lowercase letters, digits and dashes only."""
    return re.sub(r"[^a-z0-9-]+", "-", "-".join(parts).lower()).strip("-")


def summary_rows(results: list[RegisteredVersion]) -> list[dict]:
    """One row per symbol with plain Python numbers (what table artifacts accept)."""
    return [{
        "symbol": r.symbol, "version": r.version, "promoted": r.promoted,
        "rmse": round(float(r.metrics["rmse"]), 4),
        "naive_rmse": round(float(r.metrics["naive_rmse"]), 4),
        "rmse_vs_naive": round(float(r.metrics["rmse_vs_naive"]), 4),
        "directional_accuracy": round(float(r.metrics["directional_accuracy"]), 3),
        "test_window": f"{r.metrics['test_start']}..{r.metrics['test_end']}",
    } for r in results]


def publish_artifacts(results: list[RegisteredVersion]) -> None:
    """A summary table across symbols, each version's report, and a link to its HTML."""
    create_table_artifact(table=summary_rows(results), key="training-summary",
                          description="Per-symbol test metrics beside the naive baseline")
    for r in results:
        report = Path(r.path) / "report.md"
        create_markdown_artifact(markdown=report.read_text(), key=artifact_key(r.symbol, "report"),
                                 description=f"{r.symbol} version {r.version}")
        create_link_artifact(link=(Path(r.path) / "report.html").resolve().as_uri(),
                             link_text=f"{r.symbol} v{r.version} report.html",
                             key=artifact_key(r.symbol, "report-html"))


@task(name="publish-artifacts", cache_policy=BY_CONTENT, persist_result=True)
def publish_artifacts_task(results: list[RegisteredVersion]) -> None:
    """Publish the run's artifacts (a cache hit when no version is new)."""
    publish_artifacts(results)
