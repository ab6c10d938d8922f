"""The global model's parts: pooled windows, the cross-symbol point-in-time cut, batches,
the content-addressed shared network and its damage checks, and the mode setting."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tasks.core.config import RunConfig
from tasks.core.hashing import file_sha256
from tasks.core.training_config import FeatureConfig, GlobalModelConfig, SplitConfig
from tasks.data.ingest import read_prices
from tasks.evaluation.backtest import fold_plan
from tasks.features.batches import Batches, WindowPool
from tasks.features.feature_table import build_feature_frame, frame_with_split, sample_count
from tasks.features.windows import window_array
from tasks.market.global_model import fold_rows, pooled, symbol_rows
from tasks.registry.integrity import VERSION_FILES, damaged_files, load_version_model
from tasks.registry.networks import model_file, shared_model_path, store_shared_model
from tests.conftest import SAMPLE

FEATURES = FeatureConfig(window=6, ohlcv=True, rolling=(5,))


@pytest.fixture(scope="module")
def prices() -> dict[str, pd.DataFrame]:
    return {s: read_prices(SAMPLE, symbols=[s]).reset_index(drop=True) for s in ("AAL", "ZION")}


def _sizes(frame: pd.DataFrame) -> tuple[int, int, int]:
    counts = frame["split"].value_counts()
    return int(counts["train"]), int(counts["validation"]), int(counts["test"])


def test_pooled_windows_are_the_feature_tables_windows(prices):
    frame, _ = build_feature_frame(prices["AAL"], FEATURES, SplitConfig())
    rows = symbol_rows(prices["AAL"], "AAL", FEATURES, _sizes(frame))
    pool = WindowPool.of([(rows.values, rows.starts, rows.targets)], FEATURES.window)
    assert len(pool) == len(frame)
    np.testing.assert_allclose(pool.windows(np.arange(len(pool))), window_array(frame),
                               rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(pool.targets, frame["target"].to_numpy(), rtol=1e-6)
    assert (rows.split == frame["split"].to_numpy()).all()


def test_no_symbol_trains_on_days_of_another_symbols_test_window(prices):
    """ZION ends a year early, so its test window starts first: AAL's later rows are cut."""
    short = prices["ZION"][prices["ZION"]["date"] < "2016-01-01"].reset_index(drop=True)
    parts = []
    for symbol, frame in (("AAL", prices["AAL"]), ("ZION", short)):
        table, _ = build_feature_frame(frame, FEATURES, SplitConfig())
        parts.append(symbol_rows(frame, symbol, FEATURES, _sizes(table)))
    zion_test_start = parts[1].dates[parts[1].split == "test"].min()
    assert zion_test_start < parts[0].dates[parts[0].split == "test"].min()
    for split in ("train", "validation"):
        pool = pooled(parts, split, FEATURES.window)
        kept = sum(int(((r.split == split) & (r.dates < zion_test_start)).sum()) for r in parts)
        assert len(pool) == kept
    # AAL's own validation rows after the cut are left out of the pool, not moved into it
    aal_val = parts[0].dates[parts[0].split == "validation"]
    assert (aal_val >= zion_test_start).any()


def test_fold_rows_are_the_backtest_folds_rows(prices):
    split = SplitConfig()
    n = sample_count(prices["AAL"], FEATURES)
    for fold, (dropped, *sizes) in enumerate(fold_plan(n, split, 3)):
        history = prices["AAL"].iloc[:len(prices["AAL"]) - dropped]
        frame, _ = frame_with_split(history, FEATURES, tuple(sizes))
        rows = fold_rows(prices["AAL"], "AAL", FEATURES, split, 3, fold)
        pool = WindowPool.of([(rows.values, rows.starts, rows.targets)], FEATURES.window)
        np.testing.assert_allclose(pool.windows(np.arange(len(pool))), window_array(frame),
                                   rtol=1e-6, atol=1e-6)
        assert rows.dates[-1] == frame["date"].iloc[-1]


@pytest.mark.parametrize("packed", [False, True])
def test_a_prepared_datasets_rows_are_the_rows_built_from_its_prices(tmp_path, packed):
    """The global training reads each symbol's stored table and scaler instead of building
    them again: the same day series, window starts, targets, splits and dates."""
    from tasks.data.lake import upsert_prices
    from tasks.evaluation.backtest import stored_prices
    from tasks.features.datasets import prepare_dataset
    from tasks.market.global_model import dataset_rows

    upsert_prices(read_prices(SAMPLE, symbols=["ZION"]), tmp_path / "lake")
    features = FeatureConfig(window=5, volatility=True)
    dataset = prepare_dataset(tmp_path / "lake", "ZION", None, features, SplitConfig())
    stored = dataset_rows(tmp_path / "lake", dataset, features, packed)
    built = symbol_rows(stored_prices(tmp_path / "lake", dataset), "ZION", features,
                        (dataset.n_train, dataset.n_validation, dataset.n_test), packed)
    for name in ("values", "starts", "targets", "split", "dates"):
        np.testing.assert_array_equal(getattr(stored, name), getattr(built, name), err_msg=name)
    assert stored.targets.shape == ((len(stored.split), 4) if packed else (len(stored.split),))


@pytest.mark.slow  # trains a (tiny) fold network
def test_scoring_a_fold_reuses_the_baseline_fits_its_training_made(tmp_path):
    """The fold network's training fits each symbol's baselines on its fold rows; scoring the
    fold reads those fits instead of fitting GARCH again: the same folds, number for number."""
    from tasks.core.training_config import BacktestConfig, EvaluationConfig, ModelConfig
    from tasks.data.lake import upsert_prices
    from tasks.evaluation.backtest import score_folds, stored_prices
    from tasks.features.datasets import prepare_dataset
    from tasks.market.global_model import fold_fits, train_global_fold

    lake = tmp_path / "lake"
    upsert_prices(read_prices(SAMPLE, symbols=["AAL", "ZION"]), lake)
    features, split = FeatureConfig(window=5, volatility=True), SplitConfig()
    model = ModelConfig(units=(3,), epochs=1, batch_size=256)
    backtest, glob = BacktestConfig(folds=2), GlobalModelConfig(
        batch_size=256, windows_per_epoch=500, validation_windows=200)
    datasets = [prepare_dataset(lake, s, None, features, split) for s in ("AAL", "ZION")]
    oldest = train_global_fold(datasets, lake, features, split, model, backtest, glob, 0,
                               tmp_path / "work")
    fits = fold_fits([oldest])
    assert set(fits[0]) == {"AAL", "ZION"}
    prices = stored_prices(lake, datasets[1])
    assert fits[0]["ZION"] == json.loads(fold_rows(prices, "ZION", features, split, 2, 0).baselines)
    paths = [oldest.model_path, oldest.model_path]
    scored = [score_folds(prices, "ZION", features, split, backtest, paths, EvaluationConfig(),
                          tmp_path / name, fits=reuse)
              for name, reuse in (("refit", ()), ("reuse", [fits[0]["ZION"], None]))]
    assert scored[0].folds == scored[1].folds


def test_batches_draw_a_new_seeded_sample_each_epoch():
    values = np.arange(200, dtype="float32").reshape(100, 2)
    pool = WindowPool(values, np.arange(90), np.arange(90, dtype="float32"), 5)
    batches = Batches(pool, batch_size=16, per_epoch=40, seed=7)
    first, second = batches.order(0), batches.order(1)
    assert len(first) == len(second) == 40 and len(set(first)) == 40
    assert not np.array_equal(first, second)
    assert np.array_equal(first, Batches(pool, 16, 40, seed=7).order(0))
    dataset = batches.dataset()
    x, y = dataset[0]
    assert x.shape == (16, 5, 2) and len(dataset) == 3
    np.testing.assert_array_equal(x[:, 0, 0], values[first[:16], 0])
    np.testing.assert_array_equal(y, first[:16])
    dataset.on_epoch_end()
    np.testing.assert_array_equal(dataset[0][1], second[:16])
    assert np.array_equal(Batches(pool, 16).order(3), np.arange(90))  # validation: all, in order


def test_sample_keeps_pool_order_and_size():
    pool = WindowPool(np.zeros((50, 1), "float32"), np.arange(45),
                      np.arange(45, dtype="float32"), 3)
    sample = pool.sample(10, seed=1)
    assert len(sample) == 10 and (np.diff(sample.starts) > 0).all()
    assert pool.sample(100, seed=1) is pool


def _tiny_keras_file(path):
    from tasks.forecaster.network import build_lstm

    build_lstm(3, 1, units=(2,)).save(path)
    return path


def _version_with_ref(models, symbol, sha):
    version = models / symbol / "1"
    for name in VERSION_FILES:
        (version / name).parent.mkdir(parents=True, exist_ok=True)
        (version / name).write_text("{}" if name.endswith(".json") else "x")
    (version / "model-ref.json").write_text(json.dumps({"sha256": sha}))
    return version


def test_shared_network_is_stored_once_and_checked_by_hash(tmp_path):
    models = tmp_path / "models"
    source = _tiny_keras_file(tmp_path / "model.keras")
    sha = store_shared_model(models, source)
    assert sha == file_sha256(source) and store_shared_model(models, source) == sha
    assert [p.name for p in (models / "_shared").iterdir()] == [f"{sha}.keras"]
    versions = [_version_with_ref(models, symbol, sha) for symbol in ("AAA", "BBB")]
    assert all(damaged_files(v) == [] and model_file(v) == shared_model_path(models, sha)
               for v in versions)
    assert load_version_model(models, "BBB", 1) is not None

    shared = shared_model_path(models, sha)
    shared.write_bytes(shared.read_bytes() + b"rot")
    assert "does not match its sha256" in damaged_files(versions[0])[0]
    shared.unlink()
    assert "is missing" in damaged_files(versions[1])[0]
    (versions[0] / "model-ref.json").write_text(json.dumps({"sha256": "../../etc"}))
    assert "not a sha256" in damaged_files(versions[0])[0]


def test_mode_setting_and_the_earlier_boolean():
    assert RunConfig(global_model=True).global_model.mode == "both"
    assert RunConfig(global_model=False).global_model.mode == "per_symbol"
    auto = GlobalModelConfig(auto_min_symbols=5)
    assert auto.uses(4) == (True, False) and auto.uses(5) == (False, True)
    assert GlobalModelConfig(mode="both").uses(1) == (True, True)
    assert GlobalModelConfig(mode="global").uses(1) == (False, True)


def test_symbols_are_scored_in_about_four_chunks_per_worker():
    from tasks.market.global_model import chunks

    items = list(range(501))
    parts = chunks(items, 2)
    assert [x for part in parts for x in part] == items
    assert len(parts) == 8 and max(map(len, parts)) == 63
    assert chunks([1, 2], 2) == [[1], [2]] and chunks([], 2) == []


def test_a_registered_candidate_is_found_again_not_duplicated(tmp_path):
    from tasks.registry.publish import registered_as

    models = tmp_path / "models"
    version = models / "AAA" / "1"
    version.mkdir(parents=True)
    (version / "manifest.json").write_text(json.dumps({
        "symbol": "AAA", "as_of": "2016-12-30", "data_fingerprint": "f", "features": {},
        "split": {}, "model": {}, "candidate_key": "k1"}))
    (version / "promotion.json").write_text(json.dumps({"promoted": True,
                                                        "reason": "promoted: x"}))
    metrics = {"rmse": 1.0, "naive_rmse": 1.0, "rmse_vs_naive": 1.0}
    (version / "metrics.json").write_text(json.dumps(metrics))
    found = registered_as(models, "AAA", "k1")
    assert (found.version, found.promoted, found.metrics.to_dict()) == (1, True, metrics)
    assert "already registered as version 1" in found.reason
    assert registered_as(models, "AAA", "k2") is None and registered_as(models, "BBB", "k1") is None


@pytest.mark.slow
def test_a_global_only_run_works_in_chunks_and_reruns_cached(tmp_path, prefect_harness):
    from flows.training import flow_for
    from tasks.core.training_config import BacktestConfig, ModelConfig
    from tasks.core.version_files import read_metrics
    from tasks.distribution.gate import MIN_POOLED_GAIN
    from tasks.distribution.volatility import BASELINES
    from tasks.reporting.distribution_report import SOURCES
    from tests.test_flow import task_states

    config = RunConfig(home=tmp_path / "home", input=SAMPLE,
                       features=FeatureConfig(window=5),
                       model=ModelConfig(units=(4,), epochs=2, batch_size=256, patience=2,
                                         head="hybrid"),
                       backtest=BacktestConfig(folds=2, epochs=1),
                       global_model=GlobalModelConfig(mode="global"))
    first = flow_for(config)(config, return_state=True)
    results = first.result()
    assert sorted((r.symbol, r.version) for r in results) == [("AAL", 1), ("ZION", 1)]
    states = task_states(first.state_details.flow_run_id)
    names = set(states)
    assert {"prepare-datasets", "train-global", "train-global-fold", "gate-global",
            "evaluate-global", "score-global", "register"} <= names  # one register task (71a8282)
    assert not names & {"prepare-dataset", "train", "backtest", "evaluate"}
    for result in results:  # the pooled gate's decision, recorded and told in the report
        model = read_metrics(Path(result.path)).distribution.model
        gate = model.pooled_gate
        assert model.gate == "pooled" and gate.symbols == 2 and gate.family in BASELINES
        assert gate.served == model.source and gate.kept == (model.source == "lstm")
        assert (gate.accepted and gate.gain >= MIN_POOLED_GAIN and gate.lower > 0) or \
            (not gate.accepted and gate.kept is False)
        report = (Path(result.path) / "report.md").read_text()
        assert f"gated once, on their pooled validation days, against the run's baseline " \
               f"family {SOURCES[gate.family]}" in report
    second = flow_for(config)(config, return_state=True)
    assert [(r.symbol, r.version) for r in second.result()] == \
        [(r.symbol, r.version) for r in results]
    rerun = task_states(second.state_details.flow_run_id)
    assert {state for name, state in rerun.items()
            if name in names - {"ingest", "validate", "store-prices"}} == {"Cached"}
    assert sorted(p.name for p in (config.home / "models" / "AAL").iterdir()
                  if p.name.isdigit()) == ["1"]
