"""The ``closecast`` command line: thin argument parsing over the flows and the registry."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from tasks.config import SAMPLE_PATH

DEFAULT_HOME = SAMPLE_PATH.parent.parent  # <checkout>/data


def _home(value: str | None) -> Path:
    return Path(value or os.environ.get("CLOSECAST_HOME") or DEFAULT_HOME)


def _symbols(value: str | None) -> tuple[str, ...] | None:
    if not value:
        return None
    return tuple(s.strip().upper() for s in value.split(",") if s.strip())


def _add_run_options(parser: argparse.ArgumentParser, download_start: str = "--start") -> None:
    """Options shared by run and backfill (backfill's own --start names its first as-of date)."""
    parser.add_argument("--config", type=Path, help="YAML or JSON file with a RunConfig")
    parser.add_argument("--input", type=Path, help="price file (default: the embedded sample)")
    parser.add_argument("--format", choices=["kaggle", "yahoo-csv", "yahoo"])
    parser.add_argument("--symbols", help="comma-separated symbols to keep, e.g. AAL,ZION")
    parser.add_argument("--as-of", help="point in time YYYY-MM-DD: no later row is read")
    parser.add_argument(download_start, dest="download_start",
                        help="first day to download YYYY-MM-DD (--format yahoo)")
    parser.add_argument("--on-invalid", choices=["fail", "drop"],
                        help="fail (default): store nothing; drop: quarantine bad rows")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--home", help="root of everything written (env CLOSECAST_HOME)")
    parser.add_argument("--json", action="store_true", help="print one JSON summary line last")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="closecast", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    _add_run_options(sub.add_parser("run", help="train, evaluate and register models"))
    validate = sub.add_parser("validate", help="ingest and validate only; non-zero on failure")
    validate.add_argument("--input", type=Path, required=True,
                          help="price file or unzipped Kaggle dataset directory")
    validate.add_argument("--format", choices=["kaggle", "yahoo-csv"])
    validate.add_argument("--symbols")
    validate.add_argument("--config", type=Path, help="RunConfig file (window, gap limit)")
    validate.add_argument("--as-of", help="count history up to this day")
    validate.add_argument("--home")
    backfill = sub.add_parser("backfill", help="one point-in-time run per trading date")
    backfill.add_argument("--start", required=True, help="first date YYYY-MM-DD")
    backfill.add_argument("--end", required=True, help="last date YYYY-MM-DD")
    backfill.add_argument("--every", choices=["day", "week", "month"], default="week")
    backfill.add_argument("--max-concurrent", type=int, default=1,
                          help="as-of dates training at once (default 1)")
    _add_run_options(backfill, download_start="--download-start")
    serve = sub.add_parser("serve", help="serve the deployments of deployments/prefect.yaml")
    serve.add_argument("--prefect-file", type=Path, help="default: deployments/prefect.yaml")
    serve.add_argument("--limit", type=int, help="most flow runs at once")
    predict = sub.add_parser("predict", help="forecast N business days with the champion")
    predict.add_argument("--symbol", required=True)
    predict.add_argument("--horizon", type=int, default=5)
    predict.add_argument("--format", choices=["csv", "parquet"], default="csv",
                         help="file format of the forecast (default csv)")
    predict.add_argument("--home")
    predict.add_argument("--json", action="store_true")
    models = sub.add_parser("models", help="inspect and promote registered versions")
    models.add_argument("action", choices=["list", "show", "promote"])
    models.add_argument("symbol", nargs="?")
    models.add_argument("version", nargs="?", type=int)
    models.add_argument("--home")
    models.add_argument("--json", action="store_true")
    return parser


def _config(args: argparse.Namespace):
    from tasks.config import load_config

    return load_config(args.config, home=_home(args.home), input=args.input, format=args.format,
                       symbols=_symbols(args.symbols), as_of=args.as_of,
                       epochs=getattr(args, "epochs", None),
                       start=getattr(args, "download_start", None),
                       on_invalid=getattr(args, "on_invalid", None))


def cmd_run(args: argparse.Namespace) -> int:
    from prefect.runtime import flow_run  # noqa: F401  (imports prefect before the flow)

    from flows.training import flow_for

    config = _config(args)
    state = flow_for(config)(config, return_state=True)
    results = state.result()
    summary = {"flow_run_id": str(state.state_details.flow_run_id), "models": [
        {"symbol": r.symbol, "version": r.version, "path": r.path, "promoted": r.promoted,
         "metrics": r.metrics} for r in results]}
    for r in results:
        m = r.metrics
        print(f"{r.symbol} v{r.version}: rmse {m['rmse']:.4f} vs naive {m['naive_rmse']:.4f} "
              f"(x{m['rmse_vs_naive']:.3f}) {'PROMOTED' if r.promoted else 'kept, not promoted'}")
        print(f"  report: {Path(r.path) / 'report.html'}")
        print(f"  plots:  {Path(r.path) / 'plots'}")
    if args.json:
        print(json.dumps(summary))
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from tasks.ingest import read_prices
    from tasks.layout import Layout
    from tasks.validation import limits_for, summary_text, validate_prices

    config = _config(args)
    frame = read_prices(args.input, args.format, config.symbols)
    layout = Layout(config.home)
    report = validate_prices(frame, str(args.input), layout.validation,
                             limits_for(config.validation, config.features, config.split),
                             lake=layout.lake, as_of=config.as_of, raise_on_failure=False)
    print(summary_text(report, str(args.input)))
    if not report.success:
        failed = "; ".join(r.name for r in report.rules if not r.success)
        print(f"closecast validate: {args.input} failed validation: {failed}", file=sys.stderr)
        return 1
    print(f"{args.input}: OK — {report.rows} rows passed {report.evaluated} expectations "
          f"(result: {report.result_path})")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from flows.predict import predict_flow, summary_json
    from tasks.errors import InputError

    if args.horizon < 1:
        raise InputError("--horizon", f"rule 'horizon >= 1': got {args.horizon}")
    result = predict_flow(args.symbol, args.horizon, str(_home(args.home)), args.format)
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
    from flows.models import list_models, promote, show_version

    models = _home(args.home) / "models"
    if args.action == "list":
        text = list_models(models, args.symbol)
    elif args.action == "show":
        text = show_version(models, _require(args.symbol, "SYMBOL"), args.version)
    else:
        text = promote(models, _require(args.symbol, "SYMBOL"), _require(args.version, "VERSION"))
    print(text)
    return 0


def cmd_backfill(args: argparse.Namespace) -> int:
    from datetime import date

    from flows.backfill import format_table, run_backfill

    start, end = date.fromisoformat(args.start), date.fromisoformat(args.end)
    state = run_backfill(_config(args), start, end, args.every, args.max_concurrent)
    rows = state.result()
    print(format_table(rows))
    new = sum(r.new_version for r in rows)
    print(f"{len({r.as_of for r in rows})} as-of date(s), {new} new version(s), "
          f"{len(rows) - new} unchanged")
    if args.json:
        print(json.dumps({"flow_run_id": str(state.state_details.flow_run_id),
                          "runs": [r.__dict__ for r in rows]}))
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    import logging

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
            "models": cmd_models, "backfill": cmd_backfill, "serve": cmd_serve}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``closecast`` console script."""
    from tasks.errors import ClosecastError

    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except ClosecastError as error:
        print(f"closecast {args.command}: error: {error}", file=sys.stderr)
        return 1
    except OSError as error:  # an I/O fault that outlived its retries: no traceback
        print(f"closecast {args.command}: error: I/O failed: {error} (writes are atomic: "
              "what was stored before is unchanged)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
