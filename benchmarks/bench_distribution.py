"""Benchmark: calibrated predictive distributions on every real file, default configuration.

Per symbol (AAL, ZION from the Kaggle split-adjusted file; AMZN, WEN from Yahoo exports): train
the default model on the train split, gate its Student-t distribution against the constant,
EWMA and GARCH(1,1)-t baselines on validation, and score all of them on the test window.

    python benchmarks/bench_distribution.py [--epochs N]

Targets, averaged over symbols: the version's CRPS <= 0.97 x constant volatility's and <=
GARCH's; its 80% intervals cover 77-83% and its 95% intervals 93-97% of test days.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from _common import REAL_FILES, machine, wait_for_quiet  # noqa: E402

FILES = REAL_FILES


def score_symbol(path: Path, symbol: str, epochs: int | None, work: Path) -> dict:
    """The distribution section of metrics.json for one symbol under the default config."""
    from tasks.core.config import RunConfig
    from tasks.data.ingest import read_prices
    from tasks.evaluation.evaluate import score_frame
    from tasks.features.feature_table import build_feature_frame
    from tasks.features.windows import split_arrays
    from tasks.forecaster.forecaster import Network
    from tasks.forecaster.network import fit_arrays

    config = RunConfig()
    model_cfg = config.model if epochs is None else config.model.model_copy(
        update={"epochs": epochs})
    prices = read_prices(path, None, (symbol,))
    prices = prices[prices["symbol"] == symbol].reset_index(drop=True)
    frame, scaler = build_feature_frame(prices, config.features, config.split)
    train, validation = split_arrays(frame, "train", "validation")
    started = time.perf_counter()
    trained = fit_arrays(train, validation, symbol, model_cfg, work / symbol,
                         logging.getLogger("bench"))
    fit_s = time.perf_counter() - started
    metrics, _, _ = score_frame(Network.load(trained.model_path), frame, scaler, config.features,
                                len(train[1]), config.evaluation)
    d = metrics["distribution"]
    lstm = d["model"].get("lstm_ungated", {})
    return {"source": d["model"]["source"],
            "test": f"{metrics['test_start']}..{metrics['test_end']}",
            "n_test": metrics["n_test"], "fit_s": round(fit_s, 1),
            "validation_dm": d["model"]["validation_dm"],
            "crps_vs_constant": {k: round(v["crps_vs_constant"], 4) for k, v in d.items()}
            | {"lstm_ungated": round(lstm.get("crps_vs_constant", float("nan")), 4)},
            "coverage_80": {k: round(v["coverage"]["80"], 4) for k, v in d.items()},
            "coverage_95": {k: round(v["coverage"]["95"], 4) for k, v in d.items()},
            "coverage_5d_80": {k: v["coverage_5d_80"] for k, v in d.items()},
            "lstm_ungated_coverage": {k: round(v, 4) for k, v in lstm.get("coverage", {}).items()},
            "crps_model_le_garch": d["model"]["crps"] <= d["garch"]["crps"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, help="override the default epochs (smoke test)")
    args = parser.parse_args(argv)
    start = wait_for_quiet(limit_s=60)
    with tempfile.TemporaryDirectory(prefix="closecast-bench-dist-") as tmp:
        per = {s: score_symbol(p, s, args.epochs, Path(tmp)) for s, p in FILES.items()}

    def mean(key: str, name: str) -> float:
        return round(float(np.mean([r[key][name] for r in per.values()])), 4)

    avg = {"crps_vs_constant": mean("crps_vs_constant", "model"),
           "garch_crps_vs_constant": mean("crps_vs_constant", "garch"),
           "ewma_crps_vs_constant": mean("crps_vs_constant", "ewma"),
           "coverage_80": mean("coverage_80", "model"), "coverage_95": mean("coverage_95", "model")}
    targets = {"crps_le_0.97_constant": avg["crps_vs_constant"] <= 0.97,
               "crps_le_garch": avg["crps_vs_constant"] <= avg["garch_crps_vs_constant"],
               "coverage_80_in_77_83": 0.77 <= avg["coverage_80"] <= 0.83,
               "coverage_95_in_93_97": 0.93 <= avg["coverage_95"] <= 0.97}
    print(json.dumps({"benchmark": "distribution", "symbols": per, "mean": avg,  # noqa: T201
                      "targets": targets, "pass": all(targets.values()),
                      "machine": machine(start)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
