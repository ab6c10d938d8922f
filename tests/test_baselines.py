"""Shrink toward naive, moving-average and linear baselines, the walk-forward backtest."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from tasks.core.training_config import (
    BacktestConfig,
    EvaluationConfig,
    FeatureConfig,
    ModelConfig,
    SplitConfig,
    split_sizes,
)
from tasks.data.ingest import read_prices
from tasks.evaluation.backtest import (
    fold_plan,
    newest_fold_is_final,
    run_backtest,
    train_folds,
)
from tasks.evaluation.evaluate import linear_forecast, moving_average_forecast
from tasks.evaluation.evaluate import score_frame as score_frame_of_evaluate
from tasks.features.feature_table import build_feature_frame, sample_count
from tasks.features.windows import split_arrays
from tasks.forecaster.network import fit_arrays, load_model
from tasks.forecaster.shrink import fit_shrink, shrink
from tests.conftest import SAMPLE


@pytest.fixture(scope="module")
def zion() -> pd.DataFrame:
    return read_prices(SAMPLE, symbols=["ZION"])


def test_shrink_alpha_minimises_validation_mse():
    rng = np.random.default_rng(0)
    base = 100 + rng.normal(size=200).cumsum()
    move = rng.normal(size=200)
    actual = base + 0.3 * move + rng.normal(scale=0.5, size=200)
    predicted = base + move
    alpha = fit_shrink(predicted, base, actual)
    grid = np.linspace(0, 1, 1001)
    mse = [np.mean((shrink(predicted, base, a) - actual) ** 2) for a in grid]
    assert alpha == pytest.approx(grid[int(np.argmin(mse))], abs=1e-3)
    assert 0.1 < alpha < 0.5
    assert fit_shrink(base - move, base, base + move) == 0.0  # anti-correlated: naive
    assert fit_shrink(base + move, base, base + 3 * move) == 1.0  # clipped at the raw model


def test_moving_average_uses_only_earlier_closes():
    rows = pd.DataFrame({"base_close": [1.0, 2.0, 3.0, 4.0, 5.0],
                         "close": [2.0, 3.0, 4.0, 5.0, 99.0]})
    assert moving_average_forecast(rows, 3).tolist() == [1.0, 1.5, 2.0, 3.0, 4.0]


def test_linear_regression_is_fit_on_training_rows_only(zion):
    features = FeatureConfig(window=5)
    frame, scaler = build_feature_frame(zion, features, SplitConfig())
    before = linear_forecast(frame, scaler, features)
    changed = frame.copy()
    test = changed["split"] == "test"
    changed.loc[test, "target"] = 50.0  # nonsense targets in the test rows
    after = linear_forecast(changed, scaler, features)
    np.testing.assert_allclose(before, after)
    assert np.isfinite(before).all() and len(before) == len(frame)


def test_fold_plan_is_an_expanding_walk_forward():
    plan = fold_plan(1000, SplitConfig(validation=0.15, test=0.15), 3)
    assert [p[0] for p in plan] == [300, 150, 0]
    assert all(p[3] == 150 for p in plan)
    trains = [p[1] for p in plan]
    assert trains == sorted(trains) and trains[0] < trains[-1]
    assert all(dropped + sum(sizes) == 1000 for dropped, *sizes in plan)


@pytest.mark.slow
def test_backtest_folds_report_model_and_baselines(zion, tmp_path):
    features = FeatureConfig(window=5)
    result = run_backtest(zion, "ZION", features, SplitConfig(), ModelConfig(units=(3,), epochs=1,
                          batch_size=512), BacktestConfig(folds=2), EvaluationConfig(),
                          tmp_path)
    folds = json.loads((tmp_path / "backtest.json").read_text())
    assert folds == result.folds and [f["fold"] for f in folds] == [1, 2]
    assert folds[0]["test_end"] < folds[1]["test_start"]
    assert folds[1]["test_end"] == "2016-12-30"
    assert folds[0]["n_train"] < folds[1]["n_train"]
    n_test = split_sizes(sample_count(zion, features), SplitConfig())[2]
    assert folds[0]["n_test"] == folds[1]["n_test"] == n_test
    for fold in folds:
        assert {"rmse", "naive_rmse", "rmse_vs_naive", "shrink_alpha", "linear_regression_rmse",
                "moving_average_5_rmse", "directional_accuracy"} <= set(fold)
        assert fold["rmse_vs_naive"] == pytest.approx(fold["rmse"] / fold["naive_rmse"])
        assert 0.0 <= fold["shrink_alpha"] <= 1.0


@pytest.mark.slow
def test_newest_fold_is_the_final_model_weight_for_weight(zion, tmp_path):
    """The reason the backtest reuses the final model for its newest fold: trained for real, that
    fold's network equals the final model's (same rows, split, scaler and seed)."""
    features, split = FeatureConfig(window=5), SplitConfig()
    model = ModelConfig(units=(3,), epochs=2, batch_size=256)
    backtest = BacktestConfig(folds=2)
    folds = train_folds(zion, "ZION", features, split, model, backtest, tmp_path / "folds")
    frame, _ = build_feature_frame(zion, features, split)
    final = fit_arrays(*split_arrays(frame, "train", "validation", packed=True), "ZION", model,
                       tmp_path / "final")
    assert newest_fold_is_final(model, backtest) and len(folds) == 2
    for a, b in zip(load_model(folds[-1]).get_weights(), load_model(final.model_path).get_weights(),
                    strict=True):
        np.testing.assert_array_equal(a, b)
    reused = train_folds(zion, "ZION", features, split, model, backtest, tmp_path / "skip",
                         final_model=final.model_path)
    assert reused == [str(tmp_path / "skip" / "fold-1" / "model.keras"), final.model_path]
    # fewer epochs per fold: the newest fold is a training of its own
    assert not newest_fold_is_final(model, BacktestConfig(folds=2, epochs=1))
    assert not newest_fold_is_final(model, BacktestConfig(folds=0))


@pytest.mark.slow
def test_newest_fold_takes_the_final_models_evaluation(tmp_path, monkeypatch):
    """Scoring the newest fold again would repeat the final model's evaluation (same network,
    rows, scaler and test window): the backtest takes the evaluation's metrics, and its folds
    are exactly those of scoring every fold."""
    import tasks.evaluation.backtest as backtest_module
    from tasks.data.lake import upsert_prices
    from tasks.evaluation.backtest import score_folds, stored_prices
    from tasks.evaluation.evaluate import evaluate_model
    from tasks.features.datasets import prepare_dataset
    from tasks.forecaster.network import train_model

    upsert_prices(read_prices(SAMPLE, symbols=["ZION"]), tmp_path / "lake")
    features, split, evaluation = FeatureConfig(window=5), SplitConfig(), EvaluationConfig()
    model, backtest = ModelConfig(units=(3,), epochs=2, batch_size=256), BacktestConfig(folds=2)
    dataset = prepare_dataset(tmp_path / "lake", "ZION", None, features, split)
    final = train_model(dataset.path, "ZION", model, tmp_path / "final")
    evaluated = evaluate_model(final.model_path, dataset.path, "ZION", dataset.scaler, features,
                               dataset.n_train, tmp_path / "eval", evaluation)
    prices = stored_prices(tmp_path / "lake", dataset)
    fold_models = train_folds(prices, "ZION", features, split, model, backtest,
                              tmp_path / "folds", final_model=final.model_path)
    scored = []

    def counted(*args, **kwargs):
        scored.append(1)
        return score_frame_of_evaluate(*args, **kwargs)

    monkeypatch.setattr(backtest_module, "score_frame", counted)
    every = score_folds(prices, "ZION", features, split, backtest, fold_models, evaluation,
                        tmp_path / "every")
    assert len(scored) == 2
    reused = score_folds(prices, "ZION", features, split, backtest, fold_models, evaluation,
                         tmp_path / "reused", final=(final.model_path, evaluated.metrics))
    assert len(scored) == 3  # one fold scored, the newest taken from the evaluation
    assert reused.folds == every.folds
