"""Validate prices: run the suite, report each rule, then fail or quarantine the bad rows."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from prefect import get_run_logger, task
from prefect.artifacts import create_link_artifact, create_markdown_artifact

from tasks.core.atomic import atomic_write_parquet
from tasks.core.caching import BY_CONTENT
from tasks.core.errors import DataValidationError, example_rows
from tasks.core.hashing import SHORT, frame_sha256
from tasks.core.markdown import code_block
from tasks.core.paths import confined
from tasks.data.columns import PRICE_COLUMNS
from tasks.data.history_columns import (
    GAP,
    HISTORY,
    STEP,
    known_dates,
    stored_rows,
    unchanged_rows,
    with_history_columns,
)
from tasks.data.ingest import StagedPrices
from tasks.data.price_suite import (
    EXAMPLE_ROWS,
    SYMBOL_RULES,
    Limits,
    Rule,
    absent_columns,
    build_rules,
    run_suite,
)


@dataclass(frozen=True)
class RuleResult:
    """One rule's outcome: how many rows broke it and a few of them, as text."""

    name: str
    success: bool
    unexpected: int
    examples: str


@dataclass(frozen=True)
class ValidationReport:
    """What validation found and what was done about it."""

    success: bool
    rows: int
    evaluated: int
    failures: tuple[str, ...]
    result_path: str
    docs_path: str = ""
    rules: tuple[RuleResult, ...] = ()
    policy: str = "fail"
    quarantined: int = 0
    quarantine_path: str = ""
    kept_path: str = ""  # the rows to store: the staged file, or what drop left of it
    unchanged: int = 0  # rows the lake held already, exactly: not checked again


def check_prices(frame: pd.DataFrame, source: str, out_dir: Path, limits: Limits = Limits(),
                 known: pd.DataFrame | None = None,
                 as_of: date | None = None, every_row: bool = True,
                 stored: pd.DataFrame | None = None,
                 ) -> tuple[list[RuleResult], dict[str, list[int]], dict, str, int]:
    """Validate; return rule results, offending row positions per failed rule, raw JSON, docs,
    and how many rows were left out as ``stored`` already (``unchanged_rows``)."""
    known = known if known is not None else known_dates(None, [])
    checked = with_history_columns(frame, known, as_of)
    rules = build_rules(limits, absent_columns(frame))
    unchanged = (unchanged_rows(checked, stored) if stored is not None
                 else np.zeros(len(checked), dtype=bool))
    # The suite runs on the other rows; their index labels are their positions in ``checked``.
    outcomes, raw, docs = run_suite(checked[~unchanged], rules, out_dir, every_row)
    results, offending = [], {}
    for rule in rules:
        success, count, index = outcomes[rule.name]
        shown = checked.iloc[index[:EXAMPLE_ROWS]]
        examples = example_rows(_visible(shown, rule)) if len(shown) else ""
        results.append(RuleResult(rule.name, success, count, examples))
        if rule.scope in SYMBOL_RULES and not success:
            # A gap or a short history is the symbol's fault, not one row's: drop takes it all.
            symbols = checked["symbol"].iloc[index].unique()
            index = np.flatnonzero(checked["symbol"].isin(symbols).to_numpy()).tolist()
        if not success:
            offending[rule.name] = index
    return results, offending, raw, docs, int(unchanged.sum())


def _visible(rows: pd.DataFrame, rule: Rule) -> pd.DataFrame:
    """Price columns, plus the derived column a per-symbol rule checks."""
    extra = {"gap": [GAP], "history": [HISTORY]}.get(rule.scope, [])
    if rule.name.startswith("dates increasing"):
        extra = [STEP]
    return rows[[c for c in PRICE_COLUMNS if c in rows] + extra]


def quarantine(frame: pd.DataFrame, offending: dict[str, list[int]], limits: Limits,
               known: pd.DataFrame, as_of: date | None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split rows into (kept, quarantined with the rules they broke); symbols left short go too."""
    frame = frame.reset_index(drop=True)
    reasons = pd.Series("", index=frame.index)
    for name, index in offending.items():
        reasons.iloc[index] = reasons.iloc[index] + name + "; "
    kept = frame[reasons == ""]
    # Dropping rows can open a gap or leave a symbol too short: recheck those on what is kept.
    again = with_history_columns(kept, known, as_of)
    bad = (again[GAP] > limits.max_gap_business_days) | (again[HISTORY] < limits.min_history)
    short = set(again.loc[bad.to_numpy(), "symbol"])
    late = frame["symbol"].isin(short) & (reasons == "")
    reasons[late] = "symbol breaks gap/history rules once bad rows are dropped; "
    out = reasons != ""
    dropped = frame[out].assign(rules=reasons[out].str.rstrip("; "))
    return frame[~out].reset_index(drop=True), dropped.reset_index(drop=True)


def validate_prices(frame: pd.DataFrame, source: str, out_dir: Path, limits: Limits = Limits(),
                    policy: Literal["fail", "drop"] = "fail", lake: Path | None = None,
                    as_of: date | None = None, kept_target: Path | None = None,
                    raise_on_failure: bool = True, skip_stored: bool = False) -> ValidationReport:
    """Validate; write GX results and Data Docs; fail (raise) or drop (quarantine) bad rows.

    With ``skip_stored`` (the flows), rows the lake already holds exactly are not checked again
    (``unchanged_rows``): a market file carries its whole history every day, and its rows were
    checked when they were stored. ``closecast validate`` checks every row.
    """
    symbols = sorted(frame["symbol"].dropna().unique())
    stored = stored_rows(lake, symbols) if skip_stored else None
    known = stored[["symbol", "date"]] if stored is not None else known_dates(lake, symbols)
    # Only drop needs every offending row; fail reports counts and a few examples.
    results, offending, raw, docs, unchanged = check_prices(
        frame, source, out_dir, limits, known, as_of, every_row=policy == "drop", stored=stored)
    result_path = confined(out_dir, f"{Path(source).name}.result.json")
    result_path.write_text(json.dumps(raw, indent=1, default=str))
    lines = tuple(f"- rule '{r.name}' broken by {r.unexpected} row(s)"
                  + (f":\n{r.examples}" if r.examples else "") for r in results if not r.success)
    report = ValidationReport(not lines, len(frame), len(results), lines, str(result_path),
                              docs, tuple(results), policy, unchanged=unchanged)
    if lines and policy == "drop":
        report = _drop(report, frame, offending, limits, known, as_of, out_dir, kept_target)
    if raise_on_failure:
        enforce(report, source)
    return report


def _drop(report: ValidationReport, frame: pd.DataFrame, offending: dict[str, list[int]],
          limits: Limits, known: pd.DataFrame, as_of: date | None, out_dir: Path,
          kept_target: Path | None) -> ValidationReport:
    """Move offending rows to validation/quarantine/ and write the rest to ``kept_target``."""
    source = Path(report.result_path).name.removesuffix(".result.json")
    kept, dropped = quarantine(frame, offending, limits, known, as_of)
    target = atomic_write_parquet(dropped, confined(out_dir, "quarantine", f"{source}.parquet"))
    kept_path = ""
    if kept_target is not None and len(kept):
        # Name the kept rows by their content, so a later store never mistakes one for another.
        sha = frame_sha256(kept)
        named = kept_target.with_name(f"{kept_target.stem}-{sha[:SHORT]}.parquet")
        kept_path = str(atomic_write_parquet(kept, named))
    return replace(report, quarantined=len(dropped), quarantine_path=str(target),
                   kept_path=kept_path)


def summary_text(report: ValidationReport, source: str) -> str:
    """A readable summary: each failed rule with its count and example rows, then the outcome."""
    failed = [r for r in report.rules if not r.success]
    stored = (f" ({report.unchanged} of them in the lake already, unchanged: not checked "
              "again)" if report.unchanged else "")
    head = (f"{source}: {report.rows} rows{stored}, {report.evaluated} expectations, "
            f"{len(failed)} failed")
    lines = [head]
    for r in failed:
        lines.append(f"FAILED  {r.name}: {r.unexpected} row(s)")
        if r.examples:
            lines.extend("    " + line for line in r.examples.splitlines())
    if report.quarantined:
        lines.append(f"quarantined {report.quarantined} row(s) to {report.quarantine_path}; "
                     "the rest were kept")
    lines.append(f"Data Docs: {report.docs_path}")
    return "\n".join(lines)


def enforce(report: ValidationReport, source: str) -> None:
    """Raise DataValidationError when the policy says stop: fail with failures, or nothing kept."""
    if report.success:
        return
    if report.policy == "fail":
        raise DataValidationError(source, list(report.failures))
    if not report.kept_path:
        raise DataValidationError(source, [*report.failures,
                                           "- every row was quarantined: nothing to store"])


def summary_markdown(report: ValidationReport, source: str) -> str:
    """The summary as a Markdown artifact: untrusted names and rows stay inside their fence."""
    return code_block(summary_text(report, source))


def _publish(report: ValidationReport, source: str) -> None:
    create_markdown_artifact(markdown=summary_markdown(report, source),
                             key="validation-summary", description=f"Validation of {source}")
    create_link_artifact(link=Path(report.docs_path).resolve().as_uri(),
                         link_text="Great Expectations Data Docs", key="validation-data-docs")


@task(name="validate", cache_policy=BY_CONTENT, persist_result=True)
def validate_task(staged: StagedPrices, out_dir: str, limits: Limits = Limits(),
                  policy: Literal["fail", "drop"] = "fail", lake: str | None = None,
                  as_of: date | None = None) -> ValidationReport:
    """Validate staged prices; a failure is final (never retried) and stops the run.

    The cache key holds the staged content and the limits, not the lake state: the lake only
    grows, which can only turn a failed history or gap check into a pass, never the reverse.
    """
    kept_target = Path(staged.path).with_name(Path(staged.path).stem + "-kept.parquet")
    report = validate_prices(pd.read_parquet(staged.path), staged.source, Path(out_dir), limits,
                             policy, Path(lake) if lake else None, as_of, kept_target,
                             raise_on_failure=False, skip_stored=True)
    if report.success:
        report = replace(report, kept_path=staged.path)
    _publish(report, staged.source)
    logger = get_run_logger()
    logger.info("validated %s: %d rows (%d of them in the lake already, unchanged: not checked "
                "again), %d expectations, %d failed, %d quarantined", staged.source, report.rows,
                report.unchanged, report.evaluated, len(report.failures), report.quarantined)
    enforce(report, staged.source)
    return report
