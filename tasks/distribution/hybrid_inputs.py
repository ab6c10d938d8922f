"""Inputs of the hybrid volatility network: each day's GARCH(1,1)-t and EWMA sigmas, the size
of the day before's move and range, and the market's day before, all known at the origin.

Row t describes the forecast of day t's log return made after day t-1's close. Every column
of row t uses prices up to day t-1 only; the baselines are fit on the training returns only
and rolled forward with fixed parameters (``volatility.variance_path``); the columns are
standardised with the training rows' means and deviations. The network's output is a
correction to GARCH-t: ``scale = garch_scale * exp(g)``, so ``offset`` carries GARCH-t's
log-scale and degrees of freedom per row.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from tasks.distribution.distributions import ReturnDist
from tasks.distribution.volatility import fit_baselines, variance_path

log = logging.getLogger(__name__)

SIGMAS = ("log_sigma_garch", "log_sigma_ewma")
MOVES = ("abs_return", "squared_return")
RANGES = ("parkinson", "garman_klass")
MARKET = ("market_return", "market_abs_return")
# Columns built only when ``names`` asks for them (measured by compare_hybrid, not a run's):
# ``har_<source>_<days>``: log sigma of the mean of the last ``days`` days' variance estimate
# (source parkinson, garman_klass or squared; a day without a range uses its r^2);
# ``range_vs_garch_<days>``: that Parkinson log sigma minus the row's GARCH log sigma;
# ``overnight_gap``: |log(open / the close before)| of the day before.
HAR_SOURCES = ("parkinson", "garman_klass", "squared")
_LN2 = np.log(2.0)


@dataclass(frozen=True)
class HybridInputs:
    """One symbol's rows: context columns, the GARCH-t offset and the target returns."""

    context: np.ndarray  # (n, m) standardised with training rows only
    offset: np.ndarray   # (n, 3): 0, log GARCH-t scale, GARCH-t dof as softplus^-1(dof - 2)
    returns: np.ndarray  # (n,) log return of day t (the target)
    names: tuple[str, ...]
    n_train: int
    garch: dict          # the training fit of GARCH(1,1)-t (volatility.fit_garch's dict)

    def windows(self, k: int) -> tuple[np.ndarray, np.ndarray, int]:
        """(x, y, first row): x[i] is context rows i .. i+k-1, for target row i+k-1; rows
        before ``k - 1`` have no full window and are dropped."""
        from numpy.lib.stride_tricks import sliding_window_view

        x = sliding_window_view(self.context, (k, self.context.shape[1]))[:, 0]
        # the target beside GARCH-t's loc (0), log scale and dof: ``lstm.hybrid_nll``'s packing
        y = np.column_stack([self.returns, self.offset])[k - 1:].astype("float32")
        return np.ascontiguousarray(x, dtype="float32"), y, k - 1


def softplus_inverse(value):
    """x with softplus(x) = value (value > 0; a number or an array)."""
    return value + np.log(-np.expm1(-value))


def garch_t_offsets(variance: np.ndarray, nu: float, mean: float = 0.0,
                    scale: float = 1.0) -> np.ndarray:
    """GARCH-t's distribution of rows of GARCH variance ``variance`` as the hybrid's offsets
    ``(loc, log scale, softplus^-1(dof - 2))``, in units of ``(r - mean) / scale``."""
    variance = np.asarray(variance, dtype="float64")
    n = len(variance)
    return np.column_stack([np.full(n, -mean / scale),
                            0.5 * np.log(variance * (nu - 2) / nu) - np.log(scale),
                            np.full(n, softplus_inverse(nu - 2.0))])


def garch_t_dist(offset: np.ndarray) -> ReturnDist:
    """GARCH-t's own distribution of each row, read back from ``offset`` (zero-centred)."""
    return correction_dist(np.zeros_like(offset), offset)


def correction_dist(correction: np.ndarray, offset: np.ndarray) -> ReturnDist:
    """The hybrid's distribution: loc = c0, scale = GARCH-t scale * exp(c1), dof = 2 +
    softplus(softplus^-1(GARCH-t dof - 2) + c2). A zero correction is GARCH-t exactly."""
    raw = np.asarray(correction, dtype="float64") + offset
    dof = 2.0 + np.logaddexp(0.0, raw[:, 2])
    return ReturnDist.of(raw[:, 0], np.exp(raw[:, 1]), dof)


def range_variances(open_: np.ndarray, high: np.ndarray, low: np.ndarray,
                    close: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Parkinson and Garman-Klass variance estimates of each day's range; NaN on a day whose
    open, high or low is missing, not positive, or whose high is below its low."""
    valid = (open_ > 0) & (high > 0) & (low > 0) & (high >= low)
    with np.errstate(divide="ignore", invalid="ignore"):
        hl = np.log(high / low)
        co = np.log(close / open_)
    return (np.where(valid, hl * hl / (4 * _LN2), np.nan),
            np.where(valid, 0.5 * hl * hl - (2 * _LN2 - 1) * co * co, np.nan))


def range_columns(open_: np.ndarray | None, high: np.ndarray | None, low: np.ndarray | None,
                  close: np.ndarray) -> list[np.ndarray]:
    """``range_variances`` as input columns (empty without OHLC)."""
    if high is None or low is None or open_ is None:
        return []
    return list(range_variances(open_, high, low, close))


def trailing_mean(values: np.ndarray, days: int) -> np.ndarray:
    """Row t: the mean of ``values[t - days + 1 .. t]`` (rows <= t only), NaNs skipped; NaN
    where fewer than half of those days have a value (and on the first rows)."""
    import pandas as pd

    series = pd.Series(np.asarray(values, dtype="float64"))
    return series.rolling(days, min_periods=days // 2 + 1).mean().to_numpy()


def log_sigma_of(variance: np.ndarray) -> np.ndarray:
    """0.5 log variance; NaN where the variance is not positive."""
    variance = np.asarray(variance, dtype="float64")
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(variance > 0, 0.5 * np.log(variance), np.nan)


def extra_column(name: str, day_before: np.ndarray, ranges: list[np.ndarray],
                 log_sigma_garch: np.ndarray, gap: np.ndarray | None) -> np.ndarray | None:
    """The requested column ``name`` (see ``HAR_SOURCES``) of each row from the day before's
    return, range estimators (``range_columns``, maybe empty) and overnight gap; None when the
    name is not one of these or the symbol lacks what it needs. Row t uses days <= t only."""
    squared = day_before * day_before
    by_source = {"squared": squared}
    for source, values in zip(("parkinson", "garman_klass"), ranges, strict=False):
        by_source[source] = np.where(np.isfinite(values), values, squared)
    by_source.setdefault("parkinson", squared)
    by_source.setdefault("garman_klass", squared)
    if name == "overnight_gap":
        return gap
    stem, _, days = name.rpartition("_")
    if not days.isdigit() or int(days) < 1:
        return None
    if stem.startswith("har_") and stem[4:] in HAR_SOURCES:
        return log_sigma_of(trailing_mean(by_source[stem[4:]], int(days)))
    if stem == "range_vs_garch":
        return log_sigma_of(trailing_mean(by_source["parkinson"], int(days))) - log_sigma_garch
    return None


def overnight_gap(open_: np.ndarray | None, close: np.ndarray) -> np.ndarray | None:
    """|log(open_d / close_{d-1})| of each day d (``open_`` and ``close`` aligned, day 0 NaN);
    None without opens; NaN where an open is not positive."""
    if open_ is None:
        return None
    open_ = np.asarray(open_, dtype="float64")
    close = np.asarray(close, dtype="float64")
    prev = np.concatenate([[np.nan], close[:-1]])
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(open_ > 0, np.abs(np.log(open_ / prev)), np.nan)


def market_columns(dates: np.ndarray, market: dict | None) -> list[np.ndarray]:
    """The universe's mean return and mean |return| of each day (``market``: date -> (mean r,
    mean |r|), built by ``market_table``); empty without a market."""
    if not market:
        return []
    values = np.array([market.get(d, (np.nan, np.nan)) for d in dates], dtype="float64")
    return [values[:, 0], values[:, 1]]


def market_table(closes: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict:
    """date -> (cross-sectional mean log return, mean |log return|) over the symbols that
    traded that day and the day before. A day's entry uses that day's closes only; the
    inputs read it for the day *before* the forecast day."""
    import pandas as pd

    frames = [pd.Series(np.diff(np.log(close)), index=dates[1:])
              for dates, close in closes.values()]
    table = pd.concat(frames, axis=1)
    means = table.mean(axis=1, skipna=True)
    sizes = table.abs().mean(axis=1, skipna=True)
    return {d: (float(m), float(s)) for d, m, s in zip(table.index, means, sizes, strict=True)}


def hybrid_inputs(dates: np.ndarray, close: np.ndarray, n_train: int, *,
                  open_: np.ndarray | None = None, high: np.ndarray | None = None,
                  low: np.ndarray | None = None, market: dict | None = None,
                  names: tuple[str, ...] | None = None) -> HybridInputs:
    """Rows for the log returns of days 2 .. n-1 of ``close`` (day 1's return has no day
    before); ``n_train`` counts the leading rows whose returns fit the baselines and scaler.

    ``names``: the columns a network pooled over symbols expects; one this symbol lacks (no
    OHLC in its file) is 0, its standardised training mean. None: the columns it has.
    """
    r_all = np.diff(np.log(np.asarray(close, dtype="float64")))
    params = fit_baselines(r_all[1:], n_train)
    target = r_all[1:]  # row t: the return of day t+2 of ``close``
    day_before = r_all[:-1]
    garch_var = variance_path("garch", params["garch"], target, n_train)
    ewma_var = variance_path("ewma", params["ewma"], target, n_train)
    columns = [0.5 * np.log(garch_var), 0.5 * np.log(ewma_var),
               np.abs(day_before), day_before * day_before]
    names_ = [*SIGMAS, *MOVES]
    ranges = range_columns(*(None if a is None else np.asarray(a, dtype="float64")[1:-1]
                             for a in (open_, high, low)), np.asarray(close, "float64")[1:-1])
    if ranges:
        columns += ranges
        names_ += RANGES
    markets = market_columns(np.asarray(dates)[1:-1], market)
    if markets:
        columns += markets
        names_ += MARKET
    gap = None if open_ is None else overnight_gap(open_, close)
    for name in names or ():
        if name not in names_:
            value = extra_column(name, day_before, ranges, columns[0],
                                 None if gap is None else gap[1:-1])
            if value is not None:
                columns.append(value)
                names_.append(name)
    raw = np.column_stack(columns)
    raw = np.where(np.isfinite(raw), raw, np.nan)
    train = raw[:n_train]
    mean, std = np.nanmean(train, axis=0), np.nanstd(train, axis=0)
    std = np.where(std > 0, std, 1.0)
    context = np.nan_to_num((raw - mean) / std)  # a missing value is the training mean
    if names is not None:
        have = {name: context[:, j] for j, name in enumerate(names_)}
        context = np.column_stack([have.get(name, np.zeros(len(target))) for name in names])
        names_ = list(names)
    offset = garch_t_offsets(garch_var, params["garch"]["nu"])
    return HybridInputs(context, offset, target, tuple(names_), n_train, params["garch"])
