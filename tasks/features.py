"""Features: lag windows of log-returns (or closes), split by time, scaled on training rows only."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view
from prefect import get_run_logger, task

from tasks.caching import BY_CONTENT
from tasks.config import FeatureConfig, SplitConfig
from tasks.errors import InputError
from tasks.lake import PartitionRef, atomic_write_parquet, read_partition, rows_sha256

SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class Scaler:
    """Standard scaling fit on training values only; saved beside the model as scaler.json."""

    mean: float
    scale: float

    @classmethod
    def fit(cls, values: np.ndarray) -> Scaler:
        std = float(np.std(values))
        return cls(float(np.mean(values)), std if std > 0 else 1.0)

    def transform(self, values: np.ndarray) -> np.ndarray:
        return (values - self.mean) / self.scale

    def inverse(self, values: np.ndarray) -> np.ndarray:
        return values * self.scale + self.mean

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Scaler:
        return cls(**json.loads(text))


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


def series_for(close: np.ndarray, target: str) -> np.ndarray:
    """The modelled series per day: log-return (NaN on the first day) or the close itself."""
    if target == "return":
        return np.concatenate([[np.nan], np.diff(np.log(close))])
    return close.astype("float64")


def split_sizes(n_samples: int, split: SplitConfig) -> tuple[int, int, int]:
    """Chronological sizes (train, validation, test): the test window is always the last."""
    n_test = max(1, round(n_samples * split.test))
    n_val = max(1, round(n_samples * split.validation))
    return n_samples - n_val - n_test, n_val, n_test


def feature_rows(prices: pd.DataFrame, features: FeatureConfig, scaler: Scaler,
                 first_target: int = 0) -> pd.DataFrame:
    """One row per predictable day from ``first_target`` on: scaled lags and target.

    ``lag_1`` is day t-1 .. ``lag_k`` day t-k; ``base_close`` is the close of day t-1, which is
    also the naive forecast of day t.
    """
    k = features.window
    close = prices["close"].to_numpy(dtype="float64")
    scaled = scaler.transform(series_for(close, features.target))
    first = 1 if features.target == "return" else 0
    targets = np.arange(max(first + k, first_target), len(close))
    # sliding window i holds days i..i+k-1, so the window of target day d starts at day d-k.
    windows = sliding_window_view(scaled, k)[targets - k]
    frame = pd.DataFrame({
        "date": prices["date"].to_numpy()[targets],
        "base_close": close[targets - 1],
        "close": close[targets],
        "target": scaled[targets],
    })
    lags = pd.DataFrame(windows[:, ::-1], columns=[f"lag_{i}" for i in range(1, k + 1)])
    return pd.concat([frame, lags], axis=1)


def min_training_windows(features: FeatureConfig) -> int:
    """Fewest training windows a symbol needs for a meaningful fit."""
    return max(2 * features.window, 30)


def min_history_days(features: FeatureConfig, split: SplitConfig) -> int:
    """Fewest days of prices per symbol that give enough training windows (validation uses it)."""
    first = 1 if features.target == "return" else 0
    need = min_training_windows(features)
    days = need + first + features.window
    while split_sizes(days - first - features.window, split)[0] < need:
        days += 1
    return days


def build_feature_frame(prices: pd.DataFrame, features: FeatureConfig,
                        split: SplitConfig) -> tuple[pd.DataFrame, Scaler]:
    """Feature rows with a ``split`` column, and the scaler fit on the training rows only.

    The split is made on target dates first; the scaler sees only values that the training rows
    use (their inputs and targets), so no later row leaks into it.
    """
    k = features.window
    close = prices["close"].to_numpy(dtype="float64")
    values = series_for(close, features.target)
    first = 1 if features.target == "return" else 0
    n_samples = max(0, len(close) - first - k)
    n_train, n_val, n_test = split_sizes(n_samples, split)
    need = min_training_windows(features)
    if n_train < need:
        source = prices.attrs.get("source", "prices")
        raise InputError(source, f"rule 'enough history': {len(close)} days give {n_train} "
                                 f"training windows of {k} lags; need at least {need}")
    last_train_day = first + k + n_train - 1
    scaler = Scaler.fit(values[first:last_train_day + 1])
    frame = feature_rows(prices, features, scaler)
    frame.insert(4, "split", np.repeat(SPLITS, [n_train, n_val, n_test]))
    return frame, scaler


def prepare_dataset(lake: Path, symbol: str, as_of: date | None, features: FeatureConfig,
                    split: SplitConfig) -> DatasetRef:
    """Read a symbol's history up to ``as_of``, build its feature table, and store it as Parquet."""
    prices = read_partition(lake, symbol, as_of)
    if prices.empty:
        raise InputError(f"lake/prices/symbol={symbol}", "rule 'symbol has rows': no prices"
                         + (f" on or before {as_of}" if as_of else ""))
    prices.attrs["source"] = f"{symbol} (lake/prices/symbol={symbol})"
    fingerprint = rows_sha256(prices)
    frame, scaler = build_feature_frame(prices, features, split)
    config_hash = FeatureConfigKey(features, split).hash()
    target = lake / "features" / config_hash / f"symbol={symbol}" / f"{fingerprint[:16]}.parquet"
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


def load_arrays(path: str | Path, split: str) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """Inputs ``(n, k, 1)`` oldest lag first, scaled targets ``(n,)``, and the rows themselves."""
    frame = pd.read_parquet(path)
    rows = frame[frame["split"] == split].reset_index(drop=True)
    lag_columns = sorted((c for c in rows if c.startswith("lag_")),
                         key=lambda c: int(c.split("_")[1]), reverse=True)
    x = rows[lag_columns].to_numpy(dtype="float32")[:, :, None]
    y = rows["target"].to_numpy(dtype="float32")
    return x, y, rows


@task(name="prepare-dataset", cache_policy=BY_CONTENT, persist_result=True)
def prepare_dataset_task(partition: PartitionRef, as_of: date | None, features: FeatureConfig,
                         split: SplitConfig, lake: str) -> DatasetRef:
    """Build and store a symbol's features (keyed on the partition's content hash)."""
    dataset = prepare_dataset(Path(lake), partition.symbol, as_of, features, split)
    get_run_logger().info("%s: %d train / %d validation / %d test windows up to %s",
                          dataset.symbol, dataset.n_train, dataset.n_validation, dataset.n_test,
                          dataset.as_of)
    return dataset
