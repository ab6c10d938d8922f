"""Artifacts: the run's results as keyed Prefect artifacts, readable in the UI."""

from __future__ import annotations

import re
from pathlib import Path

from prefect import task
from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact

from tasks.core.atomic import atomic_write_text
from tasks.core.caching import BY_CONTENT
from tasks.core.hashing import short_key
from tasks.core.layout import Layout
from tasks.core.markdown import escape
from tasks.core.operations_config import MAX_REPORT_ARTIFACTS
from tasks.core.version_files import read_manifest
from tasks.registry.registry import RegisteredVersion
from tasks.reporting.images import inline_images
from tasks.reporting.provenance import provenance, provenance_text, run_summary, version_line


def artifact_key(*parts: str) -> str:
    """Prefect artifact keys allow lowercase letters, digits and dashes only."""
    return re.sub(r"[^a-z0-9-]+", "-", "-".join(parts).lower()).strip("-")


def _trained_on(result: RegisteredVersion) -> str:
    try:
        manifest = read_manifest(Path(result.path))
    except (OSError, ValueError):
        return "?"
    return "global" if manifest.global_model else "per-symbol"


def _round(value: object, digits: int) -> float | None:
    return None if value is None else round(float(value), digits)


def summary_rows(results: list[RegisteredVersion]) -> list[dict]:
    """One row per registered version with plain Python numbers (what table artifacts accept)."""
    rows = []
    for r in results:
        m = r.metrics
        linear = m.baselines.get("linear_regression")
        who = provenance(m)
        rows.append({
            "symbol": r.symbol, "version": r.version, "model": _trained_on(r),
            "promoted": r.promoted, "fallback": r.fallback,
            "rmse": round(m.rmse, 4), "naive_rmse": round(m.naive_rmse, 4),
            "rmse_vs_naive": round(m.rmse_vs_naive, 4),
            "directional_accuracy": round(float(m.directional_accuracy), 3),
            "shrink_alpha": _round(m.shrink_alpha, 3),
            "linear_rmse_vs_naive": _round(linear.rmse_vs_naive if linear else None, 4),
            "backtest_mean_rmse_vs_naive": _round(
                m.backtest.mean_rmse_vs_naive if m.backtest else None, 4),
            "point": who.point,
            "distribution": who.source,
            "crps_vs_constant": _round(who.crps_vs_constant, 4),
            "crps_vs_garch_t": _round(who.crps_vs_garch_t, 4),
            "coverage_80": _round(who.coverage_80, 3),
            "test_window": f"{m.test_start}..{m.test_end}",
            "reason": r.reason,
            "forecast": provenance_text(m),
        })
    return rows


def summary_markdown(rows: list[dict]) -> str:
    """The run-level summary as Markdown: who made each forecast (the console's words), the
    count of ranges by source, then the table (also written to the run's summary file)."""
    if not rows:
        return "# Training run summary\n\nNo models were registered.\n"
    columns = [c for c in rows[0] if c not in ("forecast", "reason")]  # said in full above
    lines = ["# Training run summary", ""]
    lines += ["- " + version_line(escape(row["symbol"]), row["version"], row["forecast"],
                                  row["promoted"], row["fallback"]) for row in rows]
    lines += ["", run_summary([r["promoted"] for r in rows], [r["distribution"] for r in rows],
                              sum(1 for r in rows if r["fallback"])),
              "",
              "RMSE / naive below 1.0 means the model beats \"tomorrow = today\"; CRPS ratios "
              "below 1.0 mean the range beats constant volatility / GARCH(1,1)-t.", "",
              "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join("–" if row[c] is None else escape(row[c]) for c in columns)
              + " |" for row in rows]
    return "\n".join(lines) + "\n"


def write_summary(rows: list[dict], markdown: str, csv_path: Path) -> None:
    """The run's per-symbol table as CSV (one row per version, every column) and its Markdown
    summary beside it (``Layout.run_summary``)."""
    import pandas as pd

    csv_path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(csv_path, pd.DataFrame(rows).to_csv(index=False))
    atomic_write_text(csv_path.with_suffix(".md"), markdown)


def publish_artifacts(results: list[RegisteredVersion], summary: Path | None = None) -> None:
    """A summary table across symbols (table and Markdown; also written to ``summary``, a CSV
    path, and the Markdown beside it), and each version's report and link.

    A market-sized run publishes the summary only: 501 reports with their plots would put
    ~100 MB into the Prefect database per run and bury the summary; every report.html is on
    disk, named in the summary's Markdown.
    """
    rows = summary_rows(results)
    create_table_artifact(table=rows, key="training-summary",
                          description="Per-symbol test metrics beside the naive baseline")
    markdown = summary_markdown(rows)
    if summary is not None:
        write_summary(rows, markdown, summary)
    if len(results) > MAX_REPORT_ARTIFACTS:
        markdown += (f"\n{len(results)} versions: per-version report artifacts are published "
                     f"for runs of at most {MAX_REPORT_ARTIFACTS}, and a larger run leaves its "
                     "plots to be drawn on request (`closecast report SYMBOL`, unless "
                     "`report.plots: always`). Reports on disk:\n\n"
                     + "\n".join(f"- {escape(r.symbol)} v{r.version}: "
                                  f"`{Path(r.path) / 'report.html'}`" for r in results) + "\n")
    create_markdown_artifact(markdown=markdown, key="training-summary-report",
                             description="Run-level summary across symbols")
    for r in results if len(results) <= MAX_REPORT_ARTIFACTS else ():
        report = Path(r.path) / "report.md"
        # plots as data URIs: the UI cannot follow report.md's relative plots/*.png links
        create_markdown_artifact(markdown=inline_images(report.read_text(), Path(r.path)),
                                 key=artifact_key(r.symbol, "report"),
                                 description=f"{r.symbol} version {r.version}")
        create_link_artifact(link=(Path(r.path) / "report.html").resolve().as_uri(),
                             link_text=f"{r.symbol} v{r.version} report.html",
                             key=artifact_key(r.symbol, "report-html"))


def summary_path(home: Path, results: list[RegisteredVersion]) -> Path:
    """Where a run's per-symbol table is: named by the versions it registered or re-found, so
    an identical rerun (a cache hit) names the same file."""
    key = short_key(*sorted(f"{r.symbol}:{r.version}" for r in results))
    return Layout(home).runs / key / "summary.csv"


@task(name="publish-artifacts", cache_policy=BY_CONTENT, persist_result=True)
def publish_artifacts_task(results: list[RegisteredVersion], home: str | None = None) -> None:
    """Publish the run's artifacts and write its summary table under the home (a cache hit
    when no version is new)."""
    publish_artifacts(results, summary_path(Path(home), results) if home is not None else None)
