"""`closecast models`, `report`, `status` and `gc`: what a home holds, its registered versions
and their reports, and the retention that keeps it small."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from flows.commands.common import Command, add_home, add_json, home_dir, parse_symbol


def _require(value, name: str):
    if value is None:
        raise SystemExit(f"closecast models: {name} is required")
    return value


def add_models_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["list", "show", "promote"],
                        help="list versions; show one (default: the champion); promote one by hand")
    parser.add_argument("symbol", nargs="?", help="symbol (list: optional; show, promote: needed)")
    parser.add_argument("version", nargs="?", type=int,
                        help="version number (show: default the champion; promote: needed)")
    add_home(parser)
    parser.add_argument("--json", action="store_true",
                        help="print JSON (list: records instead of the table; show: on one "
                             "line; promote: the new champion)")


def cmd_models(args: argparse.Namespace) -> int:
    from flows.models import list_models, model_records, promote, show_version

    models = home_dir(args.home) / "models"
    symbol = parse_symbol(args.symbol, "SYMBOL") if args.symbol else None
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


def add_gc_options(parser: argparse.ArgumentParser) -> None:
    add_home(parser)
    parser.add_argument("--config", type=Path, metavar="FILE",
                        help="RunConfig file whose `retention` section sets the limits")
    parser.add_argument("--dry-run", action="store_true",
                        help="list what would be removed; change nothing")
    parser.add_argument("--wait", type=float, metavar="SECONDS", default=0.0,
                        help="wait this long for runs using the home to end (default 0: if one "
                             "is running, remove nothing)")
    add_json(parser)


def cmd_gc(args: argparse.Namespace) -> int:
    from tasks.core.config import load_config
    from tasks.housekeeping.gc_report import format_gc
    from tasks.housekeeping.retention import collect_garbage

    retention = load_config(args.config).retention
    report = collect_garbage(home_dir(args.home), retention, dry_run=args.dry_run,
                             wait_seconds=args.wait)
    print(format_gc(report))
    if args.json:
        print(json.dumps(report.to_json()))
    return 0


def add_report_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("symbol", metavar="SYMBOL", help="symbol whose version to report")
    parser.add_argument("--version", dest="model_version", type=int, metavar="N",
                        help="version number (default: the champion)")
    add_home(parser)
    add_json(parser)


def cmd_report(args: argparse.Namespace) -> int:
    from flows.models import report_version

    result = report_version(home_dir(args.home) / "models", parse_symbol(args.symbol, "SYMBOL"),
                            args.model_version)
    print(f"{result['symbol']} v{result['version']}: {result['forecast']}")
    print(f"  report: {result['report']}")
    print(f"  plots:  {result['plots']} ({'drawn now' if result['drawn_now'] else 'drawn before'})")
    if args.json:
        print(json.dumps(result))
    return 0


def add_status_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--symbol", metavar="SYMBOL",
                        help="one symbol's details instead of the summary")
    add_home(parser)
    add_json(parser)


def cmd_status(args: argparse.Namespace) -> int:
    from flows.prefect_api import deployment_runs
    from tasks.housekeeping.status import format_status, home_status

    symbol = parse_symbol(args.symbol) if args.symbol else None
    status = home_status(home_dir(args.home), symbol)
    status["prefect"] = deployment_runs()
    print(format_status(status))
    if args.json:
        print(json.dumps(status, default=str))
    return 0


# In the order of `closecast --help` (gc sits between models and report there).
COMMANDS = (
    Command("models", "inspect and promote registered versions",
            ("closecast models list --json",
             "closecast models promote AAL 3"),
            add_models_options, cmd_models),
    Command("gc", "remove what no later run or version needs (retention)",
            ("closecast gc --dry-run",
             "closecast gc --home /srv/closecast --json"),
            add_gc_options, cmd_gc),
    Command("report", "a version's report with its plots (drawn now if its run left them to be "
                      "drawn on request)",
            ("closecast report AAL",
             "closecast report AAL --version 3 --home /srv/closecast --json"),
            add_report_options, cmd_report),
    Command("status", "what a home holds, its disk use and the last runs",
            ("closecast status",
             "closecast status --symbol AAL --json"),
            add_status_options, cmd_status),
)
