"""Global vs per-symbol models on real prices: point and distribution scores and wall time (JSON).

Seven real symbols from tests/data (AAL, ZION from the split-adjusted Kaggle subset; AMZN, WEN
from Yahoo exports; DAL, LUV, UAL from the unadjusted Kaggle airlines, whose prices had no
split in 2010-2016 — ALK is left out for its two). For each run size N (the first N of that
list) the real CLI trains the same symbols twice in child processes, default config except
``global_model.mode``: ``per_symbol``, then ``global``. Per mode it reports the whole-process
wall time and, per symbol, the test-window scores of metrics.json: RMSE / naive, the version's
CRPS / constant volatility (after the distribution gate), the LSTM's own ungated CRPS ratio,
the 80% interval's coverage, the walk-forward backtest's mean RMSE / naive, and which
distribution the gate kept.

    python benchmarks/compare_global.py [--sizes 2,4,7] [--epochs N] [--no-wait]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from _common import child_env, machine, wait_for_quiet  # noqa: E402

DATA = ROOT / "tests" / "data"
SOURCES = [("kaggle_nyse_prices-split-adjusted_AAL_ZION.csv", None),
           ("AMZN.csv", "AMZN"), ("WEN.csv", "WEN"),
           ("kaggle_nyse_prices_unadjusted_airlines.csv", None)]
ORDER = ["AAL", "AMZN", "ZION", "WEN", "DAL", "LUV", "UAL"]  # mixed sectors first
COLUMNS = ["date", "symbol", "open", "close", "low", "high", "volume"]


def combined_csv(target: Path) -> Path:
    """The seven symbols' daily rows in one Kaggle-format file (2010-01-04..2016-12-30)."""
    from tasks.data.ingest import read_prices

    frames = [read_prices(DATA / name, symbols=[symbol] if symbol else None)
              for name, symbol in SOURCES]
    prices = pd.concat(frames)
    prices = prices[prices["symbol"].isin(ORDER)].drop_duplicates(["symbol", "date"])
    prices = prices[(prices["date"] >= "2010-01-04") & (prices["date"] <= "2016-12-30")]
    prices[COLUMNS].sort_values(["date", "symbol"]).to_csv(target, index=False,
                                                           date_format="%Y-%m-%d")
    return target


def run_mode(csv: Path, symbols: list[str], mode: str, epochs: int | None,
             workdir: Path) -> dict:
    """One cold `closecast run` (child process): wall seconds and per-symbol scores."""
    workdir.mkdir(parents=True, exist_ok=True)
    home, prefect_home = workdir / f"home-{mode}", workdir / f"prefect-{mode}"
    config = workdir / f"{mode}.yaml"
    config.write_text(f"global_model:\n  mode: {mode}\n")
    args = [sys.executable, "-m", "flows.cli", "run", "--input", str(csv), "--symbols",
            ",".join(symbols), "--config", str(config), "--home", str(home), "--json"]
    if epochs:
        args += ["--epochs", str(epochs)]
    started = time.perf_counter()
    done = subprocess.run(args, cwd=ROOT, env=child_env(prefect_home, None), capture_output=True,
                          text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{mode} run failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    return {"wall_s": round(wall, 1),
            "symbols": {m["symbol"]: scores(m["metrics"]) for m in summary["models"]}}


def scores(metrics: dict) -> dict:
    """The comparison's numbers from one version's metrics.json."""
    model = metrics["distribution"]["model"]
    ungated = model.get("lstm_ungated") or {}
    return {"rmse_vs_naive": round(metrics["rmse_vs_naive"], 4),
            "crps_vs_constant": round(model["crps_vs_constant"], 4),
            "lstm_ungated_crps_vs_constant": (round(ungated["crps_vs_constant"], 4)
                                              if ungated else None),
            "coverage_80": round(model["coverage"]["80"], 3),
            "backtest_mean_rmse_vs_naive": round(metrics["backtest"]["mean_rmse_vs_naive"], 4),
            "distribution_source": model["source"]}


def means(per_symbol: dict[str, dict]) -> dict:
    """Mean of each numeric score over the symbols, and how often each source was kept."""
    keys = ("rmse_vs_naive", "crps_vs_constant", "lstm_ungated_crps_vs_constant",
            "coverage_80", "backtest_mean_rmse_vs_naive")
    out = {}
    for key in keys:
        values = [s[key] for s in per_symbol.values() if s[key] is not None]
        out[key] = round(sum(values) / len(values), 4) if values else None
    sources = [s["distribution_source"] for s in per_symbol.values()]
    out["sources"] = {name: sources.count(name) for name in sorted(set(sources))}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="2,4,7", help="run sizes N (first N symbols)")
    parser.add_argument("--epochs", type=int, help="override model.epochs (smoke runs)")
    parser.add_argument("--no-wait", action="store_true",
                        help="do not wait for a quiet machine (the load is still recorded)")
    args = parser.parse_args()
    start = wait_for_quiet(limit_s=0 if args.no_wait else 180)
    results = {}
    with tempfile.TemporaryDirectory(prefix="compare-global-") as tmp:
        csv = combined_csv(Path(tmp) / "real7.csv")
        for n in (int(s) for s in args.sizes.split(",")):
            symbols = ORDER[:n]
            row = {}
            for mode in ("per_symbol", "global"):
                row[mode] = run_mode(csv, symbols, mode, args.epochs, Path(tmp) / f"n{n}")
                row[mode]["mean"] = means(row[mode]["symbols"])
            row["global_wall_vs_per_symbol"] = round(
                row["global"]["wall_s"] / row["per_symbol"]["wall_s"], 3)
            results[str(n)] = {"symbols": symbols, **row}
    print(json.dumps({"benchmark": "compare_global", "machine": machine(start),
                      "epochs": args.epochs, "results": results}, indent=2))


if __name__ == "__main__":
    main()
