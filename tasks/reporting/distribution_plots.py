"""Plots of a version's predictive distribution on the test window: fan, calibration, PIT."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from tasks.distribution.distributions import QUANTILE_LEVELS
from tasks.reporting.figures import pyplot, save

DIST_PLOTS = ("fan.png", "calibration.png", "pit.png")


def widened_days(predictions: pd.DataFrame) -> pd.Series:
    """The test days among the largest moves on which the network's 95% range, set the day
    before, was wider than GARCH-t's (all False for tables without the widths)."""
    from tasks.distribution.scoring import widened_rows

    if not {"width95_network", "width95_garch"} <= set(predictions.columns):
        return pd.Series(False, index=predictions.index)
    return pd.Series(widened_rows(predictions["width95_network"].to_numpy(),
                                  predictions["width95_garch"].to_numpy(),
                                  predictions["naive"].to_numpy(),
                                  predictions["actual"].to_numpy()), index=predictions.index)


def plot_fan(predictions: pd.DataFrame, symbol: str, target: Path) -> None:
    """One-day-ahead 50/80/95% intervals over the test window, with the actual closes."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(10, 4.5))
    for lo, hi, shade, pct in (("q0.025", "q0.975", 0.15, 95), ("q0.1", "q0.9", 0.25, 80),
                               ("q0.25", "q0.75", 0.4, 50)):
        ax.fill_between(predictions["date"], predictions[lo], predictions[hi], color="tab:blue",
                        alpha=shade, lw=0, label=f"{pct}% interval")
    ax.plot(predictions["date"], predictions["actual"], color="black", lw=1.1, label="actual close")
    widened = widened_days(predictions)
    if widened.any():
        ax.scatter(predictions["date"][widened], predictions["actual"][widened], marker="^",
                   s=36, color="tab:orange", zorder=3,
                   label="large move: the network's 95% range was wider than GARCH-t's")
    ax.set(title=f"{symbol}: one-day-ahead intervals on the test window", ylabel="price")
    ax.legend(loc="upper left")
    ax.grid(alpha=0.3)
    fig.autofmt_xdate()
    save(fig, target)


def plot_calibration(predictions: pd.DataFrame, symbol: str, target: Path) -> None:
    """Nominal quantile level vs the share of actual closes at or below that quantile."""
    plt = pyplot()
    empirical = [float(np.mean(predictions["actual"] <= predictions[f"q{q:g}"]))
                 for q in QUANTILE_LEVELS]
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], color="grey", ls="--", label="perfect calibration")
    ax.plot(QUANTILE_LEVELS, empirical, marker="o", color="tab:blue", label="this version")
    ax.set(title=f"{symbol}: calibration (test window)", xlabel="nominal quantile level",
           ylabel="share of days at or below it")
    ax.legend()
    ax.grid(alpha=0.3)
    save(fig, target)


def plot_pit(predictions: pd.DataFrame, symbol: str, target: Path) -> None:
    """Histogram of the probability integral transform (flat = calibrated)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.hist(predictions["pit"], bins=10, range=(0, 1), color="tab:blue", alpha=0.7,
            edgecolor="white")
    ax.axhline(len(predictions) / 10, color="grey", ls="--", label="uniform")
    ax.set(title=f"{symbol}: PIT histogram (test window)", xlabel="PIT", ylabel="days")
    ax.legend()
    save(fig, target)


def make_distribution_plots(predictions: pd.DataFrame, symbol: str, out_dir: Path) -> list[Path]:
    """Fan, calibration and PIT PNGs (none for predictions saved without quantile columns)."""
    if "pit" not in predictions:
        return []
    paths = [out_dir / name for name in DIST_PLOTS]
    for plot, path in zip((plot_fan, plot_calibration, plot_pit), paths, strict=True):
        plot(predictions, symbol, path)
    return paths
