"""`closecast serve`, `predict` and `monitor`: the scheduled deployments, the champion's
forecasts and their live scores."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from flows import console
from flows.commands.common import Command, add_home, add_json, home_dir, parse_symbol


def add_serve_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--prefect-file", type=Path, metavar="FILE",
                        help="deployments file (default: deployments/prefect.yaml)")
    parser.add_argument("--limit", type=int, metavar="N",
                        help="most flow runs at once (default: no limit)")


def cmd_serve(args: argparse.Namespace) -> int:
    from flows.deployments import PREFECT_FILE
    from flows.serve import serve_deployments

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    serve_deployments(args.prefect_file or PREFECT_FILE, limit=args.limit)
    return 0


def add_predict_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--symbol", required=True, metavar="SYMBOL",
                        help="symbol whose champion forecasts")
    parser.add_argument("--horizon", type=int, metavar="N", default=5,
                        help="business days to forecast (default 5)")
    parser.add_argument("--output-format", "--format", dest="output_format",
                        choices=["csv", "parquet"], default="csv",
                        help="file format of the written forecast (default csv); --format is "
                             "an older alias (run and validate use --format for the INPUT)")
    add_home(parser)
    add_json(parser)


def cmd_predict(args: argparse.Namespace) -> int:
    from flows.predict import predict_flow, summary_json
    from tasks.core.errors import InputError

    if args.horizon < 1:
        raise InputError("--horizon", f"rule 'horizon >= 1': got {args.horizon}")
    result = predict_flow(parse_symbol(args.symbol), args.horizon, str(home_dir(args.home)),
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


def add_monitor_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--symbol", help="one symbol (default: every symbol in the ledger)")
    add_home(parser)
    add_json(parser)


def cmd_monitor(args: argparse.Namespace) -> int:
    from tasks.serving.ledger import ledger_symbols
    from tasks.serving.monitor import format_monitor, monitor, report_table

    home = home_dir(args.home)
    symbols = [parse_symbol(args.symbol)] if args.symbol else ledger_symbols(home / "lake")
    report = monitor(home, symbols)
    print(format_monitor(report))
    if args.json:
        print(json.dumps({"home": str(home), "symbols": report_table(report)}))
    return 0


COMMANDS = (
    Command("serve", "serve the deployments of deployments/prefect.yaml",
            ("closecast serve",
             "closecast serve --prefect-file deployments/prefect.yaml --limit 2"),
            add_serve_options, cmd_serve),
    Command("predict", "forecast N business days with the champion",
            ("closecast predict --symbol AAL",
             "closecast predict --symbol ZION --horizon 10 --output-format parquet --json"),
            add_predict_options, cmd_predict, flow=True),
    Command("monitor", "live scores of the forecasts already issued",
            ("closecast monitor",
             "closecast monitor --symbol AAL --json"),
            add_monitor_options, cmd_monitor),
)
