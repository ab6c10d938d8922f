"""Validate: a Great Expectations 1.x suite, built in code, run on the normalised price frame."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from prefect import get_run_logger, task

from tasks.caching import BY_CONTENT
from tasks.errors import DataValidationError, example_rows
from tasks.ingest import PRICE_COLUMNS, StagedPrices

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

MAX_PRICE = 1e9  # an upper bound that rejects inf while admitting any real share price


@dataclass(frozen=True)
class Rule:
    """One readable rule and the GX expectation that checks it."""

    name: str
    expectation: object


def build_rules() -> list[Rule]:
    """The price suite: schema, non-null, positive finite prices, OHLC order, unique keys."""
    import great_expectations as gx

    e = gx.expectations
    rules = [Rule("schema: columns are exactly " + ",".join(PRICE_COLUMNS),
                  e.ExpectTableColumnsToMatchSet(column_set=PRICE_COLUMNS, exact_match=True))]
    for column in ("symbol", "date", "high", "low", "close", "volume"):
        rules.append(Rule(f"not null: {column}", e.ExpectColumnValuesToNotBeNull(column=column)))
    for column in ("open", "high", "low", "close"):
        rules.append(Rule(f"{column} is a finite price > 0",
                          e.ExpectColumnValuesToBeBetween(column=column, min_value=0,
                                                          strict_min=True, max_value=MAX_PRICE)))
    rules.append(Rule("volume is finite and >= 0",
                      e.ExpectColumnValuesToBeBetween(column="volume", min_value=0,
                                                      max_value=1e15)))
    for high, low in [("high", "low"), ("high", "open"), ("high", "close"),
                      ("open", "low"), ("close", "low")]:
        rules.append(Rule(f"{low} <= {high}", e.ExpectColumnPairValuesAToBeGreaterThanB(
            column_A=high, column_B=low, or_equal=True, ignore_row_if="either_value_is_missing")))
    rules.append(Rule("unique (symbol, date)",
                      e.ExpectCompoundColumnsToBeUnique(column_list=["symbol", "date"])))
    return rules


@dataclass(frozen=True)
class ValidationReport:
    """What validation found; ``failures`` holds readable lines, empty when the data passed."""

    success: bool
    rows: int
    evaluated: int
    failures: tuple[str, ...]
    result_path: str


def run_suite(frame: pd.DataFrame) -> tuple[list[tuple[str, int, list[int]]], dict]:
    """Run the suite; return (rule, unexpected count, row positions) per failed rule and raw JSON."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    batch_def = (context.data_sources.add_pandas("closecast")
                 .add_dataframe_asset("prices")
                 .add_batch_definition_whole_dataframe("all"))
    rules = build_rules()
    suite = context.suites.add(gx.ExpectationSuite(name="closecast-prices"))
    for rule in rules:
        rule.expectation.meta = {"rule": rule.name}
        suite.add_expectation(rule.expectation)
    batch = batch_def.get_batch(batch_parameters={"dataframe": frame.reset_index(drop=True)})
    result = batch.validate(suite, result_format={"result_format": "COMPLETE",
                                                  "unexpected_index_column_names": []})
    failed = []
    for outcome in result.results:
        # GX does not keep the suite's order in its results: match them by the rule in meta.
        rule_name = outcome.expectation_config.meta["rule"]
        if not outcome.success:
            info = outcome.result or {}
            count = int(info.get("unexpected_count") or 0)
            failed.append((rule_name, count, list(info.get("unexpected_index_list") or [])))
    return failed, result.to_json_dict()


def validate_prices(frame: pd.DataFrame, source: str, out_dir: Path) -> ValidationReport:
    """Validate a price frame; write the GX result JSON; raise DataValidationError on failure."""
    failed, raw = run_suite(frame)
    out_dir.mkdir(parents=True, exist_ok=True)
    result_path = out_dir / f"{Path(source).name}.result.json"
    result_path.write_text(json.dumps(raw, indent=1, default=str))
    lines = []
    positions = frame.reset_index(drop=True)
    for name, count, index in failed:
        rows = positions.iloc[[i for i in index[:5] if isinstance(i, int)]]
        detail = example_rows(rows) if len(rows) else ""
        lines.append(f"- rule '{name}' broken by {count} row(s)" + (f":\n{detail}" if detail else ""))
    report = ValidationReport(not failed, len(frame), len(raw.get("results", [])),
                              tuple(lines), str(result_path))
    if failed:
        raise DataValidationError(source, lines)
    return report


@task(name="validate", cache_policy=BY_CONTENT, persist_result=True)
def validate_task(staged: StagedPrices, out_dir: str) -> ValidationReport:
    """Validate staged prices; a failure is final (never retried) and stops the run."""
    report = validate_prices(pd.read_parquet(staged.path), staged.source, Path(out_dir))
    get_run_logger().info("validated %s: %d rows passed %d expectations", staged.source,
                          report.rows, report.evaluated)
    return report
