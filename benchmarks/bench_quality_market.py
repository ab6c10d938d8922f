"""The default `closecast run` on real market data, scored the way issue 30 states its targets.

Input: the real Kaggle market file (``--input``, e.g. the S&P 500 market
``kaggle_sp500_5yr_market.csv.gz``, run with ``--on-invalid drop``), or the home of a market
run already made (``--home``: its latest versions are scored, no run), or a file found in
``benchmarks/data/``; else every real symbol the repository carries, 2010-01-04..2016-12-30,
written as one Kaggle-shaped file: AAL and ZION (the split-adjusted sample), DAL, LUV and UAL
(the airlines file; its AAL is the sample's, its ALK carries two unadjusted 2:1 splits), AMZN
and WEN (Yahoo exports). As of the last row; the test window is each symbol's last 15% of
windows (261 days on 2010-2016).

Printed JSON (last line): per symbol and averaged, the version's CRPS, the network's own
(ungated) CRPS, GARCH-t's and EWMA's, each over constant volatility's; the source the gate
chose; 50/80/95% coverage; VaR 1%/5% Kupiec passes (p >= 0.05); the DM statistic of the
network's CRPS gain over GARCH-t on the pooled test rows (daily cross-sectional mean, HAC
over days); the network's and the version's mean log score per day against GARCH-t's, and the
95% cover on each symbol's 5% largest-move test days (network, version, GARCH-t); the point
forecast's RMSE / naive; the targets and whether each is met.

    python benchmarks/bench_quality_market.py [--input FILE | --home HOME] [--epochs N]
                                              [--plot PNG] [--config RUNCONFIG]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import REAL, ROOT, child_env, timed_child  # noqa: E402
from tasks.core.version_files import read_metrics  # noqa: E402

MARKET_FILE = "kaggle_nyse_prices-split-adjusted_market.csv.gz"
SAMPLE = ROOT / "data" / "sample" / "prices-split-adjusted.csv"
FIRST, LAST = "2010-01-04", "2016-12-30"
UNIVERSE = [(SAMPLE, ("AAL", "ZION")),
            (REAL / "kaggle_nyse_prices_unadjusted_airlines.csv", ("DAL", "LUV", "UAL")),
            (REAL / "AMZN.csv", ("AMZN",)), (REAL / "WEN.csv", ("WEN",))]
TARGETS = {"lstm_vs_garch_max": 0.98, "version_vs_garch_max": 0.99, "share_lstm_min": 0.9,
           "coverage_80": (0.77, 0.83), "coverage_95": (0.93, 0.97), "kupiec_5_pass_min": 0.9}


def real_universe(target: Path) -> Path:
    """Every real symbol the repository carries over 2010-2016, as one Kaggle-shaped CSV."""
    from tasks.data.ingest import read_prices

    frames = []
    for path, symbols in UNIVERSE:
        frame = read_prices(path, symbols=symbols if len(symbols) > 1 else ())
        if len(symbols) == 1:
            frame = frame.assign(symbol=symbols[0])
        frames.append(frame[frame["symbol"].isin(symbols)])
    prices = pd.concat(frames)
    prices = prices[(prices["date"] >= FIRST) & (prices["date"] <= LAST)]
    columns = ["date", "symbol", "open", "close", "low", "high", "volume"]
    prices = prices.sort_values(["date", "symbol"])[columns]
    prices.assign(date=prices["date"].dt.strftime("%Y-%m-%d")).to_csv(target, index=False)
    return target


def symbol_row(metrics: dict) -> dict:
    """One version's figures from its metrics.json."""
    dist = metrics["distribution"]
    model, garch = dist["model"], dist["garch"]
    own = model.get("lstm_ungated") or {}
    kupiec = {level: model["var_backtest"][level]["kupiec_p"] >= 0.05 for level in ("1%", "5%")}
    return {"source": model["source"], "gate": model.get("gate"),
            "version_crps_vs_constant": model["crps_vs_constant"],
            "lstm_crps_vs_constant": own.get("crps_vs_constant"),
            "garch_crps_vs_constant": garch["crps_vs_constant"],
            "ewma_crps_vs_constant": dist["ewma"]["crps_vs_constant"],
            "lstm_vs_garch": (own["crps"] / garch["crps"]) if own else None,
            "version_vs_garch": model["crps"] / garch["crps"],
            # nats per day; None for versions written before log scores were
            "lstm_log_score_vs_garch": _difference(own.get("log_score"), garch.get("log_score")),
            "version_log_score_vs_garch": _difference(model.get("log_score"),
                                                      garch.get("log_score")),
            "lstm_large_move_coverage_95": own.get("large_move_coverage_95"),
            "garch_large_move_coverage_95": garch.get("large_move_coverage_95"),
            "version_large_move_coverage_95": model.get("large_move_coverage_95"),
            **{f"coverage_{k}": v for k, v in model["coverage"].items()},
            "kupiec_1_pass": kupiec["1%"], "kupiec_5_pass": kupiec["5%"],
            "rmse_vs_naive": metrics["rmse_vs_naive"],
            "test_start": metrics["test_start"], "test_end": metrics["test_end"]}


def _difference(a: float | None, b: float | None) -> float | None:
    return a - b if a is not None and b is not None else None


def latest_versions(home: Path) -> list[Path]:
    """Each symbol's latest version directory in ``home``."""
    out = []
    for symbol in sorted(p for p in (home / "models").iterdir() if not p.name.startswith("_")):
        numbers = [int(v.name) for v in symbol.iterdir() if v.name.isdigit()]
        if numbers:
            out.append(symbol / str(max(numbers)))
    return out


def mean_row(rows: dict[str, dict]) -> dict:
    """The per-symbol figures averaged over symbols, and the share that chose the network."""
    out = {}
    for key in next(iter(rows.values())):
        values = [r[key] for r in rows.values() if isinstance(r[key], int | float)]
        if values:
            out[key] = float(np.mean(values))
    out["share_lstm"] = float(np.mean([r["source"] == "lstm" for r in rows.values()]))
    return out


def pooled_test(predictions: dict[str, pd.DataFrame]) -> dict:
    """DM of the network's CRPS gain over GARCH-t on the pooled test rows (HAC over days),
    and the pooled calibration of the versions' distributions."""
    from tasks.distribution.gate import pooled_gain

    have = {s: p for s, p in predictions.items() if p["crps_network"].notna().all()}
    gain, se = pooled_gain({s: p["date"].to_numpy() for s, p in have.items()},
                           {s: p["crps_garch"].to_numpy() for s, p in have.items()},
                           {s: p["crps_network"].to_numpy() for s, p in have.items()})
    rows = pd.concat(predictions.values())
    levels = [c for c in rows.columns if c.startswith("q")]
    calibration = {c[1:]: float(np.mean(rows["actual"] <= rows[c])) for c in levels}
    return {"dm_lstm_vs_garch": gain / se if se > 0 else 0.0, "gain_vs_garch": gain,
            "symbols": len(have), "rows": len(rows),
            "calibration": calibration,
            "pit_deciles": np.histogram(rows["pit"], bins=10, range=(0, 1))[0].tolist()}


def plot_calibration(pooled: dict, target: Path) -> None:
    """Reliability (observed vs nominal quantile level) and the PIT histogram, pooled."""
    from tasks.reporting.figures import pyplot, save

    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    nominal = [float(k) for k in pooled["calibration"]]
    left.plot([0, 1], [0, 1], color="grey", lw=1, label="perfect")
    left.plot(nominal, list(pooled["calibration"].values()), marker="o", label="versions")
    left.set(xlabel="nominal quantile level", ylabel="share of closes at or below it",
             title=f"Calibration, {pooled['rows']} pooled test rows")
    left.legend()
    counts = np.array(pooled["pit_deciles"])
    right.bar(np.arange(0.05, 1, 0.1), counts / counts.sum(), width=0.09)
    right.axhline(0.1, color="grey", lw=1)
    right.set(xlabel="PIT", ylabel="share of rows", title="PIT histogram (flat = calibrated)")
    save(fig, target)


def verdicts(mean: dict) -> dict:
    """Each target of issue 30, met or not."""
    return {
        "lstm_crps_le_0.98_garch": mean.get("lstm_vs_garch", np.inf) <= TARGETS[
            "lstm_vs_garch_max"],
        "version_crps_le_0.99_garch": mean["version_vs_garch"] <= TARGETS["version_vs_garch_max"],
        "network_serves_ge_90pct": mean["share_lstm"] >= TARGETS["share_lstm_min"],
        "coverage_80_in_77_83": TARGETS["coverage_80"][0] <= mean["coverage_80"]
        <= TARGETS["coverage_80"][1],
        "coverage_95_in_93_97": TARGETS["coverage_95"][0] <= mean["coverage_95"]
        <= TARGETS["coverage_95"][1],
        "kupiec_5_pass_ge_90pct": mean["kupiec_5_pass"] >= TARGETS["kupiec_5_pass_min"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", type=Path, default=None)
    parser.add_argument("--epochs", type=int, default=None, help="model.epochs (default: the "
                        "RunConfig's)")
    parser.add_argument("--plot", type=Path, default=None, help="calibration PNG to write")
    parser.add_argument("--config", type=Path, default=None,
                        help="a RunConfig file (e.g. another head, to compare)")
    parser.add_argument("--home", type=Path, default=None,
                        help="score the latest versions of a home a market run already wrote "
                             "(no run; run_s is null)")
    args = parser.parse_args()
    found = ROOT / "benchmarks" / "data" / MARKET_FILE
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if args.home:
            seconds, versions = None, latest_versions(args.home)
        else:
            source = args.input or (found if found.exists() else real_universe(work / "real.csv"))
            command = [sys.executable, "-m", "flows.cli", "run", "--input", str(source),
                       "--on-invalid", "drop", "--home", str(work / "home"), "--json"]
            if args.epochs:
                command += ["--epochs", str(args.epochs)]
            if args.config:
                command += ["--config", str(args.config)]
            seconds, stdout = timed_child(command, child_env(work / "prefect", None))
            result = json.loads(stdout.strip().splitlines()[-1])
            versions = [Path(model["path"]) for model in result["models"]]
        rows, predictions = {}, {}
        for version in versions:
            model = {"symbol": version.parent.name}
            rows[model["symbol"]] = symbol_row(read_metrics(version).to_dict())
            predictions[model["symbol"]] = pd.read_parquet(version / "predictions.parquet")
        mean = mean_row(rows)
        pooled = pooled_test(predictions)
        if args.plot:
            plot_calibration(pooled, args.plot)
    out = {"input": str(args.home or args.input
                        or (found if found.exists() else "real files (see doc)")),
           "config": str(args.config) if args.config else "default",
           "symbols": len(rows), "run_s": seconds, "mean": mean, "pooled": pooled,
           "targets": (met := verdicts(mean)), "pass": all(met.values()), "per_symbol": rows}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
