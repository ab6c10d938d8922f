"""Evaluate: the model on the test window, beside the naive "tomorrow = today" baseline."""

from __future__ import annotations

import json
import logging
import threading
import weakref
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from prefect import get_run_logger, task

from tasks.core.caching import BY_CONTENT
from tasks.core.config import EvaluationConfig, FeatureConfig, drop_moved
from tasks.core.paths import confined
from tasks.core.version_files import (
    Metrics,
    PooledGate,
    SavedDistribution,
    read_distribution,
    write_distribution,
    write_metrics,
)
from tasks.distribution.distributions import QUANTILE_LEVELS, ReturnDist
from tasks.distribution.gate import PooledChoice, distribution_section
from tasks.distribution.scoring import diebold_mariano_loss
from tasks.features.windows import DatasetRef, Scaler, window_array
from tasks.model.lstm import TrainedModel

BASELINE_KEYS = ("rmse", "mae", "mape", "directional_accuracy", "direction_calls", "rmse_vs_naive")


@dataclass(frozen=True)
class Evaluation:
    """The version's metrics record and the test-window predictions file."""

    symbol: str
    metrics: Metrics
    predictions_path: str
    distribution_path: str | None = None


def rebuild_close(pred_scaled: np.ndarray, base_close: np.ndarray, scaler: Scaler,
                  target: str, returns: str = "log") -> np.ndarray:
    """Turn scaled predictions back into prices: close_t * exp(r), close_t * (1 + r), or close."""
    raw = scaler.inverse(pred_scaled)
    if target != "return":
        return raw
    return base_close * (np.exp(raw) if returns == "log" else 1.0 + raw)


def fit_shrink(predicted: np.ndarray, base_close: np.ndarray, actual: np.ndarray) -> float:
    """alpha in [0, 1] minimising the MSE of ``base + alpha * (predicted - base)``.

    Fit on the VALIDATION split only; alpha = 0 is the naive forecast, 1 the raw model.
    """
    move_hat = predicted - base_close
    denom = float(move_hat @ move_hat)
    if denom <= 0:
        return 0.0
    return float(np.clip(move_hat @ (actual - base_close) / denom, 0.0, 1.0))


def diebold_mariano(predicted: np.ndarray, base_close: np.ndarray, actual: np.ndarray,
                    horizon: int = 1) -> float:
    """DM statistic of the squared-error gain over naive (> 0: the forecast beats naive),
    HAC variance over ``horizon - 1`` lags (``scoring.diebold_mariano_loss``)."""
    return diebold_mariano_loss((base_close - actual) ** 2, (predicted - actual) ** 2, horizon)


def gated_shrink(predicted: np.ndarray, base_close: np.ndarray, actual: np.ndarray,
                 gate_z: float) -> tuple[float, float]:
    """(alpha, validation DM statistic): alpha from ``fit_shrink``, set to 0 (naive) unless the
    shrunk forecast beats naive on these (validation) rows with DM >= ``gate_z``."""
    alpha = fit_shrink(predicted, base_close, actual)
    dm = diebold_mariano(shrink(predicted, base_close, alpha), base_close, actual)
    return (alpha if alpha > 0 and dm >= gate_z else 0.0), dm


def shrink(predicted: np.ndarray, base_close: np.ndarray, alpha: float) -> np.ndarray:
    """Move a forecast toward the naive one: ``base + alpha * (predicted - base)``."""
    return base_close + alpha * (predicted - base_close)


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


def model_outputs(model, x: np.ndarray) -> np.ndarray:
    """Raw outputs ``(n, 1)`` (point head) or ``(n, 3)`` (Student-t head; hybrid head: its
    correction, see ``network_raw``) for windows ``x``."""
    x = np.asarray(x, dtype="float32")
    return np.asarray(_forward(model)(x)).reshape(len(x), -1)


def network_raw(model, x: np.ndarray, offsets: np.ndarray | None = None) -> np.ndarray:
    """``model_outputs`` as a Student-t head's raw outputs: a hybrid's correction is added to
    GARCH-t's ``offsets`` per row (``features.windows.OFFSETS``, scaled units) first."""
    from tasks.model.lstm import hybrid_raw, is_hybrid

    raw = model_outputs(model, x)
    if not is_hybrid(model):
        return raw
    if offsets is None:
        raise ValueError("a hybrid network needs GARCH-t's offsets for its rows")
    return hybrid_raw(raw, offsets)


def frame_offsets(rows: pd.DataFrame) -> np.ndarray | None:
    """GARCH-t's offsets of a feature table's rows, or None when it has none."""
    from tasks.features.windows import OFFSETS

    return rows[list(OFFSETS)].to_numpy("float64") if OFFSETS[0] in rows else None


def garch_offsets_of(variance: np.ndarray, nu: float, scaler: Scaler) -> np.ndarray:
    """GARCH-t's offsets (scaled units) for rows of GARCH variance ``variance``."""
    from tasks.distribution.hybrid_inputs import garch_t_offsets

    return garch_t_offsets(variance, nu, scaler.mean, scaler.scale)


def saved_offsets(saved: SavedDistribution | None, prices: pd.DataFrame, dates: pd.Series,
                  scaler: Scaler) -> np.ndarray | None:
    """GARCH-t's offsets on the given target dates from a version's saved GARCH fit (exact: the
    variance the gate's baseline rolls); dates up to the business day after the last price."""
    from tasks.distribution.gate import price_returns, saved_baseline_variance

    if saved is None or "garch" not in saved.baselines:
        return None
    var = saved_baseline_variance(saved, price_returns(prices), "garch")
    wanted = pd.to_datetime(pd.Series(dates))
    return garch_offsets_of(var.loc[wanted].to_numpy(), saved.params("garch")["nu"], scaler)


_USES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_USES_LOCK = threading.Lock()


def _forward(model):
    """The model's inference call: eager on its first use; from the second use on, one
    tf.function traced once for any number of windows (a global model scores every symbol).

    Eager costs ~65 ms per 1,700 windows, the traced call ~20 ms after a one-off ~100 ms
    trace; ``model.predict`` would retrace per new length ("triggered tf.function retracing").
    """
    with _USES_LOCK:
        uses = _USES.get(model, 0)
        if isinstance(uses, int) and uses >= 1:
            import tensorflow as tf

            shape, ref = (None, *model.input_shape[1:]), weakref.ref(model)  # no cycle
            uses = tf.function(lambda v: ref()(v, training=False), reduce_retracing=True,
                               input_signature=[tf.TensorSpec(shape, tf.float32)])
        _USES[model] = uses if not isinstance(uses, int) else uses + 1
    return uses if callable(uses) else (lambda v: model(v, training=False))


def predict_close(model, x: np.ndarray, base_close: np.ndarray, scaler: Scaler,
                  target: str, returns: str = "log", raw: np.ndarray | None = None,
                  offsets: np.ndarray | None = None) -> np.ndarray:
    """Predicted closes (the distribution's centre) for windows ``x`` of a feature table
    (a hybrid network needs GARCH-t's ``offsets``: ``network_raw``)."""
    raw = network_raw(model, x, offsets) if raw is None else raw
    return rebuild_close(raw[:, 0], base_close, scaler, target, returns)


def return_dist(raw: np.ndarray, closes: np.ndarray, base_close: np.ndarray, scaler: Scaler,
                features: FeatureConfig) -> ReturnDist | None:
    """The Student-t head's distribution of the log return, centred on the (shrunk) point
    forecast ``closes``; None for a point head or a target that is not the log return."""
    from tasks.model.lstm import student_t_params

    if raw.shape[1] != 3 or features.target != "return" or features.returns != "log":
        return None
    _, scale, dof = student_t_params(raw)
    return ReturnDist.of(np.log(closes / base_close), scale * scaler.scale, dof)


def baseline_metrics(rows: pd.DataFrame, predicted: np.ndarray) -> dict[str, float]:
    """rmse, mae, mape, directional accuracy and rmse_vs_naive of one forecast."""
    full = forecast_metrics(rows, predicted, 0)
    return {key: full[key] for key in BASELINE_KEYS}


def quantile_columns(dist: ReturnDist, base: np.ndarray, actual: np.ndarray) -> dict:
    """Per test day: the close at each quantile level and the PIT of the actual close."""
    cols = {f"q{q:g}": base * np.exp(dist.quantile(q)) for q in QUANTILE_LEVELS}
    cols["pit"] = dist.cdf(np.log(actual / base))
    return cols


@dataclass(frozen=True)
class NetworkForecast:
    """A network's forecasts of every row of a feature table, gated toward naive on
    validation: raw head outputs, unshrunk closes, the shrink factor and its DM, the shrunk
    point forecast, and the network's own distribution (None: it gives no spread)."""

    raw: np.ndarray
    closes: np.ndarray
    alpha: float
    dm: float
    point: np.ndarray
    dist: ReturnDist | None


def network_forecast(model, frame: pd.DataFrame, scaler: Scaler, features: FeatureConfig,
                     evaluation: EvaluationConfig,
                     windows: np.ndarray | None = None) -> NetworkForecast:
    """The network on every row of ``frame``; the shrink factor is fit on validation rows
    (``windows``: the frame's ``window_array`` when already built)."""
    windows = window_array(frame) if windows is None else windows
    raw = network_raw(model, windows, frame_offsets(frame))
    base, actual = frame["base_close"].to_numpy(), frame["close"].to_numpy()
    closes = predict_close(model, None, base, scaler, features.target, features.returns, raw)
    val = (frame["split"] == "validation").to_numpy()
    alpha, dm = (gated_shrink(closes[val], base[val], actual[val], evaluation.gate_z)
                 if evaluation.shrink else (1.0, diebold_mariano(closes[val], base[val],
                                                                  actual[val])))
    point = shrink(closes, base, alpha)
    return NetworkForecast(raw, closes, alpha, dm, point,
                           return_dist(raw, point, base, scaler, features))


def validation_crps(model, frame: pd.DataFrame, scaler: Scaler, features: FeatureConfig,
                    evaluation: EvaluationConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(dates, best baseline's CRPS, the network's CRPS) of each validation row, the best
    baseline chosen on these rows as ``distribution_section`` chooses it; what the pooled
    gate of a network fit on many symbols reads."""
    from tasks.distribution.gate import validation_scores

    net = network_forecast(model, frame, scaler, features, evaluation)
    if net.dist is None:
        raise ValueError("the network gives no distribution to gate")
    val = (frame["split"] == "validation").to_numpy()
    best, network = validation_scores(frame, net.dist, scaler.baseline_params())
    return frame["date"].to_numpy()[val], best, network


def score_frame(model, frame: pd.DataFrame, scaler: Scaler, features: FeatureConfig,
                n_train: int, evaluation: EvaluationConfig,
                decided: bool | None = None, ahead: bool = True
                ) -> tuple[dict, pd.DataFrame, SavedDistribution]:
    """Test metrics of a model and of the baselines on one split feature table, and what a
    version saves to simulate its distribution.

    The shrink factor, both gates and the baselines' parameters are fit before the test rows;
    test rows are only scored. ``decided``: the pooled gate's verdict on the network's
    distribution for this symbol (a global model), instead of this symbol's own DM test.
    ``ahead``: also simulate the baselines' 5-day coverage (``distribution_section``).
    """
    windows = window_array(frame)  # the network's and the linear baseline's inputs
    net = network_forecast(model, frame, scaler, features, evaluation, windows)
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
    table = pd.DataFrame({"date": rows["date"], "actual": rows["close"], "naive": base[test],
                          "predicted": predicted, "moving_average": ma, "linear": linear,
                          **quantile_columns(chosen, base[test], actual[test]),
                          **crps_columns(frame, saved, chosen, net.dist)})
    return metrics, table, saved


def crps_columns(frame: pd.DataFrame, saved: SavedDistribution, chosen: ReturnDist,
                 network: ReturnDist | None) -> dict[str, np.ndarray]:
    """Per test row: the CRPS of the version's distribution, of GARCH-t (rolled from the saved
    fit) and of the network's own (NaN without one), for pooled tests across symbols."""
    from tasks.distribution.gate import frame_returns
    from tasks.distribution.scoring import crps_price
    from tasks.distribution.volatility import dist_from_variance, roll_variance

    split = frame["split"].to_numpy()
    n_train = int(np.sum(split == "train"))
    test = split == "test"
    base, actual = frame["base_close"].to_numpy()[test], frame["close"].to_numpy()[test]
    garch = saved.params("garch")
    var = roll_variance("garch", garch, frame_returns(frame)[n_train:])[:-1][test[n_train:]]
    own = (crps_price(network.rows(test), base, actual) if network is not None
           else np.full(len(base), np.nan))
    return {"crps": crps_price(chosen, base, actual),
            "crps_garch": crps_price(dist_from_variance("garch", garch, var), base, actual),
            "crps_network": own}


def evaluate_model(model_path: str, dataset_path: str, symbol: str, scaler: Scaler,
                   features: FeatureConfig, n_train: int, out_dir: Path,
                   evaluation: EvaluationConfig, pooled: PooledChoice | None = None) -> Evaluation:
    """Score a trained model once on the test window and save predictions for the plots
    (``pooled``: the gate of a network fit on many symbols decides its distribution)."""
    from tasks.model.lstm import load_model

    frame = pd.read_parquet(dataset_path)
    decided = symbol in pooled.kept if pooled is not None else None
    metrics, table, saved = score_frame(load_model(model_path), frame, scaler, features, n_train,
                                        evaluation, decided)
    record = Metrics.model_validate(metrics)
    if pooled is not None:
        record = record.with_pooled_gate(PooledGate(
            accepted=pooled.accepted, dm=pooled.dm, symbols=len(pooled.ratios),
            validation_crps_ratio=pooled.ratios.get(symbol), kept=decided,
            tolerance=evaluation.pooled_tolerance))
    out_dir.mkdir(parents=True, exist_ok=True)
    predictions_path = out_dir / "predictions.parquet"
    table.to_parquet(predictions_path, index=False)
    write_metrics(out_dir, record)
    distribution_path = write_distribution(out_dir, saved)
    return Evaluation(symbol, record, str(predictions_path), str(distribution_path))


def load_version(version_dir: Path) -> tuple[FeatureConfig, Scaler, float]:
    """A registered version's feature config, scaler and shrink factor (1.0 when absent)."""
    config = json.loads((version_dir / "config.json").read_text())
    # a version saved before the volatility channels existed was built without them
    saved = {"volatility": False, **drop_moved("features", config["features"])}
    features = FeatureConfig.model_validate(saved)
    scaler = Scaler.from_json((version_dir / "scaler.json").read_text())
    return features, scaler, float(config.get("shrink_alpha", 1.0))


def load_distribution(version_dir: Path) -> SavedDistribution | None:
    """A version's saved distribution (source and baseline parameters); None for a version
    registered before distributions existed."""
    return read_distribution(version_dir)


def evaluate_candidate(trained: TrainedModel, dataset: DatasetRef, features: FeatureConfig,
                       evaluation_config: EvaluationConfig,
                       log: logging.Logger | logging.LoggerAdapter,
                       pooled: PooledChoice | None = None) -> Evaluation:
    """Score a candidate on its symbol's test window; files beside the trained model."""
    verdict = "" if pooled is None else f"-pooled-{dataset.symbol in pooled.kept:d}"
    out_dir = confined(Path(trained.model_path).parent,
                       f"eval-{dataset.symbol}-{evaluation_config.fingerprint()}{verdict}")
    evaluation = evaluate_model(trained.model_path, dataset.path, dataset.symbol, dataset.scaler,
                                features, dataset.n_train, out_dir, evaluation_config, pooled)
    m = evaluation.metrics
    log.info("%s: test RMSE %.4f vs naive %.4f (ratio %.3f, alpha %.3f)", dataset.symbol,
             m.rmse, m.naive_rmse, m.rmse_vs_naive, m.shrink_alpha)
    return evaluation


@task(name="evaluate", cache_policy=BY_CONTENT, persist_result=True)
def evaluate_task(trained: TrainedModel, dataset: DatasetRef, features: FeatureConfig,
                  evaluation: EvaluationConfig) -> Evaluation:
    """Score the candidate on its test window, next to the naive and other baselines."""
    return evaluate_candidate(trained, dataset, features, evaluation, get_run_logger())
