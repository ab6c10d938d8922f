"""Evaluate: the model on the test window, beside the naive "tomorrow = today" baseline."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from prefect import get_run_logger, task

from tasks.caching import BY_CONTENT
from tasks.features import DatasetRef, Scaler, load_arrays
from tasks.model import TrainedModel


@dataclass(frozen=True)
class Evaluation:
    """Metrics (as in metrics.json) and the test-window predictions file."""

    symbol: str
    metrics: dict
    predictions_path: str


def rebuild_close(pred_scaled: np.ndarray, base_close: np.ndarray, scaler: Scaler,
                  target: str) -> np.ndarray:
    """Turn scaled predictions back into prices: close_t * exp(return) or the close itself."""
    raw = scaler.inverse(pred_scaled)
    return base_close * np.exp(raw) if target == "return" else raw


def regression_metrics(actual: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """rmse, mae and mape (in %) of predicted against actual prices."""
    error = predicted - actual
    return {
        "rmse": float(np.sqrt(np.mean(error**2))),
        "mae": float(np.mean(np.abs(error))),
        "mape": float(np.mean(np.abs(error / actual)) * 100),
    }


def forecast_metrics(rows: pd.DataFrame, predicted: np.ndarray, n_train: int) -> dict:
    """All metrics.json keys: the model and naive (base close) on exactly the same targets."""
    actual = rows["close"].to_numpy()
    naive = rows["base_close"].to_numpy()
    model = regression_metrics(actual, predicted)
    base = regression_metrics(actual, naive)
    moved = np.sign(actual - naive)
    called = np.sign(predicted - naive)
    return {
        **model,
        "directional_accuracy": float(np.mean(called[moved != 0] == moved[moved != 0])),
        "naive_rmse": base["rmse"],
        "naive_mae": base["mae"],
        "naive_mape": base["mape"],
        "rmse_vs_naive": model["rmse"] / base["rmse"] if base["rmse"] > 0 else float("inf"),
        "n_train": int(n_train),
        "n_test": len(rows),
        "test_start": pd.Timestamp(rows["date"].iloc[0]).date().isoformat(),
        "test_end": pd.Timestamp(rows["date"].iloc[-1]).date().isoformat(),
    }


def predict_close(model, x: np.ndarray, base_close: np.ndarray, scaler: Scaler,
                  target: str) -> np.ndarray:
    """Predicted closes for windows ``x`` of a feature table."""
    scaled = model.predict(x, verbose=0, batch_size=1024).reshape(-1)
    return rebuild_close(scaled, base_close, scaler, target)


def evaluate_model(model_path: str, dataset_path: str, symbol: str, scaler: Scaler, target: str,
                   n_train: int, out_dir: Path) -> Evaluation:
    """Score a trained model once on the test window and save predictions for the plots."""
    from tasks.model import load_model

    x, _, rows = load_arrays(dataset_path, "test")
    predicted = predict_close(load_model(model_path), x, rows["base_close"].to_numpy(),
                              scaler, target)
    metrics = forecast_metrics(rows, predicted, n_train)
    out_dir.mkdir(parents=True, exist_ok=True)
    table = pd.DataFrame({"date": rows["date"], "actual": rows["close"],
                          "naive": rows["base_close"], "predicted": predicted})
    predictions_path = out_dir / "predictions.parquet"
    table.to_parquet(predictions_path, index=False)
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return Evaluation(symbol, metrics, str(predictions_path))


def score_saved_version(version_dir: Path, prices: pd.DataFrame, dates: pd.Series) -> float:
    """RMSE of a registered version on the given target dates (its own config and scaler)."""
    from tasks.config import FeatureConfig
    from tasks.features import feature_rows
    from tasks.model import load_model

    config = json.loads((version_dir / "config.json").read_text())
    features = FeatureConfig.model_validate(config["features"])
    scaler = Scaler.from_json((version_dir / "scaler.json").read_text())
    rows = feature_rows(prices, features, scaler)
    rows = rows[rows["date"].isin(pd.to_datetime(dates))].reset_index(drop=True)
    if len(rows) != len(dates):
        raise ValueError(f"{version_dir} cannot forecast all {len(dates)} test dates")
    lag_columns = [f"lag_{i}" for i in range(features.window, 0, -1)]
    x = rows[lag_columns].to_numpy(dtype="float32")[:, :, None]
    predicted = predict_close(load_model(version_dir / "model.keras"), x,
                              rows["base_close"].to_numpy(), scaler, features.target)
    return regression_metrics(rows["close"].to_numpy(), predicted)["rmse"]


@task(name="evaluate", cache_policy=BY_CONTENT, persist_result=True)
def evaluate_task(trained: TrainedModel, dataset: DatasetRef, target: str) -> Evaluation:
    """Score the candidate on its test window, next to the naive baseline."""
    evaluation = evaluate_model(trained.model_path, dataset.path, dataset.symbol, dataset.scaler,
                                target, dataset.n_train, Path(trained.model_path).parent)
    m = evaluation.metrics
    get_run_logger().info("%s: test RMSE %.4f vs naive %.4f (ratio %.3f)", dataset.symbol,
                          m["rmse"], m["naive_rmse"], m["rmse_vs_naive"])
    return evaluation
