"""Optional input families (``features.calendar``, ``features.gap``, ``features.market``: the
state of the whole file's symbols) on the real market file:
the run's global hybrid network with and without each, and with each family's values permuted
in time within each symbol (the control), scored against GARCH-t on the test rows.

In process, with the pipeline's own pieces: ``frame_with_split`` per symbol (default split and
features plus the family), ``rows_of`` and ``fit_pooled`` (the global model's training: windows
before the earliest test day, default ModelConfig and GlobalModelConfig but ``--seed``), then
per symbol the hybrid's and GARCH-t's Student-t of each test day's log return (the network's
own, unshrunk and ungated) and their CRPS. Symbols: every ``--every``-th of the file's sorted
symbols from the first (a fixed rule, not tuned); one whose history is too short is left out.

Printed JSON (one line, also appended to ``--out``): the mean over symbols of the network's
test CRPS over GARCH-t's, the pooled ratio (sums over all test rows), how many symbols are
below 1, the DM statistic of the gain on the daily cross-sectional mean, and the wall time.

    python benchmarks/compare_inputs.py --variant calendar|calendar_shuffled|gap|gap_shuffled|
        market|market_shuffled|base
        [--input FILE] [--every 4] [--seed 42] [--out results.jsonl]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tasks.core.errors import ShortHistory  # noqa: E402
from tasks.core.training_config import (  # noqa: E402
    FeatureConfig,
    GlobalModelConfig,
    ModelConfig,
    SplitConfig,
    split_sizes,
)
from tasks.distribution.distributions import ReturnDist  # noqa: E402
from tasks.distribution.scoring import diebold_mariano_loss  # noqa: E402
from tasks.features.channels import channel_names, first_valid_day  # noqa: E402
from tasks.features.feature_table import frame_with_split, sample_count  # noqa: E402
from tasks.features.market_state import MARKET_COLUMNS, market_state, with_market  # noqa: E402
from tasks.features.origin_inputs import calendar_names  # noqa: E402
from tasks.forecaster.forecaster import Network  # noqa: E402
from tasks.forecaster.heads import hybrid_raw, student_t_params  # noqa: E402
from tasks.market.global_model import SymbolRows, fit_pooled, rows_of  # noqa: E402

MARKET = Path("/work/shared/data/real/kaggle_sp500_5yr_market.csv.gz")
FAMILIES = {"base": {}, "calendar": {"calendar": True}, "gap": {"gap": True},
            "market": {"market": True}, "marketrel": {"market": True}}


def relative_state(state: pd.DataFrame, days: int = 60) -> pd.DataFrame:
    """Each state column minus its mean over the ``days`` days before (trial form)."""
    return state - state.shift(1).rolling(days, min_periods=days).mean()


def market_subset(path: Path, every: int, market: bool = False,
                  relative: bool = False) -> dict[str, pd.DataFrame]:
    """Every ``every``-th symbol (sorted) of the Kaggle market file; rows with a missing or
    non-positive price left out (what ``--on-invalid drop`` quarantines). ``market``: each
    symbol's rows carry the market state of the whole file's symbols (a run's universe)."""
    frame = pd.read_csv(path, parse_dates=["date"]).rename(columns={"Name": "symbol"})
    prices = ["open", "high", "low", "close"]
    frame = frame[(frame[prices] > 0).all(axis=1)]
    by_symbol = {s: rows.sort_values("date").reset_index(drop=True)
                 for s, rows in frame.groupby("symbol")}
    state = market_state(by_symbol.values()) if market else None
    if relative:
        state = relative_state(state)
    return {s: with_market(by_symbol[s], state) if market else by_symbol[s]
            for s in sorted(by_symbol)[::every]}


def family_columns(features: FeatureConfig, family: str) -> list[int]:
    """The channel indices of an input family."""
    names = {"calendar": calendar_names(), "gap": ["gap"], "market": list(MARKET_COLUMNS),
             "marketrel": list(MARKET_COLUMNS)}[family]
    return [channel_names(features).index(n) for n in names]


def shuffled(rows: SymbolRows, columns: list[int], seed: int) -> SymbolRows:
    """``rows`` with the day order of ``columns`` permuted (one permutation of the days from
    the first whose channels are all defined: the first day's gap is NaN and never read)."""
    values = rows.values.copy()
    first = first_valid_day(values)
    order = first + np.random.default_rng(seed).permutation(len(values) - first)
    values[first:, columns] = values[order][:, columns]
    return replace(rows, values=values)


def symbol_tables(universe: dict[str, pd.DataFrame], features: FeatureConfig,
                  shuffle: str | None) -> list[tuple[SymbolRows, float, float]]:
    """Per symbol: its pooled rows (the family shuffled for the control) and its target's
    mean and scale."""
    out = []
    for i, (symbol, prices) in enumerate(universe.items()):
        try:
            sizes = split_sizes(sample_count(prices, features), SplitConfig())
            frame, scaler = frame_with_split(prices, features, sizes)
        except ShortHistory:
            continue
        rows = rows_of(prices, frame, scaler, symbol, features, packed=True)
        if shuffle:
            rows = shuffled(rows, family_columns(features, shuffle), 1000 + i)
        out.append((rows, scaler.mean, scaler.scale))
    return out


def test_crps(network: Network, rows: SymbolRows, mean: float, scale: float,
              window: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(dates, the network's CRPS, GARCH-t's CRPS) of a symbol's test rows (log returns)."""
    test = rows.split == "test"
    x = np.stack([rows.values[s:s + window] for s in rows.starts[test]])
    packed = rows.targets[test].astype("float64")
    actual = packed[:, 0] * scale + mean
    crps = []
    for raw in (network.params(x, packed[:, 1:]), hybrid_raw(np.zeros((len(x), 3)),
                                                             packed[:, 1:])):
        loc, t_scale, dof = student_t_params(raw)
        crps.append(ReturnDist.of(loc * scale + mean, t_scale * scale, dof).crps(actual))
    return rows.dates[test], crps[0], crps[1]


def summary(scored: dict[str, tuple]) -> dict:
    """Mean per-symbol and pooled CRPS ratios, symbols below 1, DM on the daily mean gain."""
    ratios = [net.mean() / garch.mean() for _, net, garch in scored.values()]
    daily = [pd.concat([pd.Series(crps[j], index=crps[0]) for crps in scored.values()])
             .groupby(level=0).mean().sort_index().to_numpy() for j in (1, 2)]
    pooled = (sum(net.sum() for _, net, _ in scored.values())
              / sum(garch.sum() for _, _, garch in scored.values()))
    return {"mean_ratio": round(float(np.mean(ratios)), 5), "pooled_ratio": round(pooled, 5),
            "below_1": int(sum(r < 1 for r in ratios)),
            "dm_vs_garch": round(diebold_mariano_loss(daily[1], daily[0]), 2),
            "test_rows": int(sum(len(n) for _, n, _ in scored.values()))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", default="base")
    parser.add_argument("--input", type=Path, default=MARKET)
    parser.add_argument("--every", type=int, default=4)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--epochs", type=int, default=None, help="model.epochs (smoke runs)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    started = time.perf_counter()
    family, _, control = args.variant.partition("_")
    features = FeatureConfig(**FAMILIES[family])
    universe = market_subset(args.input, args.every, market=family.startswith("market"),
                             relative=family == "marketrel")
    tables = symbol_tables(universe, features, family if control else None)
    cfg = ModelConfig(seed=args.seed, **({"epochs": args.epochs} if args.epochs else {}))
    with tempfile.TemporaryDirectory() as tmp:
        trained = fit_pooled([t[0] for t in tables], args.variant, features, cfg,
                             GlobalModelConfig(), Path(tmp), logging.getLogger("compare"))
        network = Network.load(trained.model_path)
        scored = {rows.symbol: test_crps(network, rows, mean, scale, features.window)
                  for rows, mean, scale in tables}
    out = {"variant": args.variant, "seed": args.seed, "every": args.every,
           "symbols": len(scored), "first_last": [min(scored), max(scored)],
           "epochs_run": trained.epochs_run, **summary(scored),
           "seconds": round(time.perf_counter() - started, 1)}
    print(json.dumps(out))
    if args.out:
        with args.out.open("a") as handle:
            handle.write(json.dumps(out) + "\n")


if __name__ == "__main__":
    main()
