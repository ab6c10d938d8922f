"""The ``closecast`` command line: thin argument parsing over the flows and the registry."""

from __future__ import annotations

import argparse
import atexit
import contextlib
import functools
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from flows import console
from flows.startup import preload
from tasks.core.config import SAMPLE_PATH
from tasks.core.logs import quiet_libraries

DEFAULT_HOME = SAMPLE_PATH.parent.parent  # <checkout>/data


def _home(value: str | None) -> Path:
    return Path(value or os.environ.get("CLOSECAST_HOME") or DEFAULT_HOME)


def _symbols(value: str | None) -> tuple[str, ...] | None:
    from tasks.core.symbols import normalize_symbols

    return normalize_symbols(value, "--symbols") if value else None


def _symbol(value: str, flag: str = "--symbol") -> str:
    from tasks.core.symbols import normalize_symbol

    return normalize_symbol(value, flag)


def _add_run_options(parser: argparse.ArgumentParser, download_start: str = "--start") -> None:
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
    _add_home(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON summary line last")


def _add_home(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--home", metavar="DIR", help="root of everything read and written "
                                       "(default: env CLOSECAST_HOME, else data/)")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("closecast")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown (not installed)"


def _console_options(parser: argparse.ArgumentParser, default: object) -> None:
    parser.add_argument("--verbose", action="store_true", default=default,
                        help="also show per-epoch training lines (the Prefect UI always has them)")
    parser.add_argument("--debug", action="store_true", default=default,
                        help="show Python tracebacks of expected errors too")


EXAMPLES = {
    "run": """examples:
  closecast run --symbols AAL,ZION --epochs 5
  closecast run --input prices.csv --format yahoo-csv --symbols MSFT --json""",
    "validate": """examples:
  closecast validate --input data/sample/prices-split-adjusted.csv --symbols AAL
  closecast validate --input nyse/ --format kaggle --as-of 2016-06-30""",
    "backfill": """examples:
  closecast backfill --start 2016-01-01 --end 2016-12-31 --every month --symbols AAL,ZION
  closecast backfill --flow daily --start 2016-11-01 --end 2016-11-30 --symbols AAL""",
    "serve": """examples:
  closecast serve
  closecast serve --prefect-file deployments/prefect.yaml --limit 2""",
    "predict": """examples:
  closecast predict --symbol AAL
  closecast predict --symbol ZION --horizon 10 --output-format parquet --json""",
    "monitor": """examples:
  closecast monitor
  closecast monitor --symbol AAL --json""",
    "models": """examples:
  closecast models list --json
  closecast models promote AAL 3""",
    "gc": """examples:
  closecast gc --dry-run
  closecast gc --home /srv/closecast --json""",
    "report": """examples:
  closecast report AAL
  closecast report AAL --version 3 --home /srv/closecast --json""",
    "status": """examples:
  closecast status
  closecast status --symbol AAL --json""",
}


def _command(sub, name: str, help_text: str) -> argparse.ArgumentParser:
    """A sub-command whose help ends with examples (kept as written)."""
    return sub.add_parser(name, help=help_text, description=help_text, epilog=EXAMPLES[name],
                          formatter_class=argparse.RawDescriptionHelpFormatter)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="closecast", description="Forecast tomorrow's close: ingest, validate, train, "
        "evaluate and register models, then predict and monitor.",
        epilog="examples:\n  closecast run\n  closecast predict --symbol AAL\n\n"
               "closecast COMMAND --help shows a command's options and examples.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"closecast {_version()}")
    _console_options(parser, False)
    # The same flags after the command; SUPPRESS keeps a flag given before it.
    common = argparse.ArgumentParser(add_help=False)
    _console_options(common, argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser = functools.partial(sub.add_parser, parents=[common])  # type: ignore[method-assign]
    _add_run_options(_command(sub, "run", "train, evaluate and register models"))
    validate = _command(sub, "validate", "ingest and validate only; non-zero on failure")
    validate.add_argument("--input", type=Path, metavar="PATH", required=True,
                          help="price file or unzipped Kaggle dataset directory")
    validate.add_argument("--format", choices=["kaggle", "yahoo-csv"],
                          help="input format (default: guessed from the file)")
    validate.add_argument("--symbols", metavar="A,B",
                          help="comma-separated symbols to keep, e.g. AAL,ZION")
    validate.add_argument("--config", type=Path, metavar="FILE",
                          help="RunConfig file (window, gap limit)")
    validate.add_argument("--as-of", metavar="DATE", help="count history up to this day YYYY-MM-DD")
    _add_home(validate)
    backfill = _command(sub, "backfill", "one point-in-time run per trading date")
    backfill.add_argument("--start", required=True, metavar="DATE",
                          help="first as-of date YYYY-MM-DD")
    backfill.add_argument("--end", required=True, metavar="DATE", help="last as-of date YYYY-MM-DD")
    backfill.add_argument("--every", choices=["day", "week", "month"], default="week",
                          help="spacing of the as-of dates (default week)")
    backfill.add_argument("--max-concurrent", type=int, metavar="N", default=1,
                          help="as-of dates training at once (default 1)")
    backfill.add_argument("--flow", choices=["train", "daily"], default="train",
                          help="train (default): train as of each date; daily: replay the daily "
                               "flow (forecast, score, monitor) as of each trading day")
    _add_run_options(backfill, download_start="--download-start")
    serve = _command(sub, "serve", "serve the deployments of deployments/prefect.yaml")
    serve.add_argument("--prefect-file", type=Path, metavar="FILE",
                       help="deployments file (default: deployments/prefect.yaml)")
    serve.add_argument("--limit", type=int, metavar="N",
                       help="most flow runs at once (default: no limit)")
    predict = _command(sub, "predict", "forecast N business days with the champion")
    predict.add_argument("--symbol", required=True, metavar="SYMBOL",
                         help="symbol whose champion forecasts")
    predict.add_argument("--horizon", type=int, metavar="N", default=5,
                         help="business days to forecast (default 5)")
    predict.add_argument("--output-format", "--format", dest="output_format",
                         choices=["csv", "parquet"], default="csv",
                         help="file format of the written forecast (default csv); --format is "
                              "an older alias (run and validate use --format for the INPUT)")
    _add_home(predict)
    predict.add_argument("--json", action="store_true", help="print one JSON summary line last")
    monitor = _command(sub, "monitor", "live scores of the forecasts already issued")
    monitor.add_argument("--symbol", help="one symbol (default: every symbol in the ledger)")
    _add_home(monitor)
    monitor.add_argument("--json", action="store_true", help="print one JSON summary line last")
    models = _command(sub, "models", "inspect and promote registered versions")
    models.add_argument("action", choices=["list", "show", "promote"],
                        help="list versions; show one (default: the champion); promote one by hand")
    models.add_argument("symbol", nargs="?", help="symbol (list: optional; show, promote: needed)")
    models.add_argument("version", nargs="?", type=int,
                        help="version number (show: default the champion; promote: needed)")
    _add_home(models)
    models.add_argument("--json", action="store_true",
                        help="print JSON (list: records instead of the table; show: on one "
                             "line; promote: the new champion)")
    gc = _command(sub, "gc", "remove what no later run or version needs (retention)")
    _add_home(gc)
    gc.add_argument("--config", type=Path, metavar="FILE",
                    help="RunConfig file whose `retention` section sets the limits")
    gc.add_argument("--dry-run", action="store_true",
                    help="list what would be removed; change nothing")
    gc.add_argument("--wait", type=float, metavar="SECONDS", default=0.0,
                    help="wait this long for runs using the home to end (default 0: if one "
                         "is running, remove nothing)")
    gc.add_argument("--json", action="store_true", help="print one JSON summary line last")
    report = _command(sub, "report", "a version's report with its plots (drawn now if its "
                                     "run left them to be drawn on request)")
    report.add_argument("symbol", metavar="SYMBOL", help="symbol whose version to report")
    report.add_argument("--version", dest="model_version", type=int, metavar="N",
                        help="version number (default: the champion)")
    _add_home(report)
    report.add_argument("--json", action="store_true", help="print one JSON summary line last")
    status = _command(sub, "status", "what a home holds, its disk use and the last runs")
    status.add_argument("--symbol", metavar="SYMBOL",
                        help="one symbol's details instead of the summary")
    _add_home(status)
    status.add_argument("--json", action="store_true", help="print one JSON summary line last")
    return parser


def _config(args: argparse.Namespace):
    from tasks.core.config import load_config

    return load_config(args.config, home=_home(args.home), input=args.input, format=args.format,
                       symbols=_symbols(args.symbols), as_of=args.as_of,
                       epochs=getattr(args, "epochs", None),
                       start=getattr(args, "download_start", None),
                       on_invalid=getattr(args, "on_invalid", None))


def cmd_run(args: argparse.Namespace) -> int:
    from prefect.runtime import flow_run  # noqa: F401  (imports prefect before the flow)

    from flows.training import flow_for
    from tasks.reporting.provenance import (
        provenance,
        provenance_text,
        run_summary,
        version_line,
    )

    config = _config(args)
    state = flow_for(config)(config, return_state=True)
    results = state.result()
    console.drain_stderr()
    summary = {"flow_run_id": str(state.state_details.flow_run_id), "models": [
        {"symbol": r.symbol, "version": r.version, "path": r.path, "promoted": r.promoted,
         "source": provenance(r.metrics).source, "metrics": r.metrics.to_dict()}
        for r in results]}
    for r in results:
        print(version_line(r.symbol, r.version, provenance_text(r.metrics), r.promoted))
        print(f"  report: {Path(r.path) / 'report.html'}")
        plots = Path(r.path) / "plots"
        print(f"  plots:  {plots}" if plots.is_dir() else
              f"  plots:  on request: closecast report {r.symbol} --version {r.version}")
    print(run_summary([r.promoted for r in results],
                      [provenance(r.metrics).source for r in results]))
    if args.json:
        print(json.dumps(summary))
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from tasks.core.layout import Layout
    from tasks.data.ingest import read_input
    from tasks.data.validation import limits_for, summary_text, validate_prices

    config = _config(args)
    frame, _ = read_input(args.input, args.format, config.symbols)
    layout = Layout(config.home)
    report = validate_prices(frame, str(args.input), layout.validation,
                             limits_for(config.validation, config.features, config.split),
                             lake=layout.lake, as_of=config.as_of, raise_on_failure=False)
    print(summary_text(report, str(args.input)))
    if not report.success:
        from tasks.core.errors import DataValidationError

        raise DataValidationError(args.input, [f"- rule '{r.name}' broken by {r.unexpected} row(s)"
                                               for r in report.rules if not r.success])
    print(f"{args.input}: OK — {report.rows} rows passed {report.evaluated} expectations "
          f"(result: {report.result_path})")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from flows.predict import predict_flow, summary_json
    from tasks.core.errors import InputError

    if args.horizon < 1:
        raise InputError("--horizon", f"rule 'horizon >= 1': got {args.horizon}")
    result = predict_flow(_symbol(args.symbol), args.horizon, str(_home(args.home)),
                         args.output_format)
    console.drain_stderr()
    for row in result["forecast"]:
        bounds = (f"  80% [{row['lower_80']:.4f}, {row['upper_80']:.4f}]  95% "
                  f"[{row['lower_95']:.4f}, {row['upper_95']:.4f}]"
                  if row["lower_80"] is not None else "")
        print(f"{result['symbol']} {row['date']}: {row['close']:.4f}{bounds}")
    print(f"  forecast: {result['path']}\n  plot:     {result['plot']}")
    if args.json:
        print(summary_json(result))
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from flows.models import list_models, model_records, promote, show_version

    models = _home(args.home) / "models"
    symbol = _symbol(args.symbol, "SYMBOL") if args.symbol else None
    if args.action == "list":
        text = (json.dumps(model_records(models, symbol)) if args.json
                else list_models(models, symbol))
    elif args.action == "show":
        text = show_version(models, _require(symbol, "SYMBOL"), args.version,
                            indent=None if args.json else 2)
    else:
        version = _require(args.version, "VERSION")
        text = promote(models, _require(symbol, "SYMBOL"), version)
        if args.json:
            text = json.dumps({"symbol": symbol, "champion": version, "message": text})
    print(text)
    return 0


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


def cmd_monitor(args: argparse.Namespace) -> int:
    from tasks.operations.ledger import ledger_symbols
    from tasks.operations.monitor import format_monitor, monitor, report_table

    home = _home(args.home)
    symbols = [_symbol(args.symbol)] if args.symbol else ledger_symbols(home / "lake")
    report = monitor(home, symbols)
    print(format_monitor(report))
    if args.json:
        print(json.dumps({"home": str(home), "symbols": report_table(report)}))
    return 0


def cmd_gc(args: argparse.Namespace) -> int:
    from tasks.core.config import load_config
    from tasks.operations.retention import collect_garbage, format_gc

    retention = load_config(args.config).retention
    report = collect_garbage(_home(args.home), retention, dry_run=args.dry_run,
                             wait_seconds=args.wait)
    print(format_gc(report))
    if args.json:
        print(json.dumps(report.to_json()))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from flows.models import report_version

    result = report_version(_home(args.home) / "models", _symbol(args.symbol, "SYMBOL"),
                            args.model_version)
    print(f"{result['symbol']} v{result['version']}: {result['forecast']}")
    print(f"  report: {result['report']}")
    print(f"  plots:  {result['plots']} ({'drawn now' if result['drawn_now'] else 'drawn before'})")
    if args.json:
        print(json.dumps(result))
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from flows.prefect_api import deployment_runs
    from tasks.operations.status import format_status, home_status

    symbol = _symbol(args.symbol) if args.symbol else None
    status = home_status(_home(args.home), symbol)
    status["prefect"] = deployment_runs()
    print(format_status(status))
    if args.json:
        print(json.dumps(status, default=str))
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from flows.deployments import PREFECT_FILE
    from flows.serve import serve_deployments

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    serve_deployments(args.prefect_file or PREFECT_FILE, limit=args.limit)
    return 0


def _require(value, name: str):
    if value is None:
        raise SystemExit(f"closecast models: {name} is required")
    return value


COMMANDS = {"run": cmd_run, "validate": cmd_validate, "predict": cmd_predict,
            "models": cmd_models, "backfill": cmd_backfill, "serve": cmd_serve,
            "monitor": cmd_monitor, "gc": cmd_gc, "report": cmd_report, "status": cmd_status}


def main(argv: Sequence[str] | None = None) -> int:
    """The command line's work: parse ``argv``, run the command; its exit status."""
    args = build_parser().parse_args(argv)
    quiet_libraries()
    # The filter stays on after main() returns (Prefect logs the temporary server's stop at
    # exit); the next main() in this process replaces it.
    shown = console.install(debug=args.debug, verbose=args.verbose)
    quiet = args.command in ("run", "backfill", "predict") and not args.debug
    try:
        with console.native_noise_filtered() if quiet else contextlib.nullcontext():
            preload(args.command)
            return COMMANDS[args.command](args)
    except Exception as error:
        if console.expected(error):
            return _fail(args, error, shown)
        from flows.prefect_api import unreachable_api

        stopped = unreachable_api()  # Prefect's own error for it is a long traceback
        if stopped is None:
            raise  # a bug: its traceback is the report
        return _fail(args, stopped, shown)


def _fail(args: argparse.Namespace, error: Exception, shown: console.ConsoleFilter) -> int:
    """One ERROR log line (unless a task already logged it) and the closing line; exit 1."""
    import traceback

    if args.debug:
        traceback.print_exc()
    if not shown.seen(error):
        logging.getLogger("closecast").error("failed: %s: %s", type(error).__name__,
                                             console.first_line(error))
    print(f"closecast {args.command}: error: {error_text(error)}", file=sys.stderr)
    return 1


def error_text(error: BaseException) -> str:
    """``<file>: what went wrong``; an I/O fault names its file when it has one."""
    if isinstance(error, OSError):
        return (f"{error.filename or 'I/O'}: I/O failed after retries: {error.strerror or error} "
                "(writes are atomic: what was stored before is unchanged)")
    return str(error)


def run() -> None:
    """The ``closecast`` command's process: ``main()``, every exit handler, then the end.

    Exit handlers still run as usual (Prefect drains its log and event workers and stops a
    temporary server; logging flushes); what is skipped is the interpreter's teardown of every
    module after them, ~1.5 s of a run once TensorFlow is loaded and the only thing the user
    still waits for (BENCHMARKS.md (i)). An error that escapes ``main()`` (a bug, Ctrl-C) gets
    the normal exit, traceback included.
    """
    status: list[int] = []
    atexit.register(_end_process, status)  # before main() starts Prefect: runs after its own
    status.append(main())
    sys.exit(status[0])


def _end_process(status: list[int]) -> None:
    if not status:
        return
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(status[0])


if __name__ == "__main__":
    run()
