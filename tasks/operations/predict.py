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
from tasks.core.version_files import SavedDistribution
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
    distribution: SavedDistribution | None = None


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
    return forecast_recursive_many([(champion, prices)], horizon)[0]


@dataclass
class _Path:
    """One symbol's recursive forecast in progress."""

    champion: Champion
    tail: pd.DataFrame
    scaler: Scaler
    garch: tuple[dict, float] | None
    dates: pd.DatetimeIndex
    closes: list[float]


def forecast_recursive_many(cases: list[tuple[Champion, pd.DataFrame]],
                            horizon: int) -> list[pd.DataFrame]:
    """``forecast_recursive`` for many (champion, prices) at once: each step asks each network
    once, for all the symbols it serves (a market's global network serves hundreds)."""
    paths = []
    for champion, prices in cases:
        tail, scaler = forecast_tail(champion, prices)
        paths.append(_Path(champion, tail, scaler, garch_state(champion, prices),
                           pd.bdate_range(tail["date"].iloc[-1] + pd.offsets.BDay(1),
                                          periods=horizon), []))
    by_model: dict[int, list[int]] = {}  # the paths each network serves
    for i, path in enumerate(paths):
        by_model.setdefault(id(path.champion.model), []).append(i)
    for step in range(horizon):
        windows, offsets = zip(*(_next_window(p, step) for p in paths), strict=True) \
            if paths else ((), ())
        raw: list[np.ndarray] = [np.empty(0)] * len(paths)
        for members in by_model.values():
            out = network_raw(paths[members[0]].champion.model,
                              np.concatenate([windows[i] for i in members]),
                              np.concatenate([offsets[i] for i in members]))
            for row, i in enumerate(members):
                raw[i] = out[row:row + 1]
        for path, path_raw in zip(paths, raw, strict=True):
            _take_step(path, path_raw)
    return [pd.DataFrame({"date": p.dates, "close": p.closes}) for p in paths]


def _next_window(path: _Path, step: int) -> tuple[np.ndarray, np.ndarray]:
    """Append the next day's placeholder row to the path; its window and GARCH-t offsets."""
    champion, base = path.champion, float(path.tail["close"].iloc[-1])
    placeholder = {"date": path.dates[step], "open": base, "high": base, "low": base,
                   "close": base, "volume": path.tail["volume"].iloc[-1]}
    path.tail = pd.concat([path.tail, pd.DataFrame([placeholder])], ignore_index=True)
    row = feature_rows(path.tail, champion.features, path.scaler, len(path.tail) - 1)
    offsets = (garch_offsets_of([path.garch[1]], path.garch[0]["nu"], path.scaler)
               if path.garch else point_offsets(path.scaler))
    return window_array(row), offsets


def _take_step(path: _Path, raw: np.ndarray) -> None:
    """The step's close from the network's raw output: rebuilt, shrunk, written into the
    placeholder row; GARCH's variance rolls on through the forecast path."""
    champion, base = path.champion, float(path.tail["close"].iloc[-2])
    predicted = predict_close(None, None, np.array([base]), path.scaler,
                              champion.features.target, champion.features.returns, raw)
    close = float(shrink(predicted, np.array([base]), champion.alpha)[0])
    path.tail.loc[len(path.tail) - 1, ["open", "high", "low", "close"]] = close
    if path.garch:  # rolled on without refitting
        path.garch = path.garch[0], float(next_variance("garch", path.garch[0], path.garch[1],
                                                        np.log(close / base)))
    path.closes.append(close)


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
    (None for other heads, or a version saved without a distribution): the baseline its
    network corrects, rolled on without refitting."""
    from tasks.distribution.gate import price_returns, saved_baseline_variance

    saved = champion.distribution
    if not is_hybrid(champion.model) or saved is None:
        return None
    variance = saved_baseline_variance(saved, price_returns(prices), "garch")
    return saved.params("garch"), float(variance.iloc[-1])


def forecast_fan(champion: Champion, prices: pd.DataFrame, horizon: int) -> pd.DataFrame:
    """Median and 50/80/95% bounds per business day from paths simulated through the
    version's distribution; a version saved before distributions gives the point path only."""
    return forecast_fans([(champion, prices)], horizon)[0]


def forecast_fans(cases: list[tuple[Champion, pd.DataFrame]], horizon: int) -> list[pd.DataFrame]:
    """``forecast_fan`` for many (champion, prices) at once (``forecast_recursive_many``)."""
    points = forecast_recursive_many(cases, horizon)
    return [_fan(champion, prices, point, horizon)
            for (champion, prices), point in zip(cases, points, strict=True)]


def _fan(champion: Champion, prices: pd.DataFrame, point: pd.DataFrame,
         horizon: int) -> pd.DataFrame:
    """The fan around the point path ``point``, through the version's distribution."""
    from tasks.distribution.gate import price_returns, saved_baseline_variance
    from tasks.distribution.simulate import fan, simulate_baseline
    from tasks.operations.lstm_paths import simulate_lstm

    saved = champion.distribution
    if saved is None:
        return point
    last = float(prices["close"].iloc[-1])
    if saved.source == "lstm":
        tail, scaler = forecast_tail(champion, prices)
        paths = simulate_lstm(champion.model, champion.features, scaler, champion.alpha,
                              tail, horizon, garch=garch_state(champion, prices))
    else:
        name = saved.source
        var_next = saved_baseline_variance(saved, price_returns(prices)).iloc[-1]
        drift = np.log(point["close"].to_numpy() / last)  # the version's point path (often 0)
        paths = simulate_baseline(name, saved.params(), np.array([var_next]),
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
            "source": champion.distribution.source if champion.distribution else None,
            "forecast": forecast_items(forecast)}


def forecast_items(forecast: pd.DataFrame) -> list[dict]:
    """JSON items: date, close (the median) and the 50/80/95% bounds (None for an old version)."""
    keys = ("close", *[f"{side}_{pct}" for pct in (50, 80, 95) for side in ("lower", "upper")])
    return [{"date": row["date"].date().isoformat(),
             **{k: round(float(row[k]), 6) if k in row else None for k in keys}}
            for _, row in forecast.iterrows()]
