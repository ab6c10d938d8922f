"""Features: lag windows of log-returns (or closes), split by time, scaled on training rows only."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, replace
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view
from prefect import get_run_logger, task

from tasks.core.atomic import atomic_write_parquet
from tasks.core.caching import BY_CONTENT
from tasks.core.config import FeatureConfig, SplitConfig, min_training_windows, split_sizes
from tasks.core.errors import InputError
from tasks.core.hashing import frame_sha256
from tasks.core.paths import confined
from tasks.data.lake import PartitionRef, read_partition
from tasks.distribution.hybrid_inputs import garch_t_offsets, range_variances
from tasks.distribution.volatility import fit_baselines, linear_recursion, variance_path

if TYPE_CHECKING:
    from sklearn.preprocessing import StandardScaler

SPLITS = ("train", "validation", "test")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Scaler:
    """scikit-learn's StandardScaler fit on training values only, kept as its parameters (a
    small frozen record that cache keys hash) and saved beside the model as scaler.json.

    ``mean``/``scale`` belong to the modelled series (channel 0, also the target); the extra
    channels (OHLCV, rolling statistics) have theirs in ``extra_mean``/``extra_scale``. A
    constant channel gets scale 1, as StandardScaler gives it.
    """

    mean: float
    scale: float
    extra_mean: tuple[float, ...] = ()
    extra_scale: tuple[float, ...] = ()
    # The volatility channels' training fit (``VOLATILITY_FIT`` order); empty: no such channels
    volatility: tuple[float, ...] = ()
    # The volatility baselines' training fit (``volatility.fit_baselines``) as JSON: the gate
    # scores with it instead of fitting GARCH again on the same rows; empty: none kept
    baselines: str = ""

    def baseline_params(self) -> dict | None:
        """The baselines' training fit, or None when the scaler keeps none."""
        return json.loads(self.baselines) if self.baselines else None

    @classmethod
    def fit(cls, values: np.ndarray, volatility: tuple[float, ...] = ()) -> Scaler:
        """Fit on ``(n,)`` or ``(n, channels)`` training values (``volatility``: kept as is)."""
        from sklearn.preprocessing import StandardScaler  # its import sets KMP_* variables

        fitted = StandardScaler().fit(np.asarray(values, dtype="float64").reshape(len(values), -1))
        mean, scale = fitted.mean_, fitted.scale_
        return cls(float(mean[0]), float(scale[0]), tuple(float(v) for v in mean[1:]),
                   tuple(float(v) for v in scale[1:]), tuple(volatility))

    def standard_scaler(self) -> StandardScaler:
        """The fitted StandardScaler these parameters describe (every channel)."""
        from sklearn.preprocessing import StandardScaler

        fitted = StandardScaler()
        fitted.mean_ = np.array([self.mean, *self.extra_mean])
        fitted.scale_ = np.array([self.scale, *self.extra_scale])
        fitted.var_ = fitted.scale_ ** 2
        fitted.n_features_in_ = len(fitted.mean_)
        fitted.n_samples_seen_ = 0  # not recorded; transform and inverse never read it
        return fitted

    def transform(self, values: np.ndarray) -> np.ndarray:
        """Scale the modelled series (channel 0), any shape."""
        return (values - self.mean) / self.scale

    def transform_all(self, values: np.ndarray) -> np.ndarray:
        """Scale a ``(n, channels)`` array channel by channel."""
        return self.standard_scaler().transform(np.asarray(values, dtype="float64"))

    def inverse(self, values: np.ndarray) -> np.ndarray:
        """Undo ``transform`` (channel 0), any shape."""
        return values * self.scale + self.mean

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Scaler:
        """Read scaler.json; older files have no ``extra_*`` or ``volatility``."""
        data = json.loads(text)
        return cls(data["mean"], data["scale"], tuple(data.get("extra_mean", ())),
                   tuple(data.get("extra_scale", ())), tuple(data.get("volatility", ())),
                   data.get("baselines", ""))


@dataclass(frozen=True)
class DatasetRef:
    """A symbol's feature table on disk, the scaler fit on its training rows, and its identity."""

    symbol: str
    path: str
    data_fingerprint: str
    as_of: str
    scaler: Scaler
    n_train: int
    n_validation: int
    n_test: int


def returns_of(close: np.ndarray, kind: str = "log") -> np.ndarray:
    """Daily returns (NaN on the first day): log or simple."""
    if kind == "log":
        return np.concatenate([[np.nan], np.diff(np.log(close))])
    return np.concatenate([[np.nan], close[1:] / close[:-1] - 1.0])


def series_for(close: np.ndarray, target: str, kind: str = "log") -> np.ndarray:
    """The modelled series per day: a return (NaN on the first day) or the close itself."""
    if target == "return":
        return returns_of(close, kind)
    return close.astype("float64")


def channel_names(features: FeatureConfig) -> list[str]:
    """Names of the input channels: the modelled series first, then the optional extras."""
    names = ["series"]
    if features.ohlcv:
        names += ["open", "high", "low", "volume"]
    if features.magnitude:
        names += ["abs", "sq"]
    for w in features.rolling:
        names += [f"mean{w}", f"vol{w}"]
    if features.volatility:
        names += list(VOLATILITY_CHANNELS)
    return names


def _ohlcv_channels(prices: pd.DataFrame, close: np.ndarray) -> list[np.ndarray]:
    """log(open/close), log(high/close), log(low/close), log volume change; each known at day end.

    A non-positive open/high/low (Yahoo writes 0 for a missing open) counts as the close.
    """
    absent = [c for c in ("open", "high", "low", "volume") if prices[c].isna().all()]
    if absent:
        source = prices.attrs.get("source") or ", ".join(map(str, prices["symbol"].unique()))
        raise InputError(source, f"rule 'OHLCV columns for features.ohlcv': the prices have no "
                                 f"{', '.join(absent)} (a close-only input); set features.ohlcv "
                                 "to false, or give a file with open, high, low and volume")
    out = []
    for col in ("open", "high", "low"):
        value = prices[col].to_numpy(dtype="float64")
        out.append(np.log(np.where(value > 0, value, close) / close))
    volume = np.log1p(prices["volume"].to_numpy(dtype="float64").clip(min=0))
    out.append(np.concatenate([[np.nan], np.diff(volume)]))
    return out


def _rolling_channels(returns: np.ndarray, windows: tuple[int, ...]) -> list[np.ndarray]:
    """Rolling mean and std of the returns ending on each day (only that day and earlier)."""
    out = []
    series = pd.Series(returns)
    for w in windows:
        out.append(series.rolling(w, min_periods=w).mean().to_numpy())
        out.append(series.rolling(w, min_periods=w).std(ddof=0).to_numpy())
    return out


def channel_values(prices: pd.DataFrame, features: FeatureConfig,
                   volatility: tuple[float, ...] = ()) -> np.ndarray:
    """``(days, channels)`` unscaled values; row d uses only rows 0..d of ``prices``.

    The volatility channels need their training fit (``volatility``, as ``Scaler.volatility``
    keeps it); without it they are left out (counting windows does not need them).
    """
    close = prices["close"].to_numpy(dtype="float64")
    columns = [series_for(close, features.target, features.returns)]
    if features.ohlcv:
        columns += _ohlcv_channels(prices, close)
    if features.magnitude:
        r = returns_of(close, features.returns)
        columns += [np.abs(r), r * r]
    if features.rolling:
        columns += _rolling_channels(returns_of(close, features.returns), features.rolling)
    if features.volatility and volatility:
        columns += volatility_channels(prices, volatility)
    return np.column_stack(columns)


def first_valid_day(values: np.ndarray) -> int:
    """The first day from which every channel is defined on every later day."""
    bad = np.flatnonzero(np.isnan(values).any(axis=1))
    return int(bad[-1]) + 1 if len(bad) else 0


def feature_rows(prices: pd.DataFrame, features: FeatureConfig, scaler: Scaler,
                 first_target: int = 0) -> pd.DataFrame:
    """One row per predictable day from ``first_target`` on: scaled lags and target.

    ``lag_1`` is day t-1 .. ``lag_k`` day t-k of the modelled series; an extra channel ``c``
    has columns ``c_lag_1`` .. ``c_lag_k``. ``base_close`` is the close of day t-1, which is
    also the naive forecast of day t.
    """
    k = features.window
    close = prices["close"].to_numpy(dtype="float64")
    values = channel_values(prices, features, scaler.volatility)
    first = first_valid_day(values)
    scaled = scaler.transform_all(values)
    targets = np.arange(max(first + k, first_target), len(close))
    frame = pd.DataFrame({
        "date": prices["date"].to_numpy()[targets],
        "base_close": close[targets - 1],
        "close": close[targets],
        "target": scaled[targets, 0],
    })
    parts = [frame]
    for c, name in enumerate(channel_names(features)):
        # sliding window i holds days i..i+k-1, so the window of target day d starts at d-k.
        windows = sliding_window_view(scaled[:, c], k)[targets - k][:, ::-1]
        prefix = "lag" if c == 0 else f"{name}_lag"
        parts.append(pd.DataFrame(windows, columns=[f"{prefix}_{i}" for i in range(1, k + 1)]))
    return pd.concat(parts, axis=1)


def sample_count(prices: pd.DataFrame, features: FeatureConfig) -> int:
    """How many target days the prices give (days with a full window of defined inputs)."""
    first = first_valid_day(channel_values(prices, features))
    return max(0, len(prices) - first - features.window)


def frame_with_split(prices: pd.DataFrame, features: FeatureConfig,
                     sizes: tuple[int, int, int],
                     baselines: dict | None = None) -> tuple[pd.DataFrame, Scaler]:
    """Feature rows of the last ``sum(sizes)`` target days, tagged train/validation/test.

    The scaler is fit on the values the training rows use (their inputs and targets) only, so
    no later row leaks into it. ``baselines``: the volatility baselines' fit on these same
    training rows when it was made before (``Scaler.baseline_params``); None: fit here.
    """
    n_train, n_val, n_test = sizes
    k = features.window
    need = min_training_windows(features)
    if n_train < need:
        source = prices.attrs.get("source", "prices")
        raise InputError(source, f"rule 'enough history': {len(prices)} days give {n_train} "
                                 f"training windows of {k} lags; need at least {need}")
    first_target = len(prices) - n_train - n_val - n_test
    last_train_day = first_target + n_train - 1
    fit: tuple = ()
    if not features.volatility:
        baselines = None
    else:  # on the training rows' returns, exactly as the gate fits its baselines
        close = prices["close"].to_numpy(dtype="float64")  # (gate.frame_returns)
        returns = np.concatenate([[np.nan], np.log(close[1:] / close[:-1])])
        baselines = baselines or fit_baselines(returns[first_target:], n_train)
        fit = volatility_fit(baselines, returns, first_target, n_train)
    values = channel_values(prices, features, fit)
    train_start = max(first_valid_day(values), first_target - k)
    scaler = Scaler.fit(values[train_start:last_train_day + 1], fit)
    if baselines:
        scaler = replace(scaler, baselines=json.dumps(baselines, sort_keys=True))
    frame = feature_rows(prices, features, scaler, first_target)
    frame.insert(4, "split", np.repeat(SPLITS, [n_train, n_val, n_test]))
    if baselines:
        frame = frame.assign(**garch_offsets(frame, baselines, scaler, n_train))
    return frame, scaler


# The volatility channels' training fit, in ``Scaler.volatility``'s order.
VOLATILITY_FIT = ("garch_initial", "ewma_initial", "garch_omega", "garch_alpha", "garch_beta",
                  "ewma_lambda")
VOLATILITY_CHANNELS = ("log_sigma_garch", "log_sigma_ewma", "parkinson", "garman_klass")
# Columns of a feature table that carry the hybrid head's baseline, GARCH-t, per row (scaled
# units: loc, log scale, dof as softplus^-1(dof - 2)); ``targets_of`` packs them with the target.
OFFSETS = ("offset_loc", "offset_log_scale", "offset_dof")
_close_only_said = False


def volatility_fit(baselines: dict, returns: np.ndarray, first_target: int,
                   n_train: int) -> tuple[float, ...]:
    """What the volatility channels need of the baselines' training fit (``VOLATILITY_FIT``)."""
    garch = baselines["garch"]
    initial = float(np.var(returns[first_target:first_target + n_train]))
    return (initial, initial, garch["omega"], garch["alpha"], garch["beta"],
            baselines["ewma"]["lambda"])


def _variances(prices: pd.DataFrame, fit: tuple[float, ...]) -> tuple[np.ndarray, np.ndarray]:
    """GARCH(1,1) and EWMA variance of day d+1 known after day d, for every day d."""
    garch_initial, ewma_initial, omega, alpha, beta, lam = fit
    r2 = returns_of(prices["close"].to_numpy(dtype="float64")) ** 2
    return (_next_day_variance(r2, garch_initial, omega, alpha, beta),
            _next_day_variance(r2, ewma_initial, 0.0, 1.0 - lam, lam))


def rebased(scaler: Scaler, prices: pd.DataFrame, start: int) -> Scaler:
    """``scaler`` with its volatility recursions starting at row ``start`` of ``prices`` in the
    state the whole of ``prices`` reaches there: the rows from ``start`` on (a forecast's tail)
    then give the channel values the whole history gives them."""
    if not scaler.volatility or start <= 0:
        return scaler
    garch, ewma = _variances(prices, scaler.volatility)
    return replace(scaler, volatility=(float(garch[start]), float(ewma[start]),
                                       *scaler.volatility[2:]))


def _next_day_variance(r2: np.ndarray, initial: float, omega: float, alpha: float,
                       beta: float) -> np.ndarray:
    """v[d] = the variance of day d+1 known after day d: v[d] = omega + alpha r2[d] +
    beta v[d-1], from ``initial`` (r2[0] is day 0's, unused: NaN out)."""
    return np.concatenate([[np.nan], linear_recursion(omega + alpha * r2[1:], initial, beta)])


def volatility_channels(prices: pd.DataFrame, fit: tuple[float, ...]) -> list[np.ndarray]:
    """Per day d, known after its close: log GARCH(1,1) and EWMA sigma of day d+1 (training
    fit, no refit), and the Parkinson and Garman-Klass variance of day d's range; a day with
    no valid open/high/low (a close-only file) gets r^2 in their place."""
    global _close_only_said
    close = prices["close"].to_numpy(dtype="float64")
    r2 = returns_of(close) ** 2
    garch, ewma = _variances(prices, fit)
    ohlc = [prices[c].to_numpy(dtype="float64") if c in prices else np.full(len(close), np.nan)
            for c in ("open", "high", "low")]
    parkinson, garman_klass = range_variances(*ohlc, close)
    valid = np.isfinite(parkinson)
    parkinson = np.where(valid, parkinson, r2)
    garman_klass = np.where(valid, garman_klass, r2)
    if not valid.any() and not _close_only_said:
        _close_only_said = True
        log.info("no open/high/low in the prices: the range channels (Parkinson, Garman-Klass) "
                 "carry r^2 instead")
    parkinson[0] = garman_klass[0] = np.nan
    return [0.5 * np.log(garch), 0.5 * np.log(ewma), parkinson, garman_klass]


def garch_offsets(frame: pd.DataFrame, baselines: dict, scaler: Scaler,
                  n_train: int) -> dict[str, np.ndarray]:
    """GARCH-t's distribution of each row in the target's scaled units (``OFFSETS``): exactly
    the gate's GARCH-t baseline on every row after training (``variance_path``)."""
    garch = baselines["garch"]
    returns = np.log(frame["close"].to_numpy() / frame["base_close"].to_numpy())
    offsets = garch_t_offsets(variance_path("garch", garch, returns, n_train), garch["nu"],
                              scaler.mean, scaler.scale)
    return dict(zip(OFFSETS, offsets.T, strict=True))


def targets_of(rows: pd.DataFrame, packed: bool = False) -> np.ndarray:
    """A feature table's scaled targets ``(n,)``; ``packed``: ``(n, 4)``, the target and
    GARCH-t's ``OFFSETS`` beside it, as the hybrid head's loss reads them."""
    if packed:
        return rows[["target", *OFFSETS]].to_numpy(dtype="float32")
    return rows["target"].to_numpy(dtype="float32")


def build_feature_frame(prices: pd.DataFrame, features: FeatureConfig,
                        split: SplitConfig) -> tuple[pd.DataFrame, Scaler]:
    """Feature rows with a ``split`` column, and the scaler fit on the training rows only."""
    sizes = split_sizes(sample_count(prices, features), split)
    return frame_with_split(prices, features, sizes)


def prepare_dataset(lake: Path, symbol: str, as_of: date | None, features: FeatureConfig,
                    split: SplitConfig) -> DatasetRef:
    """Read a symbol's history up to ``as_of``, build its feature table, and store it as Parquet."""
    prices = read_partition(lake, symbol, as_of)
    if prices.empty:
        raise InputError(f"lake/prices/symbol={symbol}", "rule 'symbol has rows': no prices"
                         + (f" on or before {as_of}" if as_of else ""))
    prices.attrs["source"] = f"{symbol} (lake/prices/symbol={symbol})"
    fingerprint = frame_sha256(prices)
    frame, scaler = build_feature_frame(prices, features, split)
    config_hash = FeatureConfigKey(features, split).hash()
    target = confined(lake, "features", config_hash, f"symbol={symbol}",
                      f"{fingerprint[:16]}.parquet")
    if not target.exists():
        atomic_write_parquet(frame, target)
    counts = frame["split"].value_counts()
    return DatasetRef(symbol, str(target), fingerprint,
                      prices["date"].iloc[-1].date().isoformat(), scaler,
                      int(counts.get("train", 0)), int(counts.get("validation", 0)),
                      int(counts.get("test", 0)))


@dataclass(frozen=True)
class FeatureConfigKey:
    """The part of the config that shapes a feature table (its directory name)."""

    features: FeatureConfig
    split: SplitConfig

    def hash(self) -> str:
        return f"{self.features.fingerprint()}-{self.split.fingerprint()}"


def window_array(rows: pd.DataFrame) -> np.ndarray:
    """Inputs ``(n, k, channels)`` from a feature table's lag columns, oldest lag first."""
    channels: dict[str, list[tuple[int, str]]] = {}
    for column in rows.columns:
        if column.startswith("lag_") or "_lag_" in column:
            prefix, _, lag = column.rpartition("_")
            channels.setdefault(prefix, []).append((int(lag), column))
    ordered = [sorted(cols, reverse=True) for cols in channels.values()]
    lags = len(ordered[0])
    if any(len(cols) != lags for cols in ordered):
        raise ValueError(f"channels with different lag counts: {[len(c) for c in ordered]}")
    # one copy of every lag column, channel by channel, then (n, channels, k) -> (n, k, channels)
    flat = rows[[c for cols in ordered for _, c in cols]].to_numpy(dtype="float32")
    return np.ascontiguousarray(flat.reshape(len(rows), len(ordered), lags).transpose(0, 2, 1))


def split_arrays(frame: pd.DataFrame, *splits: str,
                 packed: bool = False) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(inputs, targets)`` of each named split of a feature table, e.g. train, validation
    (``packed``: targets with GARCH-t's offsets, ``targets_of``)."""
    parts = [frame[frame["split"] == name] for name in splits]
    return [(window_array(p), targets_of(p, packed)) for p in parts]


def load_arrays(path: str | Path, split: str,
                packed: bool = False) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """Inputs ``(n, k, channels)`` oldest lag first, scaled targets (``targets_of``), rows."""
    frame = pd.read_parquet(path)
    rows = frame[frame["split"] == split].reset_index(drop=True)
    return window_array(rows), targets_of(rows, packed), rows


@task(name="prepare-dataset", cache_policy=BY_CONTENT, persist_result=True)
def prepare_dataset_task(partition: PartitionRef, as_of: date | None, features: FeatureConfig,
                         split: SplitConfig, lake: str) -> DatasetRef:
    """Build and store a symbol's features (keyed on the partition's content hash)."""
    dataset = prepare_dataset(Path(lake), partition.symbol, as_of, features, split)
    get_run_logger().info("%s: %d train / %d validation / %d test windows up to %s",
                          dataset.symbol, dataset.n_train, dataset.n_validation, dataset.n_test,
                          dataset.as_of)
    return dataset


@task(name="prepare-datasets", cache_policy=BY_CONTENT, persist_result=True)
def prepare_datasets_task(partitions: list[PartitionRef], as_of: date | None,
                          features: FeatureConfig, split: SplitConfig,
                          lake: str) -> list[DatasetRef]:
    """Build and store the features of a chunk of symbols (a market-sized run: one task per
    symbol would cost more in orchestration than the ~12 ms of work each)."""
    datasets = [prepare_dataset(Path(lake), p.symbol, as_of, features, split)
                for p in partitions]
    get_run_logger().info("features of %d symbols (%s .. %s) up to %s", len(datasets),
                          datasets[0].symbol, datasets[-1].symbol, datasets[-1].as_of)
    return datasets
