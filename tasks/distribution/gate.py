"""The distribution gate: the LSTM's distribution against the volatility baselines.

On the validation split the LSTM keeps its own distribution only if its CRPS beats the best
baseline's with a Diebold-Mariano statistic >= gate_z; otherwise the version carries that
baseline's distribution. Test rows are only scored.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from tasks.core.training_config import training_span
from tasks.core.version_files import SavedDistribution
from tasks.distribution.distributions import ReturnDist
from tasks.distribution.scoring import (
    crps_price,
    diebold_mariano_loss,
    mean_and_se,
    summarize,
    widened_on_large_moves,
)
from tasks.distribution.simulate import coverage_ahead
from tasks.distribution.volatility import BASELINES, baseline_dists, roll_variance


def frame_returns(frame: pd.DataFrame) -> np.ndarray:
    """Log return of each target row (close over the previous close)."""
    return np.log(frame["close"].to_numpy() / frame["base_close"].to_numpy())


def choose_source(lstm: ReturnDist | None, baselines: dict[str, ReturnDist], base: np.ndarray,
                  actual: np.ndarray, gate_z: float,
                  decided: str | None = None) -> tuple[str, str, float | None]:
    """(source, best baseline, DM of the LSTM's CRPS gain over it) on validation rows.

    ``decided``: the source a decision taken elsewhere serves (the pooled gate of a network
    fit on many symbols) replaces this symbol's own DM test; the DM is still reported.
    """
    crps = {name: crps_price(d, base, actual) for name, d in baselines.items()}
    best = min(crps, key=lambda name: float(np.mean(crps[name])))
    if lstm is None:
        return best, best, None
    dm = diebold_mariano_loss(crps[best], crps_price(lstm, base, actual))
    if decided is not None:
        return decided, best, dm
    return ("lstm" if dm >= gate_z else best), best, dm


def validation_scores(frame: pd.DataFrame, lstm: ReturnDist, params: dict | None = None
                      ) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Per validation row of ``frame``: each baseline's CRPS (by name) and the network's
    ``lstm`` (every row)."""
    split = frame["split"].to_numpy()
    n_train = training_span(split)
    dists, _ = baseline_dists(frame_returns(frame), n_train, params)
    val = split[n_train:] == "validation"
    base = frame["base_close"].to_numpy()[n_train:][val]
    actual = frame["close"].to_numpy()[n_train:][val]
    crps = {name: crps_price(d.rows(val), base, actual) for name, d in dists.items()}
    return crps, crps_price(lstm.rows(split == "validation"), base, actual)


def distribution_section(frame: pd.DataFrame, lstm: ReturnDist | None, gate_z: float,
                         centre: np.ndarray | None = None, decided: str | None = None,
                         params: dict | None = None, ahead: bool = True
                         ) -> tuple[dict, SavedDistribution, ReturnDist]:
    """(metrics ``distribution`` section, what a version saves to simulate, the model's test
    distribution). ``lstm`` covers every row of ``frame`` (None: the model gives no spread);
    ``centre`` is the version's point forecast as a log return per row (None: naive, 0): a
    carried baseline's distribution is centred on it, as the point forecast is its centre.
    ``params``: the baselines' fit on these training rows when already made (the features
    step keeps it in the scaler); None: fit here. ``ahead``: simulate the baselines' 5-day
    coverage (``coverage_5d_80``; None when False: a backtest fold's table has no use for it,
    and it is the costliest figure of the section)."""
    split = frame["split"].to_numpy()
    n_train = training_span(split)
    returns = frame_returns(frame)
    dists, params = baseline_dists(returns, n_train, params)
    base, actual = frame["base_close"].to_numpy(), frame["close"].to_numpy()
    after = split[n_train:]
    val, test = after == "validation", after == "test"
    lstm_after = lstm.rows(np.arange(len(frame)) >= n_train) if lstm is not None else None
    source, best, val_dm = choose_source(
        lstm_after.rows(val) if lstm_after is not None else None,
        {k: d.rows(val) for k, d in dists.items()}, base[n_train:][val], actual[n_train:][val],
        gate_z, decided)
    chosen = lstm_after if source == "lstm" else dists[source]
    if source != "lstm" and centre is not None:
        chosen = ReturnDist(centre[n_train:], chosen.scale, chosen.dof)
    tb, ta = base[n_train:][test], actual[n_train:][test]
    constant = summarize(dists["constant"].rows(test), tb, ta)
    section = {"constant": constant}
    for name in BASELINES[1:]:
        section[name] = summarize(dists[name].rows(test), tb, ta, constant["crps"])
    test_returns = returns[n_train:][test]
    for name in BASELINES:
        var = roll_variance(name, params[name], returns[n_train:])[:-1][test]
        section[name]["coverage_5d_80"] = (coverage_ahead(name, params[name], var, test_returns)
                                           if ahead else None)
    model = summarize(chosen.rows(test), tb, ta, constant["crps"])
    ungated = dict(model) if source == "lstm" else None  # the same rows: scored once
    model_crps = crps_price(chosen.rows(test), tb, ta)
    model["dm_vs"] = {name: diebold_mariano_loss(crps_price(dists[name].rows(test), tb, ta),
                                                 model_crps) for name in BASELINES}
    # the LSTM's 5-day paths need the network per path and step: not simulated per test day
    model["coverage_5d_80"] = section[source]["coverage_5d_80"] if source != "lstm" else None
    model.update(source=source, validation_best_baseline=best, validation_dm=val_dm,
                 gate="pooled" if decided is not None else "symbol")
    if lstm_after is not None:
        model["lstm_ungated"] = ungated or summarize(lstm_after.rows(test), tb, ta,
                                                     constant["crps"])
        model["large_moves_widened"] = widened_on_large_moves(
            lstm_after.rows(test), dists["garch"].rows(test), tb, ta)
    section = {"model": model, **section}
    first_after = pd.Timestamp(frame["date"].iloc[n_train]).date().isoformat()
    saved = SavedDistribution(source=source, start_date=first_after, baselines=params)
    return section, saved, chosen.rows(test)


def price_returns(prices: pd.DataFrame) -> pd.Series:
    """Log return of each day of a price table, indexed by date (the first day is dropped)."""
    close = prices["close"].to_numpy(dtype="float64")
    return pd.Series(np.diff(np.log(close)), index=pd.to_datetime(prices["date"]).iloc[1:])


def saved_baseline_variance(saved: SavedDistribution, returns: pd.Series,
                            name: str | None = None) -> pd.Series:
    """A saved baseline's variance (``name``; default: the version's source) for every day
    from its ``start_date`` on, plus the next business day after the last return (fixed
    parameters, no refit)."""
    from tasks.distribution.volatility import roll_variance

    name = name or saved.source
    after = returns[returns.index >= pd.Timestamp(saved.start_date)]
    var = roll_variance(name, saved.params(name), after.to_numpy())
    last = after.index[-1] if len(after) else returns.index[-1]
    index = pd.DatetimeIndex(after.index).append(pd.DatetimeIndex([last + pd.offsets.BDay(1)]))
    return pd.Series(var, index=index)  # an index appended, not rebuilt from a list (~7x faster)


def next_baseline_variance(saved: SavedDistribution, prices: pd.DataFrame,
                           name: str | None = None) -> float:
    """``saved_baseline_variance(saved, price_returns(prices), name)``'s last value, the
    variance of the business day after the last price, from arrays (a forecast reads only it;
    the Series cost ~1 ms a symbol)."""
    from tasks.distribution.volatility import roll_variance

    name = name or saved.source
    returns = np.diff(np.log(prices["close"].to_numpy(dtype="float64")))
    days = np.asarray(prices["date"], dtype="datetime64[ns]")[1:]
    after = days >= np.datetime64(saved.start_date)
    return float(roll_variance(name, saved.params(name), returns[after])[-1])


def saved_baseline_dist(saved: SavedDistribution, prices: pd.DataFrame,
                        dates: pd.Series) -> ReturnDist:
    """A saved baseline source's distribution on the given target dates."""
    from tasks.distribution.volatility import dist_from_variance

    name = saved.source
    var = saved_baseline_variance(saved, price_returns(prices))
    wanted = pd.to_datetime(pd.Series(dates))
    missing = ~wanted.isin(var.index)
    if missing.any():
        raise ValueError(f"{name} cannot score {int(missing.sum())} of the dates")
    return dist_from_variance(name, saved.params(), var.loc[wanted].to_numpy())


# Newey-West lags of the pooled gate's daily series: CRPS differentials of volatility
# forecasts are serially correlated (volatility clusters), unlike one-step point errors.
POOLED_HAC_LAGS = 5
# The smallest pooled CRPS gain worth serving a network for (0.001: 0.1%): below it a network
# that learned nothing (a hybrid left at GARCH-t, a time-shuffled control) would be served
# on selection noise, and the source would flip from one run to the next.
MIN_POOLED_GAIN = 0.001


@dataclass(frozen=True)
class PooledChoice:
    """The pooled gate's decision for one network trained across symbols."""

    accepted: bool          # the network serves the market (gain and its bound below)
    dm: float               # gain / its HAC standard error (a Diebold-Mariano statistic)
    kept: tuple[str, ...]   # symbols that keep the network (accepted, and within tolerance)
    ratios: dict            # symbol -> network CRPS / the family's on its validation rows
    family: str = "garch"   # the baseline family of the run, chosen on pooled validation rows
    gain: float = 0.0       # pooled relative CRPS gain of the network over the family
    lower: float = 0.0      # its one-sided lower confidence bound, gain - gate_z * se
    sources: dict = field(default_factory=dict)  # symbol -> the range source it serves


def pooled_family(baselines: dict[str, dict[str, np.ndarray]]) -> str:
    """The baseline family of a run: the lowest mean over symbols of its validation CRPS over
    constant volatility's (scale-free, each symbol counts once). One family for all symbols:
    each symbol's own best of three, picked on ~190 noisy days, buys nothing out of sample."""
    def mean_ratio(name: str) -> float:
        return float(np.mean([np.mean(rows[name]) / np.mean(rows["constant"])
                              for rows in baselines.values()]))
    present = [name for name in BASELINES if all(name in rows for rows in baselines.values())]
    return min(present, key=mean_ratio)


def pooled_gain(dates: dict[str, np.ndarray], family: dict[str, np.ndarray],
                network: dict[str, np.ndarray]) -> tuple[float, float]:
    """(mean, HAC standard error) over validation days of the cross-sectional mean relative
    gain (family CRPS - network CRPS) / the symbol's mean family CRPS: symbols moving together
    on a day count as one observation, not as many; each symbol weighs the same whatever its
    price."""
    frames = [pd.DataFrame({"day": pd.to_datetime(dates[s]),
                            "gain": (family[s] - network[s]) / np.mean(family[s])})
              for s in dates]
    daily = pd.concat(frames).groupby("day", sort=True)["gain"].mean().to_numpy()
    return mean_and_se(daily, POOLED_HAC_LAGS)


def pooled_choice(dates: dict[str, np.ndarray], baselines: dict[str, dict[str, np.ndarray]],
                  network: dict[str, np.ndarray], gate_z: float, tolerance: float,
                  min_gain: float = MIN_POOLED_GAIN) -> PooledChoice:
    """Gate a network fit on many symbols on their pooled validation rows.

    ``baselines``: per symbol, each baseline's CRPS row by row (``dates``); ``network``: the
    network's. A 0.5% CRPS gain is invisible to a test on one symbol's ~190 validation days, so
    the decision is taken once, against one baseline family (``pooled_family``): the network
    serves when its pooled relative gain is at least ``min_gain`` and its one-sided lower
    confidence bound (``gate_z`` standard errors below) is above 0. The null matters more than
    the threshold: against each symbol's best of three baselines, picked on the same rows, a
    real market network's gain sat near the threshold and the decision flipped with one day of
    data; against the family it is several standard errors clear.

    Per symbol, something else is served only where the symbol's own validation rows say so
    beyond ``tolerance``: the network gives way where its CRPS exceeds the symbol's best
    baseline's by more than that share (so no symbol serves a network worse than any of its
    baselines beyond the tolerance), and the family to another baseline only where that one is
    better by more than that share.
    """
    family = pooled_family(baselines)
    base = {s: rows[family] for s, rows in baselines.items()}
    gain, se = pooled_gain(dates, base, network)
    lower = gain - gate_z * se
    accepted = bool(gain >= min_gain and lower > 0)
    ratios = {s: float(np.mean(network[s]) / np.mean(base[s])) for s in dates}
    sources = {}
    for s in sorted(dates):
        own = {name: float(np.mean(rows)) for name, rows in baselines[s].items()}
        best = min(own, key=own.get)
        served = best if own[best] < (1.0 - tolerance) * own[family] else family
        network_keeps = float(np.mean(network[s])) <= (1.0 + tolerance) * own[best]
        sources[s] = "lstm" if accepted and network_keeps else served
    kept = tuple(s for s in sorted(dates) if sources[s] == "lstm")
    return PooledChoice(accepted, gain / se if se > 0 else 0.0, kept, ratios, family, gain,
                        lower, sources)
