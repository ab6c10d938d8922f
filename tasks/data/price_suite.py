"""The Great Expectations price suite built in code: its rules and limits, run in a file context."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from tasks.core.locks import file_lock
from tasks.core.logs import quiet_libraries
from tasks.core.operations_config import ValidationConfig
from tasks.core.symbols import PATTERN as SYMBOL_PATTERN
from tasks.core.symbols import RULE as SYMBOL_RULE
from tasks.core.training_config import FeatureConfig, SplitConfig, min_history_days
from tasks.data.columns import PRICE_COLUMNS
from tasks.data.history_columns import DERIVED, GAP, HISTORY, STEP, STRING_DTYPE

MAX_PRICE = 1e9  # an upper bound that rejects inf while admitting any real share price
# Facts about a symbol, not bad rows: a gap in its dates, too little history to train. The
# suite reports them (severity info in GX); they never fail validation nor quarantine a row.
NOTE_RULES = ("gap", "history")
SUITE = "closecast-prices"
OPTIONAL_COLUMNS = ("open", "high", "low", "volume")  # a close-only input is valid
EXAMPLE_ROWS = 5  # offending rows shown per broken rule
# Offending rows whose positions a failed run keeps per rule (``--on-invalid fail``): up to
# this many, the rows ``--on-invalid drop`` would quarantine are counted exactly.
COUNTED_ROWS = 1000


@dataclass(frozen=True)
class Rule:
    """A readable rule, the GX expectation that checks it, and what breaks it: a row, or (a
    note, ``NOTE_RULES``) a symbol's gap or short history."""

    name: str
    expectation: object
    scope: str = "row"


@dataclass(frozen=True)
class Limits:
    """The configurable bounds of the suite."""

    max_gap_business_days: int = 10
    min_history: int = 1


def absent_columns(frame: pd.DataFrame) -> tuple[str, ...]:
    """Optional columns the input did not have (ingest leaves them all-missing)."""
    return tuple(c for c in OPTIONAL_COLUMNS if c in frame and frame[c].isna().all())


def build_rules(limits: Limits = Limits(), absent: tuple[str, ...] = ()) -> list[Rule]:
    """The price suite: schema, types, non-null, finite prices > 0, OHLC order, keys, history.

    Columns in ``absent`` (open, high, low, volume that the input lacks) get no not-null rule;
    every range and OHLC-order rule skips missing values, so it applies where values exist.
    """
    quiet_libraries()
    import great_expectations as gx

    e = gx.expectations
    rules = [Rule("schema: columns are exactly " + ",".join(PRICE_COLUMNS),
                  e.ExpectTableColumnsToMatchSet(column_set=PRICE_COLUMNS + DERIVED,
                                                 exact_match=True))]
    types = {"symbol": STRING_DTYPE, "date": "datetime64[ns]"} | \
        dict.fromkeys(["open", "high", "low", "close", "volume"], "float64")
    for column, dtype in types.items():
        rules.append(Rule(f"type: {column} is {dtype}",
                          e.ExpectColumnValuesToBeOfType(column=column, type_=dtype)))
    for column in ("symbol", "date", "high", "low", "close", "volume"):
        if column in absent:
            continue
        rules.append(Rule(f"not null: {column}", e.ExpectColumnValuesToNotBeNull(column=column)))
    # Symbols name directories in the lake and the registry: a named rule, not a path check.
    rules.append(Rule(SYMBOL_RULE, e.ExpectColumnValuesToMatchRegex(column="symbol",
                                                                    regex=SYMBOL_PATTERN)))
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
    rules.append(Rule("dates increasing per symbol (no row dated before an earlier row)",
                      e.ExpectColumnValuesToBeBetween(column=STEP, min_value=0)))
    n = limits.max_gap_business_days
    rules.append(Rule(f"no gap longer than {n} business days",
                      e.ExpectColumnValuesToBeBetween(column=GAP, max_value=n, severity="info"),
                      "gap"))
    m = limits.min_history
    rules.append(Rule(f"at least {m} days of history per symbol for the window",
                      e.ExpectColumnValuesToBeBetween(column=HISTORY, min_value=m,
                                                      severity="info"), "history"))
    return rules


def limits_for(validation: ValidationConfig, features: FeatureConfig, split: SplitConfig) -> Limits:
    """The suite's bounds from the run's config: the gap limit and the window's minimum history."""
    return Limits(validation.max_gap_business_days, min_history_days(features, split))


def _gx_context(out_dir: Path):
    """A file-mode GX context rooted under validation/, whose Data Docs site is HTML there."""
    quiet_libraries()
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="file", project_root_dir=out_dir)
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    return context


def _result_format(every_row: bool) -> dict:
    """COMPLETE lists every offending row (drop needs them all); SUMMARY the first
    ``COUNTED_ROWS`` (the examples, and a count of what drop would quarantine).

    COMPLETE on an all-bad Kaggle-size frame took 16.6 s and wrote an 87 MiB result JSON.
    """
    if every_row:
        return {"result_format": "COMPLETE", "unexpected_index_column_names": []}
    return {"result_format": "SUMMARY", "partial_unexpected_count": COUNTED_ROWS,
            "unexpected_index_column_names": []}


def _checkpoint(context, rules: list[Rule], every_row: bool = True):
    """Suite, validation definition and checkpoint (with a Data Docs action), made or updated."""
    quiet_libraries()
    import great_expectations as gx

    try:
        source = context.data_sources.get("closecast")
    except KeyError:
        source = context.data_sources.add_pandas("closecast")
    asset = (source.get_asset("prices") if "prices" in source.get_asset_names()
             else source.add_dataframe_asset("prices"))
    batches = {b.name: b for b in asset.batch_definitions}
    batch_def = batches.get("all") or asset.add_batch_definition_whole_dataframe("all")
    for rule in rules:
        rule.expectation.meta = {"rule": rule.name}
    # Built whole and saved once: add_expectation would re-save the suite file per expectation.
    suite = context.suites.add_or_update(
        gx.ExpectationSuite(name=SUITE, expectations=[rule.expectation for rule in rules]))
    definition = context.validation_definitions.add_or_update(
        gx.ValidationDefinition(name="prices", data=batch_def, suite=suite))
    return context.checkpoints.add_or_update(gx.Checkpoint(
        name="prices", validation_definitions=[definition],
        actions=[gx.checkpoint.UpdateDataDocsAction(name="data-docs")],
        result_format=_result_format(every_row)))


def run_suite(checked: pd.DataFrame, rules: list[Rule], out_dir: Path, every_row: bool = True,
              ) -> tuple[dict[str, tuple[bool, int, list[int]]], dict, str]:
    """Run the suite; per rule (success, unexpected count, row positions), raw JSON, docs path.

    Without ``every_row`` the positions are only the first COUNTED_ROWS of each rule.
    """
    # One GX file context per home: concurrent runs would otherwise see each other's half-saved
    # suite and checkpoint (GX raises a freshness error), so they take turns.
    with file_lock(out_dir / ".gx.lock"):
        context = _gx_context(out_dir)
        result = _checkpoint(context, rules, every_row).run(
            batch_parameters={"dataframe": checked})
    (run_result,) = result.run_results.values()
    outcomes = {}
    for outcome in run_result.results:
        # GX does not keep the suite's order in its results: match them by the rule in meta.
        info = outcome.result or {}
        outcomes[outcome.expectation_config.meta["rule"]] = (
            bool(outcome.success), int(info.get("unexpected_count") or 0),
            [i for i in info.get("unexpected_index_list", info.get("partial_unexpected_index_list"))
             or [] if isinstance(i, int)])
    docs = out_dir / "gx" / "uncommitted" / "data_docs" / "local_site" / "index.html"
    return outcomes, run_result.to_json_dict(), str(docs)
