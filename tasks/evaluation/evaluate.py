"""Evaluate: the model on the test window, beside the naive "tomorrow = today" baseline."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from prefect import get_run_logger, task

from tasks.core.caching import BY_CONTENT
from tasks.core.logs import DETAIL
from tasks.core.paths import confined
from tasks.core.training_config import EvaluationConfig, FeatureConfig, training_span
from tasks.core.version_files import (
    Metrics,
    PooledGate,
    SavedDistribution,
    write_distribution,
    write_metrics,
)
from tasks.distribution.distributions import QUANTILE_LEVELS, ReturnDist
from tasks.distribution.gate import PooledChoice, distribution_section
from tasks.features.datasets import DatasetRef
from tasks.features.scaler import Scaler
from tasks.features.windows import window_array
from tasks.forecaster.forecaster import Network, network_forecast
from tasks.forecaster.network import TrainedModel
from tasks.forecaster.shrink import rebuild_close, shrink

BASELINE_KEYS = ("rmse", "mae", "mape", "directional_accuracy", "direction_calls", "rmse_vs_naive")


@dataclass(frozen=True)
class Evaluation:
    """The version's metrics record and the test-window predictions file."""

    symbol: str
    metrics: Metrics
    predictions_path: str
    distribution_path: str | None = None


def moving_average_forecast(rows: pd.DataFrame, k: int) -> np.ndarray:
    """Mean of the last k closes before each target day (``base_close`` is close of day t-1).

    ``rows`` must be consecutive target days; the first k-1 rows average what they have.
    """
    return rows["base_close"].rolling(k, min_periods=1).mean().to_numpy()


def linear_forecast(frame: pd.DataFrame, scaler: Scaler, features: FeatureConfig,
                    windows: np.ndarray | None = None) -> np.ndarray:
    """scikit-learn LinearRegression on the same scaled windows, fit on the train split only
    (``windows``: the frame's ``window_array`` when already built)."""
    from sklearn.linear_model import LinearRegression

    windows = window_array(frame) if windows is None else windows
    flat = windows.reshape(len(frame), -1)
    train = (frame["split"] == "train").to_numpy()
    fitted = LinearRegression().fit(flat[train], frame["target"].to_numpy()[train])
    scaled = fitted.predict(flat)
    return rebuild_close(scaled, frame["base_close"].to_numpy(), scaler, features.target,
                         features.returns)


def regression_metrics(actual: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """rmse, mae and mape (in %) of predicted against actual prices."""
    error = predicted - actual
    return {
        "rmse": float(np.sqrt(np.mean(error**2))),
        "mae": float(np.mean(np.abs(error))),
        "mape": float(np.mean(np.abs(error / actual)) * 100),
    }


def forecast_metrics(rows: pd.DataFrame, predicted: np.ndarray, n_train: int) -> dict:
    """The metrics record's point keys: the model and naive (base close) on exactly the same
    targets."""
    actual = rows["close"].to_numpy()
    naive = rows["base_close"].to_numpy()
    model = regression_metrics(actual, predicted)
    base = regression_metrics(actual, naive)
    moved = np.sign(actual - naive)
    called = np.sign(predicted - naive)
    return {
        **model,
        "directional_accuracy": float(np.mean(called[moved != 0] == moved[moved != 0])),
        # share of days on which the forecast calls any direction (0 for the naive forecast,
        # whose directional accuracy is then meaningless)
        "direction_calls": float(np.mean(called != 0)),
        "naive_rmse": base["rmse"],
        "naive_mae": base["mae"],
        "naive_mape": base["mape"],
        "rmse_vs_naive": model["rmse"] / base["rmse"] if base["rmse"] > 0 else float("inf"),
        "n_train": int(n_train),
        "n_test": len(rows),
        "test_start": pd.Timestamp(rows["date"].iloc[0]).date().isoformat(),
        "test_end": pd.Timestamp(rows["date"].iloc[-1]).date().isoformat(),
    }


def baseline_metrics(rows: pd.DataFrame, predicted: np.ndarray) -> dict[str, float]:
    """rmse, mae, mape, directional accuracy and rmse_vs_naive of one forecast."""
    full = forecast_metrics(rows, predicted, 0)
    return {key: full[key] for key in BASELINE_KEYS}


def quantile_columns(dist: ReturnDist, base: np.ndarray, actual: np.ndarray) -> dict:
    """Per test day: the close at each quantile level and the PIT of the actual close."""
    cols = {f"q{q:g}": base * np.exp(dist.quantile(q)) for q in QUANTILE_LEVELS}
    cols["pit"] = dist.cdf(np.log(actual / base))
    return cols


def validation_crps(network: Network, frame: pd.DataFrame, scaler: Scaler,
                    features: FeatureConfig, evaluation: EvaluationConfig
                    ) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]:
    """(dates, each baseline's CRPS by name, the network's CRPS) of each validation row: what
    the pooled gate of a network fit on many symbols reads."""
    from tasks.distribution.gate import validation_scores

    val = (frame["split"] == "validation").to_numpy()
    net = network_forecast(network, frame, scaler, features, evaluation, rows=val)
    if net.dist is None:
        raise ValueError("the network gives no distribution to gate")
    baselines, own = validation_scores(frame, net.dist, scaler.baseline_params())
    return frame["date"].to_numpy()[val], baselines, own


def score_frame(network: Network, frame: pd.DataFrame, scaler: Scaler, features: FeatureConfig,
                n_train: int, evaluation: EvaluationConfig,
                decided: str | None = None, ahead: bool = True, table: bool = True
                ) -> tuple[dict, pd.DataFrame | None, SavedDistribution]:
    """Test metrics of a model and of the baselines on one split feature table, and what a
    version saves to simulate its distribution.

    The shrink factor, both gates and the baselines' parameters are fit before the test rows;
    test rows are only scored. ``decided``: the range source the pooled gate serves for
    this symbol (a global model), instead of this symbol's own DM test.
    ``ahead``: also simulate the baselines' 5-day coverage (``distribution_section``).
    ``table``: also the per-test-day predictions table (None without: a backtest fold's).
    """
    windows = window_array(frame)  # the network's and the linear baseline's inputs
    # nothing here reads the network's forecast of a training row
    after = np.arange(len(frame)) >= training_span(frame["split"].to_numpy())
    net = network_forecast(network, frame, scaler, features, evaluation, windows, after)
    closes, alpha = net.closes, net.alpha
    test = (frame["split"] == "test").to_numpy()
    base = frame["base_close"].to_numpy()
    actual = frame["close"].to_numpy()
    rows = frame[test].reset_index(drop=True)
    predicted = shrink(closes[test], base[test], alpha)
    ma = moving_average_forecast(frame, evaluation.ma_window)[test]
    linear = linear_forecast(frame, scaler, features, windows)[test]
    metrics = forecast_metrics(rows, predicted, n_train)
    metrics["shrink_alpha"] = alpha
    metrics["validation_dm"] = net.dm
    metrics["unshrunk_rmse_vs_naive"] = baseline_metrics(rows, closes[test])["rmse_vs_naive"]
    metrics["baselines"] = {"naive": baseline_metrics(rows, base[test]),
                            f"moving_average_{evaluation.ma_window}": baseline_metrics(rows, ma),
                            "linear_regression": baseline_metrics(rows, linear)}
    metrics["distribution"], saved, chosen = distribution_section(
        frame, net.dist, evaluation.gate_z, np.log(net.point / base), decided,
        scaler.baseline_params(), ahead)
    if not table:
        return metrics, None, saved
    days = pd.DataFrame({"date": rows["date"], "actual": rows["close"], "naive": base[test],
                         "predicted": predicted, "moving_average": ma, "linear": linear,
                         **quantile_columns(chosen, base[test], actual[test]),
                         **crps_columns(frame, saved, chosen, net.dist)})
    return metrics, days, saved


def crps_columns(frame: pd.DataFrame, saved: SavedDistribution, chosen: ReturnDist,
                 network: ReturnDist | None) -> dict[str, np.ndarray]:
    """Per test row: the CRPS of the version's distribution, of GARCH-t (rolled from the saved
    fit) and of the network's own (NaN without one), for pooled tests across symbols; and the
    95% range's width of GARCH-t and of the network (the fan plot marks the large moves it
    widened ahead of)."""
    from tasks.distribution.gate import frame_returns
    from tasks.distribution.scoring import crps_price, width_95
    from tasks.distribution.volatility import dist_from_variance, roll_variance

    split = frame["split"].to_numpy()
    n_train = training_span(split)
    test = split == "test"
    base, actual = frame["base_close"].to_numpy()[test], frame["close"].to_numpy()[test]
    garch = saved.params("garch")
    var = roll_variance("garch", garch, frame_returns(frame)[n_train:])[:-1][test[n_train:]]
    garch_dist = dist_from_variance("garch", garch, var)
    missing = np.full(len(base), np.nan)
    own = network.rows(test) if network is not None else None
    return {"crps": crps_price(chosen, base, actual),
            "crps_garch": crps_price(garch_dist, base, actual),
            "crps_network": crps_price(own, base, actual) if own is not None else missing,
            "width95_garch": width_95(garch_dist, base),
            "width95_network": width_95(own, base) if own is not None else missing}


def evaluate_model(model_path: str, dataset_path: str, symbol: str, scaler: Scaler,
                   features: FeatureConfig, n_train: int, out_dir: Path,
                   evaluation: EvaluationConfig, pooled: PooledChoice | None = None) -> Evaluation:
    """Score a trained model once on the test window and save predictions for the plots
    (``pooled``: the gate of a network fit on many symbols decides its distribution)."""
    frame = pd.read_parquet(dataset_path)
    decided = pooled.sources.get(symbol, pooled.family) if pooled is not None else None
    metrics, table, saved = score_frame(Network.load(model_path), frame, scaler, features, n_train,
                                        evaluation, decided)
    record = Metrics.model_validate(metrics)
    if pooled is not None:
        record = record.with_pooled_gate(PooledGate(
            accepted=pooled.accepted, dm=pooled.dm, symbols=len(pooled.ratios),
            validation_crps_ratio=pooled.ratios.get(symbol), kept=decided == "lstm",
            tolerance=evaluation.pooled_tolerance, family=pooled.family, gain=pooled.gain,
            lower=pooled.lower, served=decided))
    out_dir.mkdir(parents=True, exist_ok=True)
    predictions_path = out_dir / "predictions.parquet"
    table.to_parquet(predictions_path, index=False)
    write_metrics(out_dir, record)
    distribution_path = write_distribution(out_dir, saved)
    return Evaluation(symbol, record, str(predictions_path), str(distribution_path))


def evaluate_candidate(trained: TrainedModel, dataset: DatasetRef, features: FeatureConfig,
                       evaluation_config: EvaluationConfig,
                       log: logging.Logger | logging.LoggerAdapter,
                       pooled: PooledChoice | None = None) -> Evaluation:
    """Score a candidate on its symbol's test window; files beside the trained model."""
    verdict = "" if pooled is None else f"-pooled-{pooled.sources.get(dataset.symbol)}"
    out_dir = confined(Path(trained.model_path).parent,
                       f"eval-{dataset.symbol}-{evaluation_config.fingerprint()}{verdict}")
    evaluation = evaluate_model(trained.model_path, dataset.path, dataset.symbol, dataset.scaler,
                                features, dataset.n_train, out_dir, evaluation_config, pooled)
    m = evaluation.metrics
    log.info("%s: test RMSE %.4f vs naive %.4f (ratio %.3f, alpha %.3f)", dataset.symbol,
             m.rmse, m.naive_rmse, m.rmse_vs_naive, m.shrink_alpha, extra=DETAIL)
    return evaluation


@task(name="evaluate", cache_policy=BY_CONTENT, persist_result=True)
def evaluate_task(trained: TrainedModel, dataset: DatasetRef, features: FeatureConfig,
                  evaluation: EvaluationConfig) -> Evaluation:
    """Score the candidate on its test window, next to the naive and other baselines."""
    return evaluate_candidate(trained, dataset, features, evaluation, get_run_logger())
