"""Prediction steps: load a symbol's champion, forecast the next N business days recursively,
write the table and the fan plot."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.core.errors import InputError, RegistryError
from tasks.core.layout import Layout
from tasks.core.paths import confined
from tasks.data.lake import read_partition
from tasks.forecaster.forecaster import Forecaster
from tasks.forecaster.paths import forecast_fans
from tasks.registry.integrity import damaged_files, load_checked_forecaster
from tasks.registry.records import fallback_of
from tasks.registry.registry import read_champion, version_dir


@dataclass(frozen=True)
class Champion:
    """A symbol's champion, loaded: which version it is and its forecaster."""

    symbol: str
    version: int
    path: Path
    forecaster: Forecaster


def load_champion(models: Path, symbol: str) -> Champion:
    """Load the champion; RegistryError when there is none or its files are damaged."""
    try:
        record = read_champion(models, symbol)
    except ValueError as error:
        raise RegistryError(f"{models / symbol / 'champion.json'}: {symbol}'s champion.json is "
                            "unreadable") from error
    if record is None:
        raise RegistryError(f"{models / symbol}: {symbol} has no champion: train one with "
                            f"`closecast run` or promote one with `closecast models promote`")
    version = int(record["version"])
    path = version_dir(models, symbol, version)
    missing = damaged_files(path)
    if missing:
        raise RegistryError(f"{path}: {symbol} champion version {version} is damaged: "
                            f"{', '.join(missing)} missing or empty")
    # follows a global model's reference to its shared network; a fallback serves baselines
    forecaster = load_checked_forecaster(path, symbol, version, fallback_of(record))
    return Champion(symbol, version, path, forecaster)


def plot_forecast(history: pd.DataFrame, forecast: pd.DataFrame, title: str, target: Path) -> None:
    """The last 60 closes and the forecast fan (median, 50/80/95% bands) after them."""
    from tasks.reporting.figures import pyplot, save

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(9, 4))
    recent = history.tail(60)
    ax.plot(recent["date"], recent["close"], color="black", lw=1.3, label="close")
    dates = [recent["date"].iloc[-1], *forecast["date"]]
    start = recent["close"].iloc[-1]
    for pct, shade in ((95, 0.15), (80, 0.25), (50, 0.4)):
        if f"lower_{pct}" in forecast:
            ax.fill_between(dates, [start, *forecast[f"lower_{pct}"]],
                            [start, *forecast[f"upper_{pct}"]], color="tab:blue", alpha=shade,
                            lw=0, label=f"{pct}% interval")
    ax.plot(dates, [start, *forecast["close"]], color="tab:blue", marker="o", ms=3,
            label="median forecast")
    ax.set(title=title, ylabel="price")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.autofmt_xdate()
    save(fig, target)


def write_forecast(out_dir: Path, champion: Champion, history: pd.DataFrame,
                   forecast: pd.DataFrame, fmt: str) -> tuple[Path, Path]:
    """The forecast as CSV or Parquet and a PNG plot, named by version, last date and horizon.

    They go under ``<home>/predictions/<SYMBOL>/``: a registered version is never modified.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    last = history["date"].iloc[-1].date().isoformat()
    stem = f"{champion.symbol}-v{champion.version}-{last}-h{len(forecast)}"
    table = forecast.assign(symbol=champion.symbol, version=champion.version)
    data_path = confined(out_dir, f"{stem}.{'parquet' if fmt == 'parquet' else 'csv'}")
    if fmt == "parquet":
        table.to_parquet(data_path, index=False)
    else:
        table.to_csv(data_path, index=False, date_format="%Y-%m-%d")
    plot_path = confined(out_dir, f"{stem}.png")
    plot_forecast(history, forecast, f"{champion.symbol} v{champion.version}: "
                  f"{len(forecast)}-day forecast after {last}", plot_path)
    return data_path, plot_path


@task(name="forecast", cache_policy=NO_CACHE)
def forecast_task(home: str, symbol: str, horizon: int, fmt: str) -> dict:
    """Load the champion and the lake's latest rows, forecast, and write the files."""
    layout = Layout(Path(home))
    champion = load_champion(layout.models, symbol)
    prices = read_partition(layout.lake, symbol)
    needed = champion.forecaster.history_needed
    if len(prices) < needed:
        raise InputError(f"lake/prices/symbol={symbol}", f"rule 'enough history to forecast': "
                         f"{len(prices)} rows, need {needed}")
    (forecast,) = forecast_fans([(champion.forecaster, champion.forecaster.inputs(
        prices, layout.lake))], horizon)
    out_dir = confined(layout.home, "predictions", symbol)
    data_path, plot_path = write_forecast(out_dir, champion, prices, forecast, fmt)
    return {"symbol": symbol, "version": champion.version, "path": str(data_path),
            "plot": str(plot_path),
            "source": champion.forecaster.source,
            "forecast": forecast_items(forecast)}


def forecast_items(forecast: pd.DataFrame) -> list[dict]:
    """JSON items: date, close (the median) and the 50/80/95% bounds (None for an old version)."""
    keys = ("close", *[f"{side}_{pct}" for pct in (50, 80, 95) for side in ("lower", "upper")])
    return [{"date": row["date"].date().isoformat(),
             **{k: round(float(row[k]), 6) if k in row else None for k in keys}}
            for _, row in forecast.iterrows()]
