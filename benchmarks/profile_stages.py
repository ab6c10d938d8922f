"""CPU profile of a global market run's per-symbol stages, without Prefect: prepare, gate,
evaluate, score (backtest folds) and register, each under cProfile in this one process.

    python benchmarks/profile_stages.py setup --home HOME     # once: HOME/lake from a run
    python benchmarks/profile_stages.py profile --home HOME [--top 25] [--out STATS_DIR]

``setup`` prepares every symbol of HOME's lake and trains the global network and its backtest
fold networks with the default config (not profiled), keeping them in HOME/profile-state.pkl.
``profile`` then times each stage (CPU seconds of this process, ``time.process_time``) and
prints its top functions by self time; it registers into a fresh models directory each time,
so runs before and after a change compare the same work.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pickle
import pstats
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

STATE = "profile-state.pkl"


def setup(home: Path) -> None:
    """Prepare every symbol and train the global and fold networks; pickle what they give."""
    import logging

    from tasks.core.config import RunConfig
    from tasks.evaluation.backtest import newest_fold_is_final
    from tasks.features.datasets import prepare_or_leave_out, without_left_out
    from tasks.market.global_model import train_global, train_global_fold
    logging.basicConfig(level=logging.INFO)
    config, lake = RunConfig(home=home), home / "lake"
    symbols = sorted(p.name.split("=", 1)[1] for p in (lake / "prices").glob("symbol=*"))
    datasets = without_left_out([prepare_or_leave_out(lake, s, None, config.features,
                                                      config.split) for s in symbols],
                                logging.getLogger("setup"))
    work = home / "work"
    shared = train_global(datasets, lake, config.features, config.model, config.global_model,
                          work)
    trained = config.backtest.folds - newest_fold_is_final(config.model, config.backtest)
    folds = [train_global_fold(datasets, lake, config.features, config.split, config.model,
                               config.backtest, config.global_model, j, work)
             for j in range(trained)]
    folds += [shared] * (config.backtest.folds - trained)
    (home / STATE).write_bytes(pickle.dumps((symbols, datasets, shared, folds)))


def profiled(name: str, call, top: int, out: Path | None):
    """``call()`` under cProfile: its result; prints CPU seconds and the top self times."""
    profile = cProfile.Profile()
    cpu, wall = time.process_time(), time.perf_counter()
    result = profile.runcall(call)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    text = io.StringIO()
    stats = pstats.Stats(profile, stream=text)
    stats.sort_stats("tottime").print_stats(top)
    print(f"== {name}: {cpu:.2f} CPU s ({wall:.2f} s wall)")
    print("\n".join(line for line in text.getvalue().splitlines()[6:] if line.strip()))
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        stats.dump_stats(out / f"{name}.prof")
    return result, cpu


def dump(path: Path, gate, evaluations, registered) -> None:
    """What the stages decided and scored, as JSON (to compare runs before/after a change):
    the gate, each version's metrics and promotion, and its predictions' column sums."""
    import json
    from dataclasses import asdict

    import pandas as pd

    sums = {e.symbol: pd.read_parquet(e.predictions_path).drop(columns="date").sum().to_dict()
            for e in evaluations}

    path.write_text(json.dumps({"gate": asdict(gate), "versions": {
        v.symbol: {"promoted": v.promoted, "reason": v.reason, "fallback": v.fallback,
                   "metrics": v.metrics.to_dict(), "predictions": sums[v.symbol]}
        for v in registered}},
        indent=1, sort_keys=True, default=str))


def profile(home: Path, top: int, out: Path | None, dump_to: Path | None = None) -> None:
    """Each stage once, profiled, on the state ``setup`` kept (``dump_to``: what it gave)."""
    import logging

    from tasks.core.config import RunConfig
    from tasks.core.layout import Layout
    from tasks.features.datasets import prepare_or_leave_out
    from tasks.market.global_model import evaluate_symbols, gate_global, score_symbols
    from tasks.registry.publish import Recipe, register_candidates

    logging.basicConfig(level=logging.WARNING)
    symbols, datasets, shared, folds = pickle.loads((home / STATE).read_bytes())
    config, lake = RunConfig(home=home), home / "lake"
    f, s, e, b = config.features, config.split, config.evaluation, config.backtest
    totals = {}
    _, totals["prepare"] = profiled("prepare", lambda: [prepare_or_leave_out(
        lake, sym, None, f, s) for sym in symbols], top, out)
    gate, totals["gate"] = profiled("gate", lambda: gate_global(datasets, f, e, shared), top, out)
    evaluations, totals["evaluate"] = profiled("evaluate", lambda: evaluate_symbols(
        datasets, f, e, shared, pooled=gate), top, out)
    candidates, totals["score"] = profiled("score", lambda: score_symbols(
        datasets, lake, f, s, e, b, shared, folds, home / "work", evaluations, draw=False),
        top, out)
    fresh = Path(tempfile.mkdtemp(prefix="register-", dir=home))
    try:
        recipe = Recipe(config.features, config.split, config.model, config.evaluation)
        (fresh / "lake").symlink_to(lake)
        registered, totals["register"] = profiled("register", lambda: register_candidates(
            Layout(fresh), candidates, recipe), top, out)
    finally:
        shutil.rmtree(fresh)
    if dump_to is not None:
        dump(dump_to, gate, evaluations, registered)
    print("CPU seconds: " + ", ".join(f"{k} {v:.2f}" for k, v in totals.items())
          + f", total {sum(totals.values()):.2f} ({len(datasets)} symbols)")


def main() -> None:
    from flows.runners import size_thread_pools
    from tasks.core.config import RunConfig

    size_thread_pools(RunConfig().runner)  # TF's and BLAS's threads as a run sizes them
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("step", choices=("setup", "profile"))
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--out", type=Path, default=None, help="keep each stage's .prof here")
    parser.add_argument("--dump", type=Path, default=None, help="write the outputs as JSON")
    args = parser.parse_args()
    if args.step == "setup":
        setup(args.home)
    else:
        profile(args.home, args.top, args.out, args.dump)


if __name__ == "__main__":
    main()
