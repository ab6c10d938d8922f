"""Benchmark (k): a year of operation simulated through the real CLI; the home's size (JSON).

Generates ``--symbols`` Kaggle-shaped symbols (``generate_kaggle.py``; there is no market file
in the repository, and only seven real symbols) over ``--history`` + ``--days`` business days
(default 1,512 + 250 = 1,762), trains them as of the day before the replay, then replays the
``--days`` last days week by week: the daily flow (``backfill --flow daily``) over each
``--retrain-every`` days, the weekly retrain (``run --as-of`` the week's last day) and
``closecast gc`` (the deployments end with gc; ad-hoc CLI runs do not, so it is run here), and
records ``closecast status --json``'s disk use per directory after the initial run, on days 1,
50 and 250 (``--checkpoints``) and before and after every weekly gc. ``benchmarks/replay.py``
holds the replay and states the retention used (every limit at 0: a replayed year passes in
hours) and the bound.

Target: growth after day 1 is only the lake (prices and the forecast ledger) and models/
(new versions and their reports); work/, staging/, validation/ and cache/ stay under

    B = 1.25 * A0 + 2 * retrain_every * d      (per directory)

A0 = its size after the initial training, d = what day 1 added to it; and what the last gc
leaves is at most what the first left plus d. No registered version is lost.

    python benchmarks/bench_year.py [--symbols 50] [--days 250] [--history 1512]
        [--retrain-every 5] [--checkpoints 1,50,250] [--epochs N] [--config CFG] [--server]
        [--keep DIR] [--out FILE]

Each CLI child has its own PREFECT_HOME (a temporary Prefect server, deleted after the child),
or with ``--server`` all of them use one ``prefect server start`` started here.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _common import child_env, machine, start_server, wait_for_quiet  # noqa: E402
from replay import Plan, replay  # noqa: E402


class FreshPrefect:
    """A new PREFECT_HOME per child (or one server's API); the previous child's is deleted."""

    def __init__(self, root: Path, api: str | None) -> None:
        self.root, self.api, self.last = root, api, None

    def __call__(self, label: str) -> dict[str, str]:
        if self.last is not None:
            shutil.rmtree(self.last, ignore_errors=True)
        self.last = self.root / label
        self.last.mkdir(parents=True)
        return child_env(self.last, self.api)


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=50)
    parser.add_argument("--days", type=int, default=250, help="replayed business days")
    parser.add_argument("--history", type=int, default=1512,
                        help="business days before the replay (the initial training's)")
    parser.add_argument("--retrain-every", type=int, default=5,
                        help="business days between weekly retrains (and gcs)")
    parser.add_argument("--checkpoints", default="1,50,250",
                        help="replayed days after which the home is measured")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--input", type=Path,
                        help="a real price file (e.g. the Kaggle S&P 500 market file): "
                             "--symbols of its symbols that trade on all of its last --days "
                             "dates; --history is then what comes before them")
    parser.add_argument("--on-invalid", choices=["fail", "drop"],
                        help="run and backfill's --on-invalid (a real file: drop)")
    parser.add_argument("--epochs", type=int, help="override the model's epochs")
    parser.add_argument("--config", type=Path, help="RunConfig YAML/JSON for run and backfill")
    parser.add_argument("--server", action="store_true",
                        help="every child uses one `prefect server start` started here")
    parser.add_argument("--keep", type=Path, help="work here and keep it (home, logs, inputs)")
    parser.add_argument("--out", type=Path, help="also write the JSON document here")
    parser.add_argument("--quiet-wait-s", type=float, default=180.0,
                        help="wait at most this long for load <= 1.5 before starting")
    args = parser.parse_args(argv)
    if min(args.symbols, args.days, args.history, args.retrain_every) < 1:
        parser.error("--symbols, --days, --history and --retrain-every must be >= 1")
    return args


def plan_of(args: argparse.Namespace) -> Plan:
    checkpoints = tuple(sorted({int(x) for x in args.checkpoints.split(",") if x.strip()}
                               & set(range(1, args.days + 1)) | {1, args.days}))
    return Plan(symbols=args.symbols, history=args.history, days=args.days,
                retrain_every=args.retrain_every, checkpoints=checkpoints, seed=args.seed,
                run_config=args.config.resolve() if args.config else None, epochs=args.epochs,
                input=args.input.resolve() if args.input else None, on_invalid=args.on_invalid)


def run(args: argparse.Namespace, work: Path) -> dict:
    """The replay on a fresh home under ``work``, against a server if asked."""
    server, api, ready = None, None, None
    if args.server:
        server, api, _, ready = start_server(work)
    try:
        started = time.perf_counter()
        result = replay(plan_of(args), work, FreshPrefect(work / "prefect", api))
        result["wall_s"] = round(time.perf_counter() - started, 1)
    finally:
        if server:
            server.terminate()
            server.wait(timeout=30)
    result["server_ready_s"] = ready
    return result


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    start = wait_for_quiet(limit_s=args.quiet_wait_s)
    with tempfile.TemporaryDirectory(prefix="closecast-bench-year-") as tmp:
        work = args.keep.resolve() if args.keep else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        result = run(args, work)
    plan = plan_of(args)
    document = {"benchmark": "year", "symbols": plan.symbols,
                "input": str(args.input) if args.input else "generated",
                "days": plan.days, "retrain_every": plan.retrain_every,
                "checkpoint_days": list(plan.checkpoints), "epochs": args.epochs or "default",
                "config": args.config.read_text() if args.config else None,
                "gc": "closecast gc --config (every retention limit 0) after each week; "
                      "CLI runs do not run gc themselves (flows.schedule.ends_with_gc)",
                "prefect_api": "running server" if args.server else "temporary server per child",
                **result, "machine": machine(start)}
    text = json.dumps(document)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)
    return 0 if document["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
