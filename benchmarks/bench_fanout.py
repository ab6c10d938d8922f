"""Benchmark (d): per-symbol fan-out, 8 symbols trained with 1 worker and with 2 (JSON).

The 8 symbols are generated Kaggle-shaped data (benchmarks/generate_kaggle.py). Each setting
runs in its own child process, which first starts Prefect (one empty flow: the temporary
server) and imports TensorFlow, then times ``flow_for(config)(config)`` on a fresh home: the
whole training flow (ingest, validate, store, then per symbol features, train, backtest,
evaluate, plots, register), so the ratio is the fan-out's, not Prefect's start-up.
Settings: workers 1 and 2, each with ``runner.tf_threads`` automatic (cores // workers) and
with TensorFlow's default pools (``tf_threads: 0``).

    python benchmarks/bench_fanout.py [--symbols 8] [--days 900] [--epochs 5] [--folds 1]

Target: 2 workers take at most 0.65x the wall time of 1 (automatic TF threads).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from _common import machine, wait_for_quiet  # noqa: E402

TARGET = 0.65

CHILD = """
import json, logging, sys, time
from prefect import flow
flow(name="warm-up")(lambda: None)()
import tensorflow  # noqa: F401  (imported before timing, like a warm worker)
from flows.runners import tf_threads_for
from flows.training import flow_for
from tasks.core.config import RunConfig
config = RunConfig.model_validate_json(sys.argv[1])
if sys.argv[2] == "processes":  # a ProcessPoolTaskRunner: each worker imports TF itself
    config = config.model_copy(update={"runner": config.runner.model_copy(
        update={"kind": "processes"})})
if sys.argv[2] == "dask":  # worker processes instead of threads: 1 TF thread each
    import os
    from distributed import LocalCluster
    os.environ.update(TF_NUM_INTRAOP_THREADS="1", TF_NUM_INTEROP_THREADS="1")
    cluster = LocalCluster(n_workers=config.runner.max_workers, threads_per_worker=1,
                           processes=True, dashboard_address=None)
    config = config.model_copy(update={"runner": config.runner.model_copy(
        update={"dask_address": cluster.scheduler_address})})
    # warm each worker (imports and TF) before timing, like the thread runs' warm-up
    cluster_client = __import__("distributed").Client(cluster)
    cluster_client.run(lambda: __import__("tensorflow") and None)
logging.disable(logging.INFO)
started, cpu = time.perf_counter(), time.process_time()
results = flow_for(config)(config)
print(json.dumps({"flow_s": round(time.perf_counter() - started, 2),
                  "flow_cpu_s": round(time.process_time() - cpu, 2), "models": len(results),
                  "tf_threads": tf_threads_for(config.runner)}))
"""


def run_setting(work: Path, csv: Path, workers: int, tf_threads: int | None, epochs: int,
                folds: int, mode: str = "threads") -> dict:
    """One child process: warm Prefect and TF, then time the training flow."""
    config = {"home": str(work / f"home-{mode}-w{workers}-t{tf_threads}"), "input": str(csv),
              "model": {"epochs": epochs}, "backtest": {"folds": folds},
              "runner": {"max_workers": workers, "tf_threads": tf_threads}}
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PREFECT_HOME": str(work / "prefect"),
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "GX_ANALYTICS_ENABLED": "false",
           "TF_CPP_MIN_LOG_LEVEL": "2"}
    for name in ("PREFECT_API_URL", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"):
        env.pop(name, None)
    load = wait_for_quiet(limit_s=40, poll_s=10)["loadavg_1m_start"]
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", CHILD, json.dumps(config), mode], cwd=ROOT,
                          env=env,
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"fan-out child failed: {done.stderr[-2000:]}")
    child = json.loads(done.stdout.strip().splitlines()[-1])
    setting = "auto" if tf_threads is None else tf_threads
    return {"mode": mode, "workers": workers, "tf_threads_setting": setting,
            **child, "process_s": round(time.perf_counter() - started, 2),
            "loadavg_1m_before": load}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=8)
    parser.add_argument("--days", type=int, default=900)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--folds", type=int, default=1)
    parser.add_argument("--skip-default-threads", action="store_true",
                        help="only the automatic TF thread setting")
    parser.add_argument("--dask", action="store_true",
                        help="also 1 and 2 single-threaded Dask worker processes (LocalCluster)")
    parser.add_argument("--dask-only", action="store_true", help="only the Dask settings")
    parser.add_argument("--processes", action="store_true",
                        help="also 1 and 2 worker processes (runner.kind: processes)")
    parser.add_argument("--processes-only", action="store_true",
                        help="only the process-pool settings")
    args = parser.parse_args(argv)
    start = wait_for_quiet()
    with tempfile.TemporaryDirectory(prefix="closecast-bench-fanout-") as tmp:
        work = Path(tmp)
        csv = work / "prices.csv"
        subprocess.run([sys.executable, str(ROOT / "benchmarks" / "generate_kaggle.py"), str(csv),
                        "--symbols", str(args.symbols), "--days", str(args.days)],
                       check=True, stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        settings = [(1, None), (2, None)] + ([] if args.skip_default_threads
                                             else [(1, 0), (2, 0)])
        settings = [] if args.dask_only or args.processes_only else settings
        runs = [run_setting(work, csv, w, t, args.epochs, args.folds) for w, t in settings]
        if args.dask or args.dask_only:
            runs += [run_setting(work, csv, w, 1, args.epochs, args.folds, "dask") for w in (1, 2)]
        if args.processes or args.processes_only:
            runs += [run_setting(work, csv, w, None, args.epochs, args.folds, "processes")
                     for w in (1, 2)]
    by = {(r["workers"], r["tf_threads_setting"]): r["flow_s"]
          for r in runs if r["mode"] == "threads"}
    dask = {r["workers"]: r["flow_s"] for r in runs if r["mode"] == "dask"}
    procs = {r["workers"]: r["flow_s"] for r in runs if r["mode"] == "processes"}
    ratio = (by[(2, "auto")] / by[(1, "auto")] if by
             else procs[2] / procs[1] if procs else dask[2] / dask[1])
    result = {"benchmark": "fanout", "symbols": args.symbols, "days": args.days,
              "epochs": args.epochs, "backtest_folds": args.folds, "runs": runs,
              "ratio_2_over_1": round(ratio, 3),
              "ratio_2_over_1_tf_default_threads": (round(by[(2, 0)] / by[(1, 0)], 3)
                                                    if (2, 0) in by else None),
              "ratio_2_over_1_dask_processes": (round(dask[2] / dask[1], 3) if dask else None),
              "ratio_2_over_1_process_pool": (round(procs[2] / procs[1], 3) if procs else None),
              "target_ratio_max": TARGET, "pass": ratio <= TARGET, "machine": machine(start)}
    print(json.dumps(result))  # noqa: T201
    return 0


if __name__ == "__main__":
    sys.exit(main())
