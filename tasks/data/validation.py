"""Validate: a Great Expectations 1.x suite, built in code, run on the normalised price frame.

Per-symbol rules (dates increasing, gaps, history length) are made checkable column by column
by adding three derived columns, computed once with vectorised pandas; GX then checks those
like any other column, so its results and Data Docs name every rule.
"""

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
from tasks.core.config import FeatureConfig, SplitConfig, ValidationConfig, min_history_days
from tasks.core.errors import DataValidationError, example_rows
from tasks.core.hashing import SHORT, frame_sha256
from tasks.core.locks import file_lock
from tasks.core.logs import quiet_libraries
from tasks.core.markdown import code_block
from tasks.core.paths import confined
from tasks.core.symbols import PATTERN as SYMBOL_PATTERN
from tasks.core.symbols import RULE as SYMBOL_RULE
from tasks.core.symbols import is_valid_symbol
from tasks.data.columns import PRICE_COLUMNS
from tasks.data.ingest import StagedPrices

MAX_PRICE = 1e9  # an upper bound that rejects inf while admitting any real share price
STEP = "days_after_previous"  # days since the latest earlier row of the symbol, in file order
GAP = "business_days_since_previous"  # business days since the symbol's previous day
HISTORY = "days_of_history"  # the symbol's days (this input and the lake) up to as_of
DERIVED = [STEP, GAP, HISTORY]
SYMBOL_RULES = ("gap", "history")  # broken by a symbol as a whole, not by one row
_STRING_DTYPE = pd.Series(["x"]).dtype.name  # "str" on pandas 3, "object" on pandas 2
SUITE = "closecast-prices"
OPTIONAL_COLUMNS = ("open", "high", "low", "volume")  # a close-only input is valid
EXAMPLE_ROWS = 5  # offending rows shown per broken rule


@dataclass(frozen=True)
class Rule:
    """A readable rule, the GX expectation that checks it, and whether rows or symbols break it."""

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
    types = {"symbol": _STRING_DTYPE, "date": "datetime64[ns]"} | \
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
                      e.ExpectColumnValuesToBeBetween(column=GAP, max_value=n), "gap"))
    m = limits.min_history
    rules.append(Rule(f"at least {m} days of history per symbol for the window",
                      e.ExpectColumnValuesToBeBetween(column=HISTORY, min_value=m), "history"))
    return rules


def known_dates(lake: Path | None, symbols: list[str]) -> pd.DataFrame:
    """(symbol, date) already in the lake for these symbols: history the input extends."""
    return stored_rows(lake, symbols, ["date"])


def stored_rows(lake: Path | None, symbols: list[str],
                columns: list[str] | None = None) -> pd.DataFrame:
    """The lake's rows of these symbols (``columns`` of them, beside ``symbol``)."""
    from tasks.data.lake import read_partition

    frames = []
    # An invalid symbol has no partition (its rows fail the symbol rule): never build its path.
    for symbol in [s for s in symbols if is_valid_symbol(s)] if lake is not None else []:
        rows = read_partition(lake, symbol)  # the store reads it again: one read (lake.py)
        if len(rows):
            frames.append(rows[["symbol", *(columns or rows.columns.drop("symbol"))]])
    if not frames:
        return pd.DataFrame({"symbol": pd.Series(dtype=_STRING_DTYPE),
                             "date": pd.Series(dtype="datetime64[ns]")})
    return pd.concat(frames, ignore_index=True)


def unchanged_rows(checked: pd.DataFrame, stored: pd.DataFrame) -> np.ndarray:
    """Rows the lake already holds exactly (every price column equal; NaN equal to NaN), whose
    key the input has once and that keep their symbol's dates increasing: what validation
    checked when they were stored, and what storing them again does not change."""
    columns = [c for c in PRICE_COLUMNS if c not in ("symbol", "date")]
    none = np.zeros(len(checked), dtype=bool)
    if stored.empty or not all(c in checked and c in stored and
                               pd.api.types.is_float_dtype(checked[c]) for c in columns):
        return none  # a column missing, or not numbers: the whole input is checked
    symbols = pd.Index(stored["symbol"].unique())

    def keys(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        code = symbols.get_indexer(frame["symbol"]).astype("int64")
        dates = frame["date"].to_numpy("datetime64[D]")
        valid = (code >= 0) & ~np.isnat(dates)
        return code * 2**32 + np.where(valid, dates.astype("int64"), 0), valid

    stored_keys = pd.Index(keys(stored)[0])
    if not stored_keys.is_unique:
        return none
    checked_keys, valid = keys(checked)
    at = stored_keys.get_indexer(checked_keys)
    same = valid & (at >= 0)
    for column in columns:
        new = checked[column].to_numpy("float64")
        old = stored[column].to_numpy("float64")[np.maximum(at, 0)]
        same &= (new == old) | (np.isnan(new) & np.isnan(old))
    once = ~checked.duplicated(["symbol", "date"], keep=False).to_numpy()
    in_order = ~(checked[STEP].to_numpy("float64") < 0)
    return same & once & in_order


def with_history_columns(frame: pd.DataFrame, known: pd.DataFrame,
                         as_of: date | None = None) -> pd.DataFrame:
    """The frame plus the derived per-symbol columns the suite checks (vectorised, no row loop)."""
    keys = frame[["symbol", "date"]].reset_index(drop=True)
    running_max = keys.groupby("symbol")["date"].cummax()
    previous_max = running_max.groupby(keys["symbol"]).shift(1)
    step = (keys["date"] - previous_max).dt.days.astype("float64")
    days = (pd.concat([keys, known[["symbol", "date"]]], ignore_index=True).dropna()
            .drop_duplicates().sort_values(["symbol", "date"], kind="stable"))
    previous = days.groupby("symbol")["date"].shift(1)
    has_previous = previous.notna().to_numpy()
    gaps = np.full(len(days), np.nan)
    gaps[has_previous] = np.busday_count(
        previous[has_previous].to_numpy().astype("datetime64[D]"),
        days["date"][has_previous].to_numpy().astype("datetime64[D]"))
    days[GAP] = gaps
    counted = days if as_of is None else days[days["date"] <= pd.Timestamp(as_of)]
    codes, names = pd.factorize(keys["symbol"])  # a missing symbol: code -1, no history
    per_symbol = counted.groupby("symbol").size().reindex(names, fill_value=0).to_numpy("int64")
    history = pd.Series(np.where(codes >= 0, per_symbol[codes], 0), dtype="int64")
    gap = keys.merge(days, on=["symbol", "date"], how="left")[GAP]
    # Any column the normalised layout lacks or adds is kept visible, for the schema rule.
    layout = [c for c in PRICE_COLUMNS if c in frame] + \
        [c for c in frame.columns if c not in PRICE_COLUMNS and c not in DERIVED]
    out = frame.reset_index(drop=True)[layout].copy()
    out[STEP], out[GAP], out[HISTORY] = step.to_numpy(), gap.to_numpy(), history.to_numpy()
    return out


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


def _gx_context(out_dir: Path):
    """A file-mode GX context rooted under validation/, whose Data Docs site is HTML there."""
    quiet_libraries()
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="file", project_root_dir=out_dir)
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    return context


def _result_format(every_row: bool) -> dict:
    """COMPLETE lists every offending row (drop needs them all); SUMMARY only the first few.

    COMPLETE on an all-bad Kaggle-size frame took 16.6 s and wrote an 87 MiB result JSON.
    """
    if every_row:
        return {"result_format": "COMPLETE", "unexpected_index_column_names": []}
    return {"result_format": "SUMMARY", "partial_unexpected_count": EXAMPLE_ROWS,
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

    Without ``every_row`` the positions are only the first EXAMPLE_ROWS of each rule.
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


def limits_for(validation: ValidationConfig, features: FeatureConfig, split: SplitConfig) -> Limits:
    """The suite's bounds from the run's config: the gap limit and the window's minimum history."""
    return Limits(validation.max_gap_business_days, min_history_days(features, split))


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
