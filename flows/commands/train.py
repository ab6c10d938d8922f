"""`closecast run`, `validate` and `backfill`: ingest, validate and train, once or per as-of
date."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from flows import console
from flows.commands.common import Command, add_home, add_json, home_dir


def _symbols(value: str | None) -> tuple[str, ...] | None:
    from tasks.core.symbols import normalize_symbols

    return normalize_symbols(value, "--symbols") if value else None


def _config(args: argparse.Namespace):
    from tasks.core.config import load_config

    return load_config(args.config, home=home_dir(args.home), input=args.input,
                       format=args.format, symbols=_symbols(args.symbols), as_of=args.as_of,
                       epochs=getattr(args, "epochs", None),
                       start=getattr(args, "download_start", None),
                       on_invalid=getattr(args, "on_invalid", None))


def add_run_options(parser: argparse.ArgumentParser, download_start: str = "--start") -> None:
    """Options shared by run and backfill (backfill's own --start names its first as-of date)."""
    parser.add_argument("--config", type=Path, metavar="FILE",
                        help="YAML or JSON file with a RunConfig")
    parser.add_argument("--input", type=Path, metavar="PATH",
                        help="price file (default: the embedded sample)")
    parser.add_argument("--format", choices=["kaggle", "yahoo-csv", "yahoo"],
                        help="input format (default: guessed from the file; yahoo: download)")
    parser.add_argument("--symbols", metavar="A,B",
                        help="comma-separated symbols to keep, e.g. AAL,ZION")
    parser.add_argument("--as-of", metavar="DATE",
                        help="point in time YYYY-MM-DD: no later row is read")
    parser.add_argument(download_start, dest="download_start", metavar="DATE",
                        help="first day to download YYYY-MM-DD (--format yahoo)")
    parser.add_argument("--on-invalid", choices=["fail", "drop"],
                        help="fail (default): store nothing; drop: quarantine bad rows")
    parser.add_argument("--epochs", type=int, metavar="N",
                        help="training epochs (overrides the config)")
    add_home(parser)
    add_json(parser)


def cmd_run(args: argparse.Namespace) -> int:
    from prefect.runtime import flow_run  # noqa: F401  (imports prefect before the flow)

    from flows.training import flow_for
    from tasks.registry.artifacts import summary_path, summary_rows
    from tasks.reporting.provenance import provenance
    from tasks.reporting.run_outcome import PER_SYMBOL_LINES, outcome_lines

    config = _config(args)
    state = flow_for(config)(config, return_state=True)
    results = state.result()
    console.drain_stderr()
    summary = {"flow_run_id": str(state.state_details.flow_run_id), "models": [
        {"symbol": r.symbol, "version": r.version, "path": r.path, "promoted": r.promoted,
         "source": provenance(r.metrics).source, "metrics": r.metrics.to_dict()}
        for r in results]}
    rows = summary_rows(results)
    if len(results) <= PER_SYMBOL_LINES or args.verbose:
        print_versions(results)
        table = None  # the lines above name every version
    else:
        table = summary_path(config.home, results)
    print("\n".join(outcome_lines(rows, table if table and table.exists() else None)))
    if args.json:
        print(json.dumps(summary))
    return 0


def add_validate_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input", type=Path, metavar="PATH", required=True,
                        help="price file or unzipped Kaggle dataset directory")
    parser.add_argument("--format", choices=["kaggle", "yahoo-csv"],
                        help="input format (default: guessed from the file)")
    parser.add_argument("--symbols", metavar="A,B",
                        help="comma-separated symbols to keep, e.g. AAL,ZION")
    parser.add_argument("--config", type=Path, metavar="FILE",
                        help="RunConfig file (window, gap limit)")
    parser.add_argument("--as-of", metavar="DATE", help="count history up to this day YYYY-MM-DD")
    parser.add_argument("--on-invalid", choices=["fail", "drop"],
                        help="fail (default): non-zero exit on a broken rule; drop: show what "
                             "run --on-invalid drop would quarantine (nothing is stored)")
    add_home(parser)


def print_versions(results: list) -> None:
    """Each registered version: who makes its forecast, the verdict, its report and plots."""
    from tasks.reporting.provenance import provenance_text, version_line

    for r in results:
        print(version_line(r.symbol, r.version, provenance_text(r.metrics), r.promoted,
                           r.fallback))
        print(f"  report: {Path(r.path) / 'report.html'}")
        plots = Path(r.path) / "plots"
        print(f"  plots:  {plots}" if plots.is_dir() else
              f"  plots:  on request: closecast report {r.symbol} --version {r.version}")


def cmd_validate(args: argparse.Namespace) -> int:
    from tasks.core.layout import Layout
    from tasks.data.ingest import read_input
    from tasks.data.price_suite import limits_for
    from tasks.data.validation import drop_advice, summary_text, validate_prices

    config = _config(args)
    frame, _ = read_input(args.input, args.format, config.symbols)
    layout = Layout(config.home)
    report = validate_prices(frame, str(args.input), layout.validation,
                             limits_for(config.validation, config.features, config.split),
                             config.validation.on_invalid, lake=layout.lake, as_of=config.as_of,
                             raise_on_failure=False)
    print(summary_text(report, str(args.input)))
    kept = report.rows - report.quarantined
    if not report.success and (report.policy == "fail" or kept == 0):
        from tasks.core.errors import DataValidationError

        raise DataValidationError(args.input, [f"- rule '{r.name}' broken by {r.unexpected} row(s)"
                                               for r in report.rules if r.failed],
                                  drop_advice(report))
    print(f"{args.input}: OK — {kept} rows passed {report.evaluated} expectations"
          + (f", {report.quarantined} quarantined" if report.quarantined else "")
          + f" (result: {report.result_path})")
    return 0


def add_backfill_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--start", required=True, metavar="DATE",
                        help="first as-of date YYYY-MM-DD")
    parser.add_argument("--end", required=True, metavar="DATE", help="last as-of date YYYY-MM-DD")
    parser.add_argument("--every", choices=["day", "week", "month"], default="week",
                        help="spacing of the as-of dates (default week)")
    parser.add_argument("--max-concurrent", type=int, metavar="N", default=1,
                        help="as-of dates training at once (default 1)")
    parser.add_argument("--flow", choices=["train", "daily"], default="train",
                        help="train (default): train as of each date; daily: replay the daily "
                             "flow (forecast, score, monitor) as of each trading day")
    add_run_options(parser, download_start="--download-start")


def cmd_backfill(args: argparse.Namespace) -> int:
    from datetime import date

    from flows.backfill import format_table, run_backfill

    start, end = date.fromisoformat(args.start), date.fromisoformat(args.end)
    if args.flow == "daily":
        return _replay_daily(args, start, end)
    state = run_backfill(_config(args), start, end, args.every, args.max_concurrent)
    rows = state.result()
    console.drain_stderr()
    print(format_table(rows))
    new = sum(r.new_version for r in rows)
    print(f"{len({r.as_of for r in rows})} as-of date(s), {new} new version(s), "
          f"{len(rows) - new} unchanged")
    if args.json:
        print(json.dumps({"flow_run_id": str(state.state_details.flow_run_id),
                          "runs": [r.__dict__ for r in rows]}))
    return 0


def _replay_daily(args: argparse.Namespace, start, end) -> int:
    from flows.daily import replay_flow

    state = replay_flow(_config(args), start, end, return_state=True)
    days = state.result()
    for day in days:
        print(f"{day.as_of}: {day.issued} issued ({day.added} new), {day.scored} scored"
              + (f", retrained {', '.join(day.retrained)}" if day.retrained else ""))
    print(f"{len(days)} day(s), {sum(d.issued for d in days)} forecast(s) issued, "
          f"{sum(d.added for d in days)} new in the ledger, {sum(d.scored for d in days)} scored")
    if args.json:
        print(json.dumps({"flow_run_id": str(state.state_details.flow_run_id),
                          "days": [{"as_of": d.as_of, "issued": d.issued, "added": d.added,
                                    "scored": d.scored,
                                    "retrained": d.retrained} for d in days]}))
    return 0


COMMANDS = (
    Command("run", "train, evaluate and register models",
            ("closecast run --symbols AAL,ZION --epochs 5",
             "closecast run --input prices.csv --format yahoo-csv --symbols MSFT --json"),
            add_run_options, cmd_run, flow=True),
    Command("validate", "ingest and validate only; non-zero on failure",
            ("closecast validate --input data/sample/prices-split-adjusted.csv --symbols AAL",
             "closecast validate --input nyse/ --format kaggle --as-of 2016-06-30"),
            add_validate_options, cmd_validate),
    Command("backfill", "one point-in-time run per trading date",
            ("closecast backfill --start 2016-01-01 --end 2016-12-31 --every month "
             "--symbols AAL,ZION",
             "closecast backfill --flow daily --start 2016-11-01 --end 2016-11-30 --symbols AAL"),
            add_backfill_options, cmd_backfill, flow=True),
)
