"""Features: lag windows of log-returns (or closes), split by time, scaled on training rows only."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
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

if TYPE_CHECKING:
    from sklearn.preprocessing import StandardScaler

SPLITS = ("train", "validation", "test")


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

    @classmethod
    def fit(cls, values: np.ndarray) -> Scaler:
        """Fit on ``(n,)`` or ``(n, channels)`` training values."""
        from sklearn.preprocessing import StandardScaler  # its import sets KMP_* variables

        fitted = StandardScaler().fit(np.asarray(values, dtype="float64").reshape(len(values), -1))
        mean, scale = fitted.mean_, fitted.scale_
        return cls(float(mean[0]), float(scale[0]), tuple(float(v) for v in mean[1:]),
                   tuple(float(v) for v in scale[1:]))

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
        """Read scaler.json; files from before the extra channels have no ``extra_*``."""
        data = json.loads(text)
        return cls(data["mean"], data["scale"], tuple(data.get("extra_mean", ())),
                   tuple(data.get("extra_scale", ())))


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


def channel_values(prices: pd.DataFrame, features: FeatureConfig) -> np.ndarray:
    """``(days, channels)`` unscaled values; row d uses only rows 0..d of ``prices``."""
    close = prices["close"].to_numpy(dtype="float64")
    columns = [series_for(close, features.target, features.returns)]
    if features.ohlcv:
        columns += _ohlcv_channels(prices, close)
    if features.magnitude:
        r = returns_of(close, features.returns)
        columns += [np.abs(r), r * r]
    if features.rolling:
        columns += _rolling_channels(returns_of(close, features.returns), features.rolling)
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
    values = channel_values(prices, features)
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
                     sizes: tuple[int, int, int]) -> tuple[pd.DataFrame, Scaler]:
    """Feature rows of the last ``sum(sizes)`` target days, tagged train/validation/test.

    The scaler is fit on the values the training rows use (their inputs and targets) only, so
    no later row leaks into it.
    """
    n_train, n_val, n_test = sizes
    k = features.window
    need = min_training_windows(features)
    if n_train < need:
        source = prices.attrs.get("source", "prices")
        raise InputError(source, f"rule 'enough history': {len(prices)} days give {n_train} "
                                 f"training windows of {k} lags; need at least {need}")
    values = channel_values(prices, features)
    first_target = len(prices) - n_train - n_val - n_test
    last_train_day = first_target + n_train - 1
    train_start = max(first_valid_day(values), first_target - k)
    scaler = Scaler.fit(values[train_start:last_train_day + 1])
    frame = feature_rows(prices, features, scaler, first_target)
    frame.insert(4, "split", np.repeat(SPLITS, [n_train, n_val, n_test]))
    return frame, scaler


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
    stacked = [rows[[c for _, c in cols]].to_numpy(dtype="float32") for cols in ordered]
    return np.stack(stacked, axis=-1)


def split_arrays(frame: pd.DataFrame, *splits: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(inputs, targets)`` of each named split of a feature table, e.g. train, validation."""
    parts = [frame[frame["split"] == name] for name in splits]
    return [(window_array(p), p["target"].to_numpy(dtype="float32")) for p in parts]


def load_arrays(path: str | Path, split: str) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """Inputs ``(n, k, channels)`` oldest lag first, scaled targets ``(n,)``, and the rows."""
    frame = pd.read_parquet(path)
    rows = frame[frame["split"] == split].reset_index(drop=True)
    return window_array(rows), rows["target"].to_numpy(dtype="float32"), rows


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
