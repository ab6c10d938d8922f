"""Multi-day forecasts of a forecaster: the point path, each forecast day fed back into the next
window, and the fan of sample paths through the version's distribution (the network's own,
each sampled day fed back too, its first day in closed form; or a baseline's recursion:
tasks/distribution/simulate.py)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from tasks.distribution.simulate import N_PATHS, SEED
from tasks.distribution.volatility import next_variance
from tasks.features.channels import rebased
from tasks.features.feature_table import next_window
from tasks.features.path_channels import PathChannels
from tasks.features.scaler import Scaler
from tasks.forecaster.forecaster import Forecaster, garch_offsets_of, point_closes
from tasks.forecaster.heads import student_t_params
from tasks.forecaster.shrink import shrink

Case = tuple[Forecaster, pd.DataFrame]  # a forecaster and the prices it forecasts after


def forecast_tail(forecaster: Forecaster, prices: pd.DataFrame) -> tuple[pd.DataFrame, Scaler]:
    """The last rows a forecast reads, and the forecaster's scaler with its volatility
    recursions in the state the whole history reaches where the tail starts."""
    start = max(0, len(prices) - forecaster.history_needed)
    prices = prices.reset_index(drop=True)
    return prices.iloc[start:].reset_index(drop=True), rebased(forecaster.scaler, prices, start)


def point_offsets(scaler: Scaler) -> np.ndarray:
    """Offsets that fix a GARCH-t correction's loc only (GARCH-t's centre, 0): all its point
    forecast reads; the spread it leaves is never read."""
    return np.array([[-scaler.mean / scaler.scale, 0.0, 0.0]])


def forecast_recursive(forecaster: Forecaster, prices: pd.DataFrame,
                       horizon: int) -> pd.DataFrame:
    """Forecast ``horizon`` business days, each step feeding the previous forecast back in.

    A forecast day has open = high = low = close = the forecast and the last known volume (and
    market state), so OHLCV channels read "no range, no volume change" on days that have not
    happened.
    """
    return forecast_recursive_many([(forecaster, prices)], horizon)[0]


@dataclass
class _Path:
    """One case's recursive forecast in progress."""

    forecaster: Forecaster
    tail: pd.DataFrame
    scaler: Scaler
    garch: tuple[dict, float] | None
    dates: pd.DatetimeIndex
    closes: list[float]
    first: np.ndarray | None = None  # the network's raw outputs of the first day

    def frame(self) -> pd.DataFrame:
        """The point path: date and close of each forecast day."""
        return pd.DataFrame({"date": self.dates, "close": self.closes})


def forecast_recursive_many(cases: list[Case], horizon: int) -> list[pd.DataFrame]:
    """``forecast_recursive`` for many cases at once: each step asks each network once, for
    all the cases it serves (a market's global network serves hundreds)."""
    return [p.frame() for p in _recursive_paths(cases, horizon)]


def _recursive_paths(cases: list[Case], horizon: int) -> list[_Path]:
    """``forecast_recursive_many``'s paths, done."""
    paths = []
    for forecaster, prices in cases:
        tail, scaler = forecast_tail(forecaster, prices)
        paths.append(_Path(forecaster, tail, scaler, forecaster.garch(prices),
                           pd.bdate_range(tail["date"].iloc[-1] + pd.offsets.BDay(1),
                                          periods=horizon), []))
    by_network: dict[int, list[int]] = {}  # the paths each network serves
    for i, path in enumerate(paths):
        by_network.setdefault(id(path.forecaster.network.model), []).append(i)
    for step in range(horizon):
        windows, offsets = zip(*(_next_window(p) for p in paths), strict=True) \
            if paths else ((), ())
        raw: list[np.ndarray] = [np.empty(0)] * len(paths)
        for members in by_network.values():
            out = paths[members[0]].forecaster.network.params(
                np.concatenate([windows[i] for i in members]),
                np.concatenate([offsets[i] for i in members]))
            for row, i in enumerate(members):
                raw[i] = out[row:row + 1]
        for path, path_raw in zip(paths, raw, strict=True):
            _take_step(path, path_raw, step)
    return paths


def _next_window(path: _Path) -> tuple[np.ndarray, np.ndarray]:
    """The window and GARCH-t offsets of the path's next day."""
    window = next_window(path.tail, path.forecaster.features, path.scaler)
    offsets = (garch_offsets_of([path.garch[1]], path.garch[0]["nu"], path.scaler)
               if path.garch else point_offsets(path.scaler))
    return window, offsets


def _take_step(path: _Path, raw: np.ndarray, step: int) -> None:
    """The step's close from the network's output: rebuilt, shrunk, appended to the path as
    its day (open = high = low = close; the last known day's other columns, volume and the
    market state, repeat); GARCH's variance rolls on through the forecast path."""
    forecaster, base = path.forecaster, float(path.tail["close"].iloc[-1])
    predicted = point_closes(raw, np.array([base]), path.scaler, forecaster.features)
    close = float(shrink(predicted, np.array([base]), forecaster.alpha)[0])
    day = {**path.tail.iloc[-1].to_dict(), "date": path.dates[step], "open": close,
           "high": close, "low": close, "close": close}
    path.tail = pd.concat([path.tail, pd.DataFrame([day])], ignore_index=True)
    if not path.closes:
        path.first = raw
    if path.garch:  # rolled on without refitting
        path.garch = path.garch[0], float(next_variance("garch", path.garch[0], path.garch[1],
                                                        np.log(close / base)))
    path.closes.append(close)


def forecast_fans(cases: list[Case], horizon: int) -> list[pd.DataFrame]:
    """Per case, the median and 50/80/95% bounds of each business day from paths simulated
    through the version's distribution, around its point path (``forecast_recursive_many``);
    a version saved before distributions gives the point path only.

    A network-source version's first day is in closed form (``_first_day_fans``), the same
    whatever the horizon; its later days come from ``sample_paths``.
    """
    paths = _recursive_paths(cases, horizon)
    first_days = _first_day_fans(paths)
    return [_fan(forecaster, prices, path.frame(), horizon, first)
            for (forecaster, prices), path, first in zip(cases, paths, first_days, strict=True)]


def _first_day_fans(paths: list[_Path]) -> list[pd.DataFrame | None]:
    """The first day's fan of each network-source path (None for the others) from the
    network's outputs the point path read: the Student-t that ``sample_paths`` draws its
    first day from, at its quantiles, for all paths at once."""
    from tasks.distribution.simulate import student_t_fan

    served = [i for i, p in enumerate(paths) if p.forecaster.source == "lstm" and p.closes]
    out: list[pd.DataFrame | None] = [None] * len(paths)
    if not served:
        return out
    chosen = [paths[i] for i in served]
    _, scale, dof = student_t_params(np.concatenate([p.first for p in chosen]))
    last = np.array([float(p.tail["close"].iloc[-len(p.closes) - 1]) for p in chosen])
    bounds = student_t_fan(last, np.array([p.closes[0] for p in chosen]),
                           scale * np.array([p.scaler.scale for p in chosen]), dof)
    for row, i in enumerate(served):
        out[i] = pd.DataFrame({"date": paths[i].dates[:1],
                               **{name: values[row:row + 1] for name, values in bounds.items()}})
    return out


def _fan(forecaster: Forecaster, prices: pd.DataFrame, point: pd.DataFrame, horizon: int,
         first: pd.DataFrame | None) -> pd.DataFrame:
    """The fan around the point path ``point``, through the version's distribution
    (``first``: a network source's first day in closed form)."""
    from tasks.distribution.gate import next_baseline_variance
    from tasks.distribution.simulate import fan, simulate_baseline

    saved = forecaster.distribution
    if saved is None:
        return point
    last = float(prices["close"].iloc[-1])
    if saved.source == "lstm":
        if horizon == 1:
            return first
        later = pd.DataFrame({"date": point["date"],
                              **fan(last, sample_paths(forecaster, prices, horizon))})
        return pd.concat([first, later.iloc[1:]], ignore_index=True)
    var_next = next_baseline_variance(saved, prices)
    drift = np.log(point["close"].to_numpy() / last)  # the version's point path (often 0)
    paths = simulate_baseline(saved.source, saved.params(), np.array([var_next]), horizon)[0]
    return pd.DataFrame({"date": point["date"], **fan(last, paths + drift)})


def sample_paths(forecaster: Forecaster, prices: pd.DataFrame, horizon: int,
                 n_paths: int = N_PATHS, seed: int = SEED) -> np.ndarray:
    """Cumulative log returns ``(n_paths, horizon)`` through the network's Student-t; each
    path's sampled day is appended (open = high = low = close, last volume) before the next.
    All paths step together: their channels in ``PathChannels``, one network call a day.

    A network correcting GARCH-t reads GARCH's variance, which rolls on along each path with
    that path's sampled returns.
    """
    rng = np.random.default_rng(seed)
    base, scaler = forecast_tail(forecaster, prices)
    features, garch = forecaster.features, forecaster.garch(prices)
    # the known days as sampling has always read them: missing volumes carried forward
    known = base.assign(volume=base["volume"].ffill()) if "volume" in base else base
    channels = PathChannels.start(known, features, scaler.volatility, n_paths)
    variance = np.full(n_paths, garch[1]) if garch else None
    for _ in range(horizon):
        window = channels.window(features.window)
        scaled = scaler.transform_all(window.reshape(-1, window.shape[-1]))
        offsets = garch_offsets_of(variance, garch[0]["nu"], scaler) if garch else None
        raw = forecaster.network.params(scaled.reshape(window.shape).astype("float32"), offsets)
        last = channels.closes[:, -1]
        centre = shrink(point_closes(raw, last, scaler, features), last, forecaster.alpha)
        _, scale, dof = student_t_params(raw)
        move = np.log(centre / last) + scale * scaler.scale * rng.standard_t(dof)
        channels.append(last * np.exp(move))
        if garch:
            variance = next_variance("garch", garch[0], variance, move)
    return np.log(channels.closes[:, -horizon:] / channels.closes[0, -horizon - 1])
