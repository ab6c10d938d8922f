"""Prediction steps: load a symbol's champion, forecast the next N business days recursively,
write the table and the fan plot."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.core.config import FeatureConfig
from tasks.core.errors import InputError, RegistryError
from tasks.core.layout import Layout
from tasks.core.paths import confined
from tasks.data.lake import read_partition
from tasks.distribution.volatility import next_variance
from tasks.evaluation.evaluate import (
    garch_offsets_of,
    load_distribution,
    load_version,
    network_raw,
    predict_close,
    shrink,
)
from tasks.features.windows import Scaler, feature_rows, rebased, window_array
from tasks.model.lstm import is_hybrid
from tasks.registry.registry import damaged_files, load_checked_model, read_champion, version_dir


@dataclass(frozen=True)
class Champion:
    """A symbol's champion, loaded: its model, feature config, scaler and shrink factor."""

    symbol: str
    version: int
    path: Path
    model: object
    features: FeatureConfig
    scaler: Scaler
    alpha: float
    distribution: dict | None = None


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
    model = load_checked_model(path, symbol, version)  # follows a global model's reference
    try:
        features, scaler, alpha = load_version(path)
        distribution = load_distribution(path)
    except Exception as error:  # noqa: BLE001 - any parse failure means a damaged file
        raise RegistryError(f"{path}: {symbol} champion version {version} is damaged: cannot "
                            f"load config/scaler ({type(error).__name__}: "
                            f"{str(error)[:200]})") from error
    return Champion(symbol, version, path, model, features, scaler, alpha, distribution)


def history_needed(features: FeatureConfig) -> int:
    """Rows of history a forecast needs: the window, the longest rolling window and diffs."""
    return features.window + max(features.rolling, default=0) + 2


def forecast_recursive(champion: Champion, prices: pd.DataFrame, horizon: int) -> pd.DataFrame:
    """Forecast ``horizon`` business days, each step feeding the previous forecast back in.

    A forecast day has open = high = low = close = the forecast and the last known volume, so
    OHLCV channels read "no range, no volume change" on days that have not happened.
    """
    tail, scaler = forecast_tail(champion, prices)
    garch = garch_state(champion, prices)
    dates = pd.bdate_range(tail["date"].iloc[-1] + pd.offsets.BDay(1), periods=horizon)
    closes = []
    for day in dates:
        base = float(tail["close"].iloc[-1])
        placeholder = {"date": day, "open": base, "high": base, "low": base, "close": base,
                       "volume": tail["volume"].iloc[-1]}
        tail = pd.concat([tail, pd.DataFrame([placeholder])], ignore_index=True)
        row = feature_rows(tail, champion.features, scaler, len(tail) - 1)
        offsets = (garch_offsets_of([garch[1]], garch[0]["nu"], scaler) if garch
                   else point_offsets(scaler))
        raw = predict_close(None, None, np.array([base]), scaler, champion.features.target,
                            champion.features.returns,
                            network_raw(champion.model, window_array(row), offsets))
        close = float(shrink(raw, np.array([base]), champion.alpha)[0])
        tail.loc[len(tail) - 1, ["open", "high", "low", "close"]] = close
        if garch:  # GARCH's variance rolls on through the forecast path
            garch = garch[0], float(next_variance("garch", garch[0], garch[1],
                                                  np.log(close / base)))
        closes.append(close)
    return pd.DataFrame({"date": dates, "close": closes})


def forecast_tail(champion: Champion, prices: pd.DataFrame) -> tuple[pd.DataFrame, Scaler]:
    """The last rows a forecast reads, and the champion's scaler with its volatility
    recursions in the state the whole history reaches where the tail starts."""
    start = max(0, len(prices) - history_needed(champion.features))
    prices = prices.reset_index(drop=True)
    return prices.iloc[start:].reset_index(drop=True), rebased(champion.scaler, prices, start)


def point_offsets(scaler: Scaler) -> np.ndarray:
    """Offsets that fix a hybrid's loc only (GARCH-t's centre, 0): all its point forecast
    reads; the spread it leaves is never read."""
    return np.array([[-scaler.mean / scaler.scale, 0.0, 0.0]])


def garch_state(champion: Champion, prices: pd.DataFrame) -> tuple[dict, float] | None:
    """A hybrid champion's GARCH fit and GARCH's variance for the day after the last price
    (None for other heads, or a version without distribution.json): the baseline its network
    corrects, rolled on without refitting."""
    from tasks.distribution.gate import price_returns, saved_baseline_variance

    saved = champion.distribution
    if not is_hybrid(champion.model) or saved is None:
        return None
    variance = saved_baseline_variance({**saved, "source": "garch"}, price_returns(prices))
    return saved["baselines"]["garch"], float(variance.iloc[-1])


def forecast_fan(champion: Champion, prices: pd.DataFrame, horizon: int) -> pd.DataFrame:
    """Median and 50/80/95% bounds per business day from paths simulated through the
    version's distribution; a version saved before distributions gives the point path only."""
    from tasks.distribution.gate import price_returns, saved_baseline_variance
    from tasks.distribution.simulate import fan, simulate_baseline
    from tasks.operations.lstm_paths import simulate_lstm

    point = forecast_recursive(champion, prices, horizon)
    saved = champion.distribution
    if saved is None:
        return point
    last = float(prices["close"].iloc[-1])
    if saved["source"] == "lstm":
        tail, scaler = forecast_tail(champion, prices)
        paths = simulate_lstm(champion.model, champion.features, scaler, champion.alpha,
                              tail, horizon, garch=garch_state(champion, prices))
    else:
        name = saved["source"]
        var_next = saved_baseline_variance(saved, price_returns(prices)).iloc[-1]
        drift = np.log(point["close"].to_numpy() / last)  # the version's point path (often 0)
        paths = simulate_baseline(name, saved["baselines"][name], np.array([var_next]),
                                  horizon)[0] + drift
    return pd.DataFrame({"date": point["date"], **fan(last, paths)})


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
    if len(prices) < history_needed(champion.features):
        raise InputError(f"lake/prices/symbol={symbol}", f"rule 'enough history to forecast': "
                         f"{len(prices)} rows, need {history_needed(champion.features)}")
    forecast = forecast_fan(champion, prices, horizon)
    out_dir = confined(layout.home, "predictions", symbol)
    data_path, plot_path = write_forecast(out_dir, champion, prices, forecast, fmt)
    return {"symbol": symbol, "version": champion.version, "path": str(data_path),
            "plot": str(plot_path),
            "source": champion.distribution["source"] if champion.distribution else None,
            "forecast": forecast_items(forecast)}


def forecast_items(forecast: pd.DataFrame) -> list[dict]:
    """JSON items: date, close (the median) and the 50/80/95% bounds (None for an old version)."""
    keys = ("close", *[f"{side}_{pct}" for pct in (50, 80, 95) for side in ("lower", "upper")])
    return [{"date": row["date"].date().isoformat(),
             **{k: round(float(row[k]), 6) if k in row else None for k in keys}}
            for _, row in forecast.iterrows()]
