"""A symbol's dataset: its feature table built from the lake and stored as Parquet; the tasks."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pandas as pd
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from tasks.core.atomic import atomic_write_parquet
from tasks.core.caching import BY_CONTENT
from tasks.core.errors import InputError, ShortHistory
from tasks.core.hashing import frame_sha256, short_key
from tasks.core.logs import named_few
from tasks.core.paths import confined
from tasks.core.training_config import FeatureConfig, SplitConfig
from tasks.data.lake import PartitionRef, lake_symbols, read_partition
from tasks.features.feature_table import build_feature_frame
from tasks.features.market_state import MarketRef, store_market_state, with_stored_state
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
    market: MarketRef | None = None  # the run's market state (``features.market``)


def lake_prices(lake: Path, symbol: str, as_of: date | None) -> pd.DataFrame:
    """A symbol's lake rows up to ``as_of``, named for messages."""
    prices = read_partition(lake, symbol, as_of)
    prices.attrs["source"] = f"{symbol} (lake/prices/symbol={symbol})"
    return prices


def prepare_dataset(lake: Path, symbol: str, as_of: date | None, features: FeatureConfig,
                    split: SplitConfig, market: MarketRef | None = None) -> DatasetRef:
    """Read a symbol's history up to ``as_of``, build its feature table, and store it as Parquet."""
    prices = lake_prices(lake, symbol, as_of)
    if prices.empty:
        raise InputError(f"lake/prices/symbol={symbol}", "rule 'symbol has rows': no prices"
                         + (f" on or before {as_of}" if as_of else ""))
    fingerprint = frame_sha256(prices)  # the symbol's own rows (``stored_prices`` checks them)
    prices = with_stored_state(prices, market)
    frame, scaler = build_feature_frame(prices, features, split)
    config_hash = FeatureConfigKey(features, split).hash()
    name = fingerprint[:16] if market is None else short_key(fingerprint, market.path)
    target = confined(lake, "features", config_hash, f"symbol={symbol}", f"{name}.parquet")
    if not target.exists():
        atomic_write_parquet(frame, target)
    counts = frame["split"].value_counts()
    return DatasetRef(symbol, str(target), fingerprint,
                      prices["date"].iloc[-1].date().isoformat(), scaler,
                      int(counts.get("train", 0)), int(counts.get("validation", 0)),
                      int(counts.get("test", 0)), market)


@dataclass(frozen=True)
class LeftOut:
    """A symbol its history cannot train (ShortHistory): its prices stay in the lake."""

    symbol: str
    detail: str


def prepare_or_leave_out(lake: Path, symbol: str, as_of: date | None, features: FeatureConfig,
                         split: SplitConfig, market: MarketRef | None = None
                         ) -> DatasetRef | LeftOut:
    """``prepare_dataset``, or what says why the symbol has too little history to train."""
    try:
        return prepare_dataset(lake, symbol, as_of, features, split, market)
    except ShortHistory as short:
        return LeftOut(symbol, short.detail)


def without_left_out(prepared: list[DatasetRef | LeftOut], log) -> list[DatasetRef]:
    """The datasets; one log line names the symbols left out (too little history), if any."""
    left = [p for p in prepared if isinstance(p, LeftOut)]
    if left:
        log.info("%d symbol(s) left out of training, too little history (their prices are in "
                 "the lake): %s", len(left), named_few([f"{p.symbol}: {p.detail}" for p in left]))
    return [p for p in prepared if isinstance(p, DatasetRef)]


@dataclass(frozen=True)
class FeatureConfigKey:
    """The part of the config that shapes a feature table (its directory name)."""

    features: FeatureConfig
    split: SplitConfig

    def hash(self) -> str:
        return f"{self.features.fingerprint()}-{self.split.fingerprint()}"


@task(name="prepare-dataset", cache_policy=BY_CONTENT, persist_result=True)
def prepare_dataset_task(partition: PartitionRef, as_of: date | None, features: FeatureConfig,
                         split: SplitConfig, lake: str,
                         market: MarketRef | None = None) -> DatasetRef | LeftOut:
    """Build and store a symbol's features (keyed on the partition's content hash), or say
    it has too little history (``without_left_out`` logs it)."""
    dataset = prepare_or_leave_out(Path(lake), partition.symbol, as_of, features, split, market)
    if isinstance(dataset, DatasetRef):
        get_run_logger().info("%s: %d train / %d validation / %d test windows up to %s",
                              dataset.symbol, dataset.n_train, dataset.n_validation,
                              dataset.n_test, dataset.as_of)
    return dataset


@task(name="prepare-datasets", cache_policy=BY_CONTENT, persist_result=True)
def prepare_datasets_task(partitions: list[PartitionRef], as_of: date | None,
                          features: FeatureConfig, split: SplitConfig, lake: str,
                          market: MarketRef | None = None) -> list[DatasetRef | LeftOut]:
    """Build and store the features of a chunk of symbols (a market-sized run: one task per
    symbol would cost more in orchestration than the ~12 ms of work each)."""
    datasets = [prepare_or_leave_out(Path(lake), p.symbol, as_of, features, split, market)
                for p in partitions]
    get_run_logger().info("features of %d symbols (%s .. %s) up to %s", len(datasets),
                          datasets[0].symbol, datasets[-1].symbol, as_of or "the latest row")
    return datasets


@task(name="market-state", cache_policy=NO_CACHE)
def market_state_task(as_of: date | None, lake: str) -> MarketRef:
    """The market state a run's features read (``features.market``): every symbol of the lake,
    each day from that day's rows (a one-symbol retrain sees the market its home holds, as the
    run that trained the market did). Not cached: it reads the lake as it is (~1 s a market)."""
    universe = lake_symbols(Path(lake))
    ref = store_market_state(Path(lake), universe, as_of)
    get_run_logger().info("market state of %d symbols up to %s: %s", len(universe),
                          as_of or "the latest row", Path(ref.path).name)
    return ref
