"""The hybrid volatility network (an LSTM correcting GARCH(1,1)-t) against its baselines on
every real file the repository carries: per symbol, and one network pooled across them.

Each symbol's returns split in time like a run's (``split_sizes``: the last 15% test, the 15%
before validation); baselines and the inputs' standardisation are fit on training rows only.
Printed JSON: per symbol and mode, the test CRPS of the hybrid, GARCH-t and EWMA, each over
constant volatility's, 50/80/95% coverage, and the DM statistic of the hybrid's CRPS gain over
GARCH-t (pooled: on the daily cross-sectional mean differential, HAC over days).

    python benchmarks/compare_hybrid.py [--epochs N] [--window K] [--units 16] [--seed 42]
        [--columns a,b,...] [--control]

``--control`` also trains on time-shuffled inputs (each symbol's context rows permuted within
training): a network that learns nothing real must not beat GARCH-t. ``--columns`` also takes
the inputs ``hybrid_inputs`` builds only on request: ``har_<parkinson|garman_klass|squared>_<days>``
(log sigma of the last ``days`` days' mean variance), ``range_vs_garch_<days>`` and
``overnight_gap`` (``hybrid_inputs.extra_column``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import REAL, ROOT  # noqa: E402
from tasks.core.training_config import SplitConfig, split_sizes  # noqa: E402
from tasks.data.ingest import read_prices  # noqa: E402
from tasks.distribution.hybrid_inputs import (  # noqa: E402
    garch_t_dist,
    hybrid_inputs,
    market_table,
)
from tasks.distribution.scoring import diebold_mariano_loss  # noqa: E402
from tasks.distribution.volatility import baseline_dists  # noqa: E402

SAMPLE = ROOT / "data" / "sample" / "prices-split-adjusted.csv"
FILES = [(SAMPLE, None), (REAL / "kaggle_nyse_prices_unadjusted_airlines.csv", None),
         (REAL / "AMZN.csv", "AMZN"), (REAL / "WEN.csv", "WEN")]
LEVELS = (0.5, 0.8, 0.95)
# ALK's rows in the unadjusted airlines file carry two 2:1 splits as one-day -50% moves.
EXCLUDED = {"ALK"}
ALL_COLUMNS = ("log_sigma_garch", "log_sigma_ewma", "abs_return", "squared_return",
               "parkinson", "garman_klass", "market_return", "market_abs_return")


def load_universe() -> dict[str, pd.DataFrame]:
    """symbol -> its price rows, each real symbol once (AAL from the split-adjusted sample)."""
    out: dict[str, pd.DataFrame] = {}
    for path, symbol in FILES:
        frame = read_prices(path, symbols=[symbol] if symbol else ())
        for name, rows in frame.groupby("symbol", sort=True):
            if name not in out and name not in EXCLUDED:
                rows = rows[rows["close"] > 0].sort_values("date").reset_index(drop=True)
                out[str(name)] = rows
    return out


def symbol_inputs(rows: pd.DataFrame, market: dict, window: int,
                  columns: tuple[str, ...] = ALL_COLUMNS):
    """Inputs and split sizes (in windowed rows) for one symbol."""
    n_rows = len(rows) - 2 - (window - 1)
    n_train, n_val, n_test = split_sizes(n_rows, SplitConfig())
    ohlc = {k: rows[c].to_numpy("float64") if c in rows and rows[c].notna().all() else None
            for k, c in (("open_", "open"), ("high", "high"), ("low", "low"))}
    if ohlc["open_"] is not None and (ohlc["open_"] <= 0).any():
        ohlc = dict.fromkeys(ohlc)  # WEN's early opens are 0: no range estimators
    inputs = hybrid_inputs(rows["date"].to_numpy(), rows["close"].to_numpy("float64"),
                           (window - 1) + n_train, market=market, names=columns, **ohlc)
    return inputs, (n_train, n_val, n_test)


def split_windows(inputs, sizes, window: int, shuffle_seed: int | None = None):
    """(train, validation, test) windows; ``shuffle_seed``: context rows permuted within
    training first (the control)."""
    if shuffle_seed is not None:
        rng = np.random.default_rng(shuffle_seed)
        context = inputs.context.copy()
        context[:inputs.n_train] = context[rng.permutation(inputs.n_train)]
        inputs = type(inputs)(context, inputs.offset, inputs.returns, inputs.names,
                              inputs.n_train, inputs.garch)
    x, y, _ = inputs.windows(window)
    n_train, n_val, _ = sizes
    return ((x[:n_train], y[:n_train]), (x[n_train:n_train + n_val], y[n_train:n_train + n_val]),
            (x[n_train + n_val:], y[n_train + n_val:]))


def scores(dist, returns: np.ndarray) -> dict:
    crps = dist.crps(returns)
    out = {"crps": float(np.mean(crps))}
    for level in LEVELS:
        lo, hi = dist.quantile((1 - level) / 2), dist.quantile((1 + level) / 2)
        out[f"coverage_{int(level * 100)}"] = float(np.mean((returns >= lo) & (returns <= hi)))
    return out, crps


def evaluate(model, inputs, sizes, window: int) -> dict:
    """Test scores of the hybrid and the baselines on one symbol, and per-row CRPS."""
    from tasks.distribution.hybrid_inputs import correction_dist

    n_train, n_val, n_test = sizes
    x, _, first = inputs.windows(window)
    rows = slice(first + n_train + n_val, None)
    returns = inputs.returns[rows]
    correction = (np.zeros((n_test, 3)) if model is None
                  else np.asarray(model(x[n_train + n_val:], training=False), dtype="float64"))
    hybrid = correction_dist(correction, inputs.offset[rows])
    dists, _ = baseline_dists(inputs.returns, inputs.n_train)  # rows n_train on
    test_after = np.arange(len(inputs.returns) - inputs.n_train) >= n_val
    result, rows_crps = {}, {}
    for name, dist in (("hybrid", hybrid), ("garch", garch_t_dist(inputs.offset[rows])),
                       ("ewma", dists["ewma"].rows(test_after)),
                       ("constant", dists["constant"].rows(test_after))):
        result[name], rows_crps[name] = scores(dist, returns)
    for name in ("hybrid", "garch", "ewma"):
        result[name]["crps_vs_constant"] = result[name]["crps"] / result["constant"]["crps"]
    result["hybrid_vs_garch"] = result["hybrid"]["crps"] / result["garch"]["crps"]
    result["dm_vs_garch"] = diebold_mariano_loss(rows_crps["garch"], rows_crps["hybrid"])
    return result, rows_crps


def pooled_dm(per_symbol: dict, dates: dict) -> float:
    """DM of the hybrid's CRPS gain over GARCH-t on the daily cross-sectional mean CRPS of
    each (HAC over days: symbols' correlation on a day does not inflate it)."""
    daily = {name: pd.concat([pd.Series(rows[name], index=dates[s])
                              for s, rows in per_symbol.items()], axis=1, sort=True).mean(axis=1)
             for name in ("garch", "hybrid")}
    return diebold_mariano_loss(daily["garch"].sort_index().to_numpy(),
                                daily["hybrid"].sort_index().to_numpy())


def mean_row(per: dict) -> dict:
    """The per-symbol figures averaged over symbols."""
    def avg(read) -> float:
        return float(np.mean([read(p) for p in per.values()]))

    row = {f"{name}_crps_vs_constant": avg(lambda p, n=name: p[n]["crps_vs_constant"])
           for name in ("hybrid", "garch", "ewma")}
    row["hybrid_vs_garch"] = avg(lambda p: p["hybrid_vs_garch"])
    row["hybrid_beats_garch"] = int(sum(p["hybrid_vs_garch"] < 1 for p in per.values()))
    for q in (50, 80, 95):
        row[f"hybrid_coverage_{q}"] = avg(lambda p, q=q: p["hybrid"][f"coverage_{q}"])
        row[f"garch_coverage_{q}"] = avg(lambda p, q=q: p["garch"][f"coverage_{q}"])
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--window", type=int, default=20)
    parser.add_argument("--control", action="store_true")
    parser.add_argument("--columns", default=",".join(ALL_COLUMNS),
                        help="context columns (default: all)")
    parser.add_argument("--modes", default="per_symbol,pooled")
    parser.add_argument("--units", default="16", help="LSTM units per layer, e.g. 32,16")
    parser.add_argument("--seed", type=int, default=42, help="the network's seed")
    args = parser.parse_args()
    units = tuple(int(u) for u in args.units.split(","))
    from tasks.forecaster.hybrid import fit_hybrid

    universe = load_universe()
    market = market_table({s: (r["date"].to_numpy(), r["close"].to_numpy("float64"))
                           for s, r in universe.items()})
    columns = tuple(args.columns.split(","))
    prepared = {s: symbol_inputs(r, market, args.window, columns) for s, r in universe.items()}
    out = {"window": args.window, "epochs": args.epochs, "units": units, "seed": args.seed,
           "columns": columns,
           "symbols": sorted(prepared)}
    modes = args.modes.split(",") + (["pooled_shuffled"] if args.control else [])
    for mode in modes:
        started = time.perf_counter()
        models, fits = {}, {}
        if mode == "per_symbol":
            for s, (inputs, sizes) in prepared.items():
                train, val, _ = split_windows(inputs, sizes, args.window)
                fits[s] = fit_hybrid(train, val, epochs=args.epochs, label=s, units=units,
                                     seed=args.seed)
                models[s] = fits[s].model
        else:
            seed = 7 if mode == "pooled_shuffled" else None
            parts = [split_windows(i, z, args.window, seed) for i, z in prepared.values()]
            train = tuple(np.concatenate([p[0][j] for p in parts]) for j in (0, 1))
            val = tuple(np.concatenate([p[1][j] for p in parts]) for j in (0, 1))
            shared = fit_hybrid(train, val, epochs=args.epochs, label=mode, units=units,
                                seed=args.seed)
            models, fits = dict.fromkeys(prepared, shared.model), {mode: shared}
        per, rows, dates = {}, {}, {}
        for s, (inputs, sizes) in prepared.items():
            per[s], rows[s] = evaluate(models[s], inputs, sizes, args.window)
            n_test = sizes[2]
            dates[s] = universe[s]["date"].to_numpy()[-n_test:]
        mean = mean_row(per)
        mean["pooled_dm_vs_garch"] = pooled_dm(rows, dates)
        out[mode] = {"seconds": round(time.perf_counter() - started, 1), "mean": mean,
                     "symbols": per,
                     "training": {k: {"epochs_run": f.epochs_run, "moved": f.moved,
                                      "initial_val_loss": f.initial_val_loss,
                                      "best_val_loss": f.best_val_loss}
                                  for k, f in fits.items()}}
        print(json.dumps({mode: mean}), file=sys.stderr)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
