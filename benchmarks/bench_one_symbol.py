"""Benchmark: one symbol, whole process — cold ``closecast run`` vs the seeds' recipe as a script.

Issue 12 point 5. One symbol's real closes (AAL from the embedded Kaggle sample: 1,762 days,
written as a close-only ``date,symbol,close,volume`` file). Both sides are child processes timed
from start to exit, as a user waits for them:

- ``seed``: the seeds' recipe run as a script (``--child-seed``): import Keras, read the CSV,
  window of 100 closes, MinMax on all closes, 80/20 split, 2 x LSTM(50), 20 epochs, batch 32,
  predict the test window.
- ``closecast``: ``python -m flows.cli run --input FILE --json`` on a fresh home, default config
  (ingest, validation, storage, features, training, 3-fold backtest, baselines, distribution
  scores, reports, registration), once with Prefect's temporary server (no API set: the server
  start is inside the timing) and once against a ``prefect server start`` already running
  (PREFECT_API_URL; what ``make run`` leaves running: the server start is outside the timing),
and against that server once more with ``backtest.folds: 0`` (information: what the
walk-forward backtest's fold trainings cost; not the default, so not the target's figure).

The RMSEs are compared on the same days: closecast's test window (its metrics.json dates), on
which the seed's predictions are scored too.

The seed script and the run against a running server are timed ``--repeat`` times, one after
the other in turn (seed, closecast, seed, closecast, ...), and their medians are compared: on
this 2-core VM the same seed script took anywhere from 34 to 53 s within one hour, so a single
pair says more about the machine than about the code. Every sample is in the JSON.

    python benchmarks/bench_one_symbol.py [--repeat 3] [--seed-epochs 20] [--epochs N]

Target: closecast's cold wall <= 0.5 x the seed script's (medians), with a lower RMSE on the
shared days.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from _common import child_env, machine, start_server, timed_child, wait_for_quiet  # noqa: E402

SAMPLE = ROOT / "data" / "sample" / "prices-split-adjusted.csv"
TARGET = 0.5


def write_closes(symbol: str, out: Path) -> Path:
    """One symbol's real closes as a close-only Kaggle-layout file."""
    frame = pd.read_csv(SAMPLE)
    frame = frame.loc[frame["symbol"] == symbol, ["date", "symbol", "close", "volume"]]
    frame.to_csv(out, index=False)
    return out


def seed_child(path: Path, epochs: int, out: Path) -> None:
    """The seeds' recipe as a script: its predictions of the test window, as CSV."""
    from compare_recipes import seed_forecast

    rows, predicted, fit_s = seed_forecast(pd.read_csv(path, parse_dates=["date"]), epochs)
    rows.assign(predicted=predicted).to_csv(out, index=False)


def closecast_cold(path: Path, work: Path, epochs: int | None, api: str | None,
                   config: str | None = None, tag: str = "") -> dict:
    """A cold ``closecast run`` on a fresh home (``config``: a RunConfig YAML text); its wall
    time and test metrics."""
    home = work / f"home-{'server' if api else 'temporary'}{'-config' if config else ''}{tag}"
    args = [sys.executable, "-m", "flows.cli", "run", "--input", str(path), "--home", str(home),
            "--json"]
    if epochs:
        args += ["--epochs", str(epochs)]
    if config:
        (work / f"{home.name}.yaml").write_text(config)
        args += ["--config", str(work / f"{home.name}.yaml")]
    seconds, stdout = timed_child(args, child_env(work / f"prefect-{home.name}", api))
    model = json.loads(stdout.strip().splitlines()[-1])["models"][0]
    m = model["metrics"]
    return {"wall_s": seconds, "rmse": m["rmse"], "naive_rmse": m["naive_rmse"],
            "rmse_vs_naive": m["rmse_vs_naive"], "test_start": m["test_start"],
            "test_end": m["test_end"], "n_test": m["n_test"], "promoted": model["promoted"]}


def rmse_on(rows: pd.DataFrame, start: str, end: str) -> dict:
    """The seed's RMSE (and naive's) on the days from ``start`` to ``end``."""
    days = rows[(rows["date"] >= start) & (rows["date"] <= end)]
    error = days["predicted"] - days["close"]
    naive = days["base_close"] - days["close"]
    return {"n": len(days), "rmse": float(np.sqrt(np.mean(error ** 2))),
            "naive_rmse": float(np.sqrt(np.mean(naive ** 2)))}


def seed_run(path: Path, work: Path, epochs: int, tag: str) -> tuple[float, Path]:
    """The seed script in a child process: its wall time and predictions file."""
    predictions = work / f"seed-predictions{tag}.csv"
    seconds, _ = timed_child([sys.executable, __file__, "--seed-epochs", str(epochs),
                              "--child-seed", str(path), str(predictions)],
                             child_env(work / f"prefect-seed{tag}", None))
    return seconds, predictions


def spread(samples: list[float]) -> dict:
    """Median, min and max of repeated wall times, and the samples in the order they ran."""
    return {"wall_s": round(statistics.median(samples), 2), "min_s": min(samples),
            "max_s": max(samples), "samples_s": samples}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbol", default="AAL")
    parser.add_argument("--seed-epochs", type=int, default=20)
    parser.add_argument("--epochs", type=int, help="closecast's epochs (smoke test)")
    parser.add_argument("--repeat", type=int, default=3,
                        help="seed / running-server pairs, run in turn; medians are compared")
    parser.add_argument("--skip-server", action="store_true",
                        help="leave out the runs against a running Prefect server")
    parser.add_argument("--child-seed", nargs=2, type=Path, metavar=("CSV", "OUT"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child_seed:
        seed_child(args.child_seed[0], args.seed_epochs, args.child_seed[1])
        return 0
    start = wait_for_quiet(limit_s=60)
    with tempfile.TemporaryDirectory(prefix="bench-one-") as tmp:
        work = Path(tmp)
        path = write_closes(args.symbol, work / f"{args.symbol}-closes.csv")
        seed_s, server_runs, runs = [], [], {}
        server = None
        try:
            if not args.skip_server:
                server, api, _, ready_s = start_server(work)
            for i in range(args.repeat if not args.skip_server else 1):
                seconds, predictions = seed_run(path, work, args.seed_epochs, f"-{i}")
                seed_s.append(seconds)
                if server is not None:
                    server_runs.append(closecast_cold(path, work, args.epochs, api, tag=f"-{i}"))
            runs["temporary_server"] = closecast_cold(path, work, args.epochs, None)
            if server is not None:
                first = server_runs[0]
                runs["running_server"] = {**first, **spread([r["wall_s"] for r in server_runs]),
                                          "server_start_s": ready_s}
                # what the walk-forward backtest (folds trained beside the final model) costs
                runs["running_server_no_backtest"] = closecast_cold(
                    path, work, args.epochs, api, "backtest:\n  folds: 0\n")
        finally:
            if server is not None:
                server.terminate()
                server.wait(timeout=30)
        rows = pd.read_csv(predictions)
        days = len(pd.read_csv(path))
        first = runs["temporary_server"]
        seed = {**spread(seed_s), "epochs": args.seed_epochs,
                "on_closecast_test_days": rmse_on(rows, first["test_start"], first["test_end"])}
    for run in runs.values():
        run["wall_vs_seed"] = round(run["wall_s"] / seed["wall_s"], 3)
        run["rmse_below_seed"] = run["rmse"] < seed["on_closecast_test_days"]["rmse"]
        run["pass"] = run["wall_vs_seed"] <= TARGET and run["rmse_below_seed"]
    if server_runs:
        runs["running_server"]["pairwise_vs_seed"] = [
            round(r["wall_s"] / s, 3) for r, s in zip(server_runs, seed_s, strict=True)]
    print(json.dumps({"benchmark": "one_symbol", "symbol": args.symbol, "days": days,
                      "target": f"closecast cold wall <= {TARGET} x seed script (medians of "
                                f"{args.repeat} interleaved pairs), lower RMSE",
                      "seed": seed, "closecast": runs, "machine": machine(start),
                      "pass": any(r["pass"] for name, r in runs.items()
                                  if "no_backtest" not in name)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
