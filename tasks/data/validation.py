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
from tasks.data.notes import note_lines
from tasks.data.price_suite import (
    EXAMPLE_ROWS,
    NOTE_RULES,
    Limits,
    Rule,
    absent_columns,
    build_rules,
    run_suite,
)


@dataclass(frozen=True)
class RuleResult:
    """One rule's outcome: how many rows broke it and a few of them, as text; a ``note`` (a gap,
    a short history) is reported and never fails."""

    name: str
    success: bool
    unexpected: int
    examples: str
    note: bool = False

    @property
    def failed(self) -> bool:
        return not self.success and not self.note


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
    notes: tuple[str, ...] = ()  # gaps and short histories: kept, said in one line each
    # the rows --on-invalid drop quarantines (would, under fail): exact when equal
    offending: tuple[int, int] = (0, 0)


@dataclass(frozen=True)
class Checked:
    """What the suite found: rule results, offending row positions per failed rule (every one,
    or the first ``COUNTED_ROWS``), GX's raw JSON, the Data Docs path, how many rows the lake
    held unchanged, and the notes (gaps, short histories) of the rows checked."""

    results: list[RuleResult]
    offending: dict[str, list[int]]
    raw: dict
    docs: str
    unchanged: int
    notes: tuple[str, ...]


def check_prices(frame: pd.DataFrame, source: str, out_dir: Path, limits: Limits = Limits(),
                 known: pd.DataFrame | None = None,
                 as_of: date | None = None, every_row: bool = True,
                 stored: pd.DataFrame | None = None) -> Checked:
    """Validate (rows the lake holds exactly as ``stored`` are left out: ``unchanged_rows``)."""
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
        note = rule.scope in NOTE_RULES
        results.append(RuleResult(rule.name, success, count, examples, note))
        if not success and not note:
            offending[rule.name] = index
    # notes of the rows checked: a gap among rows the lake holds was said when they were stored
    notes = note_lines(checked[~unchanged], known, limits.max_gap_business_days,
                       limits.min_history)
    return Checked(results, offending, raw, docs, int(unchanged.sum()), notes)


def offending_count(results: list[RuleResult], offending: dict[str, list[int]]) -> tuple[int, int]:
    """(fewest, most) rows that break a rule: exact (equal) when every failed rule's rows are
    all known, else at least those known and the largest count, at most the counts' sum."""
    failed = [r for r in results if r.failed]
    known = len(set().union(*offending.values())) if offending else 0
    if all(len(offending.get(r.name, ())) == r.unexpected for r in failed):
        return known, known
    return (max([known, *(r.unexpected for r in failed)]),
            sum(r.unexpected for r in failed))


def _visible(rows: pd.DataFrame, rule: Rule) -> pd.DataFrame:
    """Price columns, plus the derived column a per-symbol rule checks."""
    extra = {"gap": [GAP], "history": [HISTORY]}.get(rule.scope, [])
    if rule.name.startswith("dates increasing"):
        extra = [STEP]
    return rows[[c for c in PRICE_COLUMNS if c in rows] + extra]


def quarantine(frame: pd.DataFrame,
               offending: dict[str, list[int]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split rows into (kept, quarantined with the rules they broke)."""
    frame = frame.reset_index(drop=True)
    reasons = pd.Series("", index=frame.index)
    for name, index in offending.items():
        reasons.iloc[index] = reasons.iloc[index] + name + "; "
    out = reasons != ""
    dropped = frame[out].assign(rules=reasons[out].str.rstrip("; "))
    return frame[~out].reset_index(drop=True), dropped.reset_index(drop=True)


def validate_prices(frame: pd.DataFrame, source: str, out_dir: Path, limits: Limits = Limits(),
                    policy: Literal["fail", "drop"] = "fail", lake: Path | None = None,
                    as_of: date | None = None, kept_target: Path | None = None,
                    raise_on_failure: bool = True, skip_stored: bool = False) -> ValidationReport:
    """Validate; write GX results and Data Docs; fail (raise) or drop (quarantine) bad rows.

    Gaps and short histories are notes, not failures: their rows are kept (``tasks.data.notes``).
    With ``skip_stored`` (the flows), rows the lake already holds exactly are not checked again
    (``unchanged_rows``): a market file carries its whole history every day, and its rows were
    checked when they were stored. ``closecast validate`` checks every row.
    """
    symbols = sorted(frame["symbol"].dropna().unique())
    stored = stored_rows(lake, symbols) if skip_stored else None
    known = stored[["symbol", "date"]] if stored is not None else known_dates(lake, symbols)
    # Only drop needs every offending row; fail reports counts and a few examples.
    checked = check_prices(frame, source, out_dir, limits, known, as_of,
                           every_row=policy == "drop", stored=stored)
    result_path = confined(out_dir, f"{Path(source).name}.result.json")
    result_path.write_text(json.dumps(checked.raw, indent=1, default=str))
    lines = tuple(f"- rule '{r.name}' broken by {r.unexpected} row(s)"
                  + (f":\n{r.examples}" if r.examples else "") for r in checked.results
                  if r.failed)
    report = ValidationReport(not lines, len(frame), len(checked.results), lines,
                              str(result_path), checked.docs, tuple(checked.results), policy,
                              unchanged=checked.unchanged, notes=checked.notes,
                              offending=offending_count(checked.results, checked.offending))
    if lines and policy == "drop":
        report = _drop(report, frame, checked.offending, limits, known, as_of, out_dir,
                       kept_target)
    if raise_on_failure:
        enforce(report, source)
    return report


def already_quarantined(dropped: pd.DataFrame, folder: Path) -> Path | None:
    """An earlier quarantine file holding exactly these rows (a growing input file fed again
    drops the same bad rows each time): it is not written again. None when there is none."""
    if not folder.is_dir():
        return None
    sha = frame_sha256(dropped)
    for path in sorted(folder.glob("*.parquet")):
        try:
            earlier = pd.read_parquet(path)
        except (OSError, ValueError):
            continue  # a damaged file is not a match
        if len(earlier) == len(dropped) and frame_sha256(earlier) == sha:
            return path
    return None


def _drop(report: ValidationReport, frame: pd.DataFrame, offending: dict[str, list[int]],
          limits: Limits, known: pd.DataFrame, as_of: date | None, out_dir: Path,
          kept_target: Path | None) -> ValidationReport:
    """Move offending rows to validation/quarantine/ and write the rest to ``kept_target``;
    the notes are those of the rows kept (a dropped row may open a gap)."""
    source = Path(report.result_path).name.removesuffix(".result.json")
    kept, dropped = quarantine(frame, offending)
    target = (already_quarantined(dropped, out_dir / "quarantine")
              or atomic_write_parquet(dropped, confined(out_dir, "quarantine",
                                                        f"{source}.parquet")))
    kept_path = ""
    if kept_target is not None and len(kept):
        # Name the kept rows by their content, so a later store never mistakes one for another.
        sha = frame_sha256(kept)
        named = kept_target.with_name(f"{kept_target.stem}-{sha[:SHORT]}.parquet")
        kept_path = str(atomic_write_parquet(kept, named))
    notes = note_lines(with_history_columns(kept, known, as_of), known,
                       limits.max_gap_business_days, limits.min_history)
    return replace(report, quarantined=len(dropped), quarantine_path=str(target),
                   kept_path=kept_path, notes=notes)


def drop_advice(report: ValidationReport) -> str:
    """Under ``--on-invalid fail``: how many rows ``--on-invalid drop`` would quarantine."""
    fewest, most = report.offending
    if report.success or report.policy != "fail" or most == 0:
        return ""
    count = f"{fewest:,}" if fewest == most else f"between {fewest:,} and {most:,}"
    rest = (f"and store the other {report.rows - fewest:,}" if fewest == most < report.rows
            else "and store the rest" if fewest < report.rows
            else "and store nothing: every row breaks a rule")
    return (f"--on-invalid drop would quarantine {count} of the {report.rows:,} rows (to "
            f"validation/quarantine/, each with the rules it broke) {rest}; the default, "
            "--on-invalid fail, stores nothing")


def summary_text(report: ValidationReport, source: str) -> str:
    """A readable summary: each failed rule with its count and example rows, the notes (gaps,
    short histories: kept), then the outcome."""
    failed = [r for r in report.rules if r.failed]
    stored = (f" ({report.unchanged} of them in the lake already, unchanged: not checked "
              "again)" if report.unchanged else "")
    head = (f"{source}: {report.rows} rows{stored}, {report.evaluated} expectations, "
            f"{len(failed)} failed")
    lines = [head]
    for r in failed:
        lines.append(f"FAILED  {r.name}: {r.unexpected} row(s)")
        if r.examples:
            lines.extend("    " + line for line in r.examples.splitlines())
    lines.extend(f"NOTE    {note}" for note in report.notes)
    if report.quarantined:
        lines.append(f"quarantined {report.quarantined} row(s) to {report.quarantine_path}; "
                     f"the other {report.rows - report.quarantined} were kept")
    advice = drop_advice(report)
    if advice:
        lines.append(advice)
    lines.append(f"Data Docs: {report.docs_path}")
    return "\n".join(lines)


def enforce(report: ValidationReport, source: str) -> None:
    """Raise DataValidationError when the policy says stop: fail with failures, or nothing kept."""
    if report.success:
        return
    if report.policy == "fail":
        raise DataValidationError(source, list(report.failures), drop_advice(report))
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
    for note in report.notes:
        logger.info("%s: %s", staged.source, note)
    enforce(report, staged.source)
    return report
