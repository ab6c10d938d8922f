"""A symbol's dataset: its feature table built from the lake and stored as Parquet; the tasks."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

from prefect import get_run_logger, task

from tasks.core.atomic import atomic_write_parquet
from tasks.core.caching import BY_CONTENT
from tasks.core.errors import InputError
from tasks.core.hashing import frame_sha256
from tasks.core.paths import confined
from tasks.core.training_config import FeatureConfig, SplitConfig
from tasks.data.lake import PartitionRef, read_partition
from tasks.features.feature_table import build_feature_frame
from tasks.features.scaler import Scaler


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
