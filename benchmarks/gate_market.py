"""The distribution gate replayed on a global market run's home: which range source each rule
would serve, and how those choices score out of sample.

From a home that `closecast run` trained one global network in (e.g. on the real market file),
for each symbol's latest version: the network's and each baseline's CRPS on every validation
and test row (the version's own feature table, network and saved baseline fits). Then:

- the run's rule (``tasks.distribution.gate.pooled_choice``) and the earlier one (each
  symbol's best of three baselines picked on its validation rows, the network gated by the DM
  of the pooled daily mean gain over those) decide each symbol's source on validation rows;
- each decision is scored on the test rows: mean of per-symbol test CRPS ratios over GARCH-t
  for the served sources, for "every symbol its best-of-three", "every symbol the pooled family",
  and for the network alone.

    python benchmarks/gate_market.py --home HOME [--scores FILE.npz] [--tolerance 0.01]

``--scores``: keep (or reuse) the extracted per-row scores, so a rule can be replayed without the
network. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tasks.distribution.volatility import BASELINES  # noqa: E402

SPLITS = ("validation", "test")


def extract(home: Path) -> dict[str, dict[str, np.ndarray]]:
    """Per symbol: ``{split}_dates``, ``{split}_{source}`` CRPS rows for the network ("lstm") and
    each baseline, read from the latest version of every symbol in ``home``."""
    import pandas as pd

    from tasks.core.training_config import EvaluationConfig, training_span
    from tasks.distribution.gate import frame_returns
    from tasks.distribution.scoring import crps_price
    from tasks.distribution.volatility import baseline_dists
    from tasks.forecaster.forecaster import Forecaster, network_forecast
    from tasks.registry.networks import model_file

    out: dict[str, dict[str, np.ndarray]] = {}
    for symbol_dir in sorted(p for p in (home / "models").iterdir() if not p.name.startswith("_")):
        versions = sorted(int(v.name) for v in symbol_dir.iterdir() if v.name.isdigit())
        if not versions:
            continue
        version = symbol_dir / str(versions[-1])
        forecaster = Forecaster.load(version, model_file(version))
        tables = list((home / "lake" / "features").glob(f"*/symbol={symbol_dir.name}/*.parquet"))
        frames = [pd.read_parquet(t) for t in tables]
        frame = max(frames, key=lambda f: f["date"].max())  # the latest feature table
        net = network_forecast(forecaster.network, frame, forecaster.scaler, forecaster.features,
                               EvaluationConfig())
        split = frame["split"].to_numpy()
        n_train = training_span(split)
        dists, _ = baseline_dists(frame_returns(frame), n_train,
                                  forecaster.scaler.baseline_params())
        base, actual = frame["base_close"].to_numpy(), frame["close"].to_numpy()
        scores: dict[str, np.ndarray] = {}
        for name in SPLITS:
            rows = split[n_train:] == name
            b, a = base[n_train:][rows], actual[n_train:][rows]
            scores[f"{name}_dates"] = frame["date"].to_numpy()[n_train:][rows]
            scores[f"{name}_lstm"] = crps_price(net.dist.rows(split == name), b, a)
            for baseline in BASELINES:
                scores[f"{name}_{baseline}"] = crps_price(dists[baseline].rows(rows), b, a)
        out[symbol_dir.name] = scores
    return out


def save(scores: dict[str, dict[str, np.ndarray]], path: Path) -> None:
    np.savez_compressed(path, **{f"{s}|{k}": v for s, rows in scores.items()
                                 for k, v in rows.items()})


def load(path: Path) -> dict[str, dict[str, np.ndarray]]:
    scores: dict[str, dict[str, np.ndarray]] = {}
    with np.load(path, allow_pickle=True) as data:
        for key in data.files:
            symbol, name = key.split("|")
            scores.setdefault(symbol, {})[name] = data[key]
    return scores


def replay(scores: dict[str, dict[str, np.ndarray]], tolerance: float, gate_z: float) -> dict:
    """Both rules on the validation rows, scored on the test rows."""
    from tasks.distribution.gate import pooled_choice
    from tasks.distribution.scoring import diebold_mariano_loss

    symbols = sorted(scores)
    val = {s: {b: scores[s][f"validation_{b}"] for b in BASELINES} for s in symbols}
    choice = pooled_choice({s: scores[s]["validation_dates"] for s in symbols}, val,
                           {s: scores[s]["validation_lstm"] for s in symbols}, gate_z, tolerance)
    best3 = {s: min(BASELINES, key=lambda b: float(np.mean(val[s][b]))) for s in symbols}
    # the earlier rule: DM of the pooled daily mean gain over each symbol's best of three
    import pandas as pd

    daily = pd.concat([pd.DataFrame({"day": scores[s]["validation_dates"],
                                     "gain": val[s][best3[s]] - scores[s]["validation_lstm"]})
                       for s in symbols]).groupby("day")["gain"].mean().to_numpy()
    old_dm = diebold_mariano_loss(daily, np.zeros_like(daily), horizon=6)
    old_ratio = {s: float(np.mean(scores[s]["validation_lstm"]) / np.mean(val[s][best3[s]]))
                 for s in symbols}
    old = {s: ("lstm" if old_dm >= gate_z and old_ratio[s] <= 1 + tolerance else best3[s])
           for s in symbols}

    def test_ratio(served: dict[str, str]) -> dict:
        ratios = [float(np.mean(scores[s][f"test_{served[s]}"]) / np.mean(scores[s]["test_garch"]))
                  for s in symbols]
        sources = pd.Series(list(served.values())).value_counts().to_dict()
        return {"test_crps_vs_garch": float(np.mean(ratios)),
                "below_garch": int(np.sum(np.array(ratios) < 1)), "sources": sources}

    return {
        "symbols": len(symbols),
        "new_rule": {"family": choice.family, "gain": choice.gain, "lower": choice.lower,
                     "dm": choice.dm, "accepted": choice.accepted,
                     **test_ratio(choice.sources)},
        "earlier_rule": {"dm": old_dm, "accepted": bool(old_dm >= gate_z),
                         "validation_ratio_vs_best3": float(np.mean(list(old_ratio.values()))),
                         **test_ratio(old)},
        "every_symbol_best_of_three": test_ratio(best3),
        "every_symbol_pooled_family": test_ratio({s: choice.family for s in symbols}),
        "every_symbol_network": test_ratio({s: "lstm" for s in symbols}),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path)
    parser.add_argument("--scores", type=Path, help="an .npz of extracted scores to write/read")
    parser.add_argument("--tolerance", type=float, default=0.01)
    parser.add_argument("--gate-z", type=float, default=1.645)
    args = parser.parse_args()
    if args.scores and args.scores.is_file():
        scores = load(args.scores)
    else:
        scores = extract(args.home)
        if args.scores:
            save(scores, args.scores)
    print(json.dumps(replay(scores, args.tolerance, args.gate_z)))


if __name__ == "__main__":
    main()
