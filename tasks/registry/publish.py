"""Publish: turn an evaluated candidate into a registered version, report included."""

from __future__ import annotations

import json
import logging
import platform
import shutil
import subprocess
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd
from prefect import task

from tasks.core.caching import BY_CONTENT
from tasks.core.config import EvaluationConfig, FeatureConfig, ModelConfig, SplitConfig
from tasks.core.hashing import file_sha256, short_key
from tasks.core.layout import Layout
from tasks.core.version_files import (
    Manifest,
    Metrics,
    Promotion,
    read_distribution,
    read_manifest,
    read_metrics,
    read_promotion,
    write_distribution,
    write_manifest,
    write_metrics,
    write_promotion,
)
from tasks.data.lake import read_partition
from tasks.evaluation.backtest import BacktestResult
from tasks.evaluation.evaluate import (
    Evaluation,
    load_distribution,
    load_version,
    network_raw,
    predict_close,
    regression_metrics,
    return_dist,
    saved_offsets,
    shrink,
)
from tasks.features.windows import DatasetRef, feature_rows, window_array
from tasks.model.lstm import TrainedModel
from tasks.registry.records import champion_record
from tasks.registry.registry import (
    MODEL_FILE,
    MODEL_REF,
    SHARED,
    RegisteredVersion,
    damaged_files,
    list_versions,
    model_file,
    network_sha256,
    publish_version,
    read_champion,
    store_shared_model,
    symbol_lock,
    version_dir,
    write_champion,
)
from tasks.registry.reports import PLOTS, write_report

LIBRARIES = ("prefect", "tensorflow-cpu", "keras", "pandas", "numpy", "pyarrow",
             "great-expectations", "scikit-learn", "matplotlib")
log = logging.getLogger(__name__)


def score_saved_version(version_dir: Path, prices: pd.DataFrame,
                        dates: pd.Series) -> tuple[float, float | None]:
    """(RMSE, CRPS or None) of a registered version on the given target dates."""
    from tasks.distribution.distributions import ReturnDist
    from tasks.distribution.gate import saved_baseline_dist
    from tasks.distribution.scoring import crps_price
    from tasks.model.lstm import load_model

    features, scaler, alpha = load_version(version_dir)
    rows = feature_rows(prices, features, scaler)
    rows = rows[rows["date"].isin(pd.to_datetime(dates))].reset_index(drop=True)
    if len(rows) != len(dates):
        raise ValueError(f"{version_dir} cannot forecast all {len(dates)} test dates")
    base, actual = rows["base_close"].to_numpy(), rows["close"].to_numpy()
    saved = load_distribution(version_dir)
    raw = network_raw(load_model(model_file(version_dir)), window_array(rows),
                      saved_offsets(saved, prices, rows["date"], scaler))
    predicted = shrink(predict_close(None, None, base, scaler, features.target,
                                     features.returns, raw), base, alpha)
    rmse = regression_metrics(actual, predicted)["rmse"]
    if saved is None:
        return rmse, None
    if saved.source == "lstm":
        dist = return_dist(raw, predicted, base, scaler, features)
    else:  # the carried baseline, centred on the version's point forecast
        spread = saved_baseline_dist(saved, prices, rows["date"])
        dist = ReturnDist(np.log(predicted / base), spread.scale, spread.dof)
    return rmse, (float(np.mean(crps_price(dist, base, actual))) if dist is not None else None)


def library_versions() -> dict[str, str]:
    """Installed versions of the libraries that shape a model."""
    found = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def git_commit() -> str | None:
    """The commit of the closecast checkout, if it is a git work tree."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                             cwd=Path(__file__).parent, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def build_manifest(dataset: DatasetRef, features: FeatureConfig, split: SplitConfig,
                   model: ModelConfig, scoring: EvaluationConfig, trained: TrainedModel,
                   flow_run_id: str | None) -> dict:
    """Everything needed to know where a version came from."""
    return {
        "symbol": dataset.symbol,
        "as_of": dataset.as_of,
        "data_fingerprint": dataset.data_fingerprint,
        "features": features.model_dump(mode="json"),
        "split": split.model_dump(mode="json"),
        "model": model.model_dump(mode="json"),
        "evaluation": scoring.model_dump(mode="json"),
        "trained_on": list(trained.trained_on) or [dataset.symbol],
        "global_model": bool(trained.trained_on),
        "epochs_run": trained.epochs_run,
        "best_val_loss": trained.best_val_loss,
        "libraries": library_versions(),
        "git_commit": git_commit(),
        "flow_run_id": flow_run_id,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def champion_scores_on(layout: Layout, symbol: str, champion: dict | None, as_of: str,
                       test_dates: pd.Series) -> tuple[float | None, float | None]:
    """The champion's (RMSE, CRPS) on the candidate's test window; None where not scorable."""
    if champion is None:
        return None, None
    path = version_dir(layout.models, symbol, champion["version"])
    missing = damaged_files(path)
    if missing:
        log.warning("%s champion version %s is damaged (%s): comparing with naive only",
                    symbol, champion["version"], ", ".join(missing))
        return None, None
    prices = read_partition(layout.lake, symbol, pd.Timestamp(as_of).date())
    return score_saved_version(path, prices, test_dates)


def with_backtest(metrics: Metrics, backtest: BacktestResult | None) -> Metrics:
    """The version's metrics: the DESIGN.md keys plus ``backtest`` (per-fold rows and their
    mean ratio)."""
    return metrics if backtest is None else metrics.with_backtest(backtest.folds)


def register_candidate(layout: Layout, dataset: DatasetRef, features: FeatureConfig,
                       split: SplitConfig, model: ModelConfig, scoring: EvaluationConfig,
                       trained: TrainedModel, evaluation: Evaluation, plots_dir: str | None,
                       flow_run_id: str | None = None,
                       backtest: BacktestResult | None = None) -> RegisteredVersion:
    """Decide promotion, write the version atomically, then move the champion if it won."""
    from tasks.registry.registry import promotion_decision

    symbol, metrics = dataset.symbol, with_backtest(evaluation.metrics, backtest)
    manifest = build_manifest(dataset, features, split, model, scoring, trained, flow_run_id)
    # A global model is stored once under its content hash; each version references it.
    shared = (store_shared_model(layout.models, Path(trained.model_path))
              if trained.trained_on else None)
    manifest["model_sha256"] = shared or file_sha256(Path(trained.model_path))
    # the same network from the same config, rows and as-of, with the same scores: the same
    # candidate, however often retrained (a hybrid that kept GARCH-t is the same network
    # after 1 or 2 epochs, but a version records the config that made it)
    manifest["candidate_key"] = short_key(network_sha256(Path(trained.model_path)),
                                          dataset.data_fingerprint, dataset.as_of,
                                          json.dumps(metrics.to_dict(), sort_keys=True),
                                          scoring.fingerprint(), model.fingerprint(),
                                          features.fingerprint(), split.fingerprint())
    test_dates = pd.read_parquet(evaluation.predictions_path)["date"]
    with symbol_lock(layout.models, symbol):
        existing = registered_as(layout.models, symbol, manifest["candidate_key"])
        if existing is not None:
            return existing
        champion = read_champion(layout.models, symbol)
        champ_rmse, champ_crps = champion_scores_on(layout, symbol, champion, dataset.as_of,
                                                    test_dates)
        promoted, reason = promotion_decision(metrics, champion, champ_rmse, champ_crps)

        def fill(tmp: Path, version: int) -> None:
            if shared:
                (tmp / MODEL_REF).write_text(json.dumps({
                    "sha256": shared, "path": f"../../{SHARED}/{shared}.keras",
                    "trained_on": list(trained.trained_on)}, indent=2))
            else:
                shutil.copy2(trained.model_path, tmp / MODEL_FILE)
            shutil.copy2(trained.history_path, tmp / "history.json")
            shutil.copy2(evaluation.predictions_path, tmp / "predictions.parquet")
            if evaluation.distribution_path:  # written beside the evaluation's metrics
                saved = read_distribution(Path(evaluation.distribution_path).parent)
                if saved is None:
                    raise FileNotFoundError(evaluation.distribution_path)
                write_distribution(tmp, saved)
            if plots_dir is not None:  # None: drawn on request (``reports.complete_report``)
                shutil.copytree(plots_dir, tmp / PLOTS)
            (tmp / "scaler.json").write_text(dataset.scaler.to_json())
            (tmp / "config.json").write_text(json.dumps(
                {**{key: manifest[key] for key in ("features", "split", "model", "evaluation")},
                 "shrink_alpha": metrics.shrink_alpha}, indent=2))
            record = Manifest.model_validate(manifest)
            write_manifest(tmp, record)
            write_metrics(tmp, metrics)
            # What registration decided, for `closecast models list` (champion.json moves on).
            write_promotion(tmp, Promotion(promoted=promoted, reason=reason))
            write_report(tmp, symbol, version, metrics, reason, record)

        version = publish_version(layout.models, symbol, fill)
        if promoted:
            write_champion(layout.models, symbol, champion_record(version, metrics, reason))
    path = version_dir(layout.models, symbol, version)
    log.info("%s version %d registered at %s (%s)", symbol, version, path, reason)
    return RegisteredVersion(symbol, version, str(path), promoted, reason, metrics)


def registered_as(models: Path, symbol: str, key: str) -> RegisteredVersion | None:
    """The version already holding this candidate (same network, rows, as-of and scores), so a
    registration repeated after a partial failure adds no duplicate; None when there is none."""
    for version in reversed(list_versions(models, symbol)):
        path = version_dir(models, symbol, version)
        try:
            if read_manifest(path).candidate_key != key:
                continue
            decision = read_promotion(path)
            metrics = read_metrics(path)
        except (OSError, ValueError):
            continue  # a damaged version is not a match
        if decision is None:
            continue  # registered before decisions were recorded: never this candidate
        log.info("%s: this candidate is already version %d", symbol, version)
        return RegisteredVersion(symbol, version, str(path), decision.promoted,
                                 f"already registered as version {version}: "
                                 f"{decision.reason}", metrics)
    return None


def register_scored(layout: Layout, scored: list, features: FeatureConfig, split: SplitConfig,
                    model: ModelConfig, scoring: EvaluationConfig, trained: TrainedModel,
                    flow_run_id: str | None = None) -> list[RegisteredVersion]:
    """Register a chunk of a global model's scored candidates (``global_model.Scored``), one
    symbol after another; a repeated chunk re-finds what it registered before."""
    return [register_candidate(layout, s.dataset, features, split, model, scoring, trained,
                               s.evaluation, s.plots_dir, flow_run_id, s.backtest)
            for s in scored]


@task(name="register-chunk", cache_policy=BY_CONTENT, persist_result=True)
def register_chunk_task(home: str, scored: list, features: FeatureConfig, split: SplitConfig,
                        model: ModelConfig, scoring: EvaluationConfig,
                        trained: TrainedModel) -> list[RegisteredVersion]:
    """Register a chunk of symbols' global-model candidates."""
    from prefect.runtime import flow_run

    return register_scored(Layout(Path(home)), scored, features, split, model, scoring, trained,
                           flow_run.get_id())


@task(name="register", cache_policy=BY_CONTENT, persist_result=True)
def register_task(home: str, dataset: DatasetRef, features: FeatureConfig, split: SplitConfig,
                  model: ModelConfig, scoring: EvaluationConfig, trained: TrainedModel,
                  evaluation: Evaluation, plots_dir: str | None,
                  backtest: BacktestResult | None = None) -> RegisteredVersion:
    """Register the candidate as a new version (an identical rerun is a cache hit: no version)."""
    from prefect.runtime import flow_run

    return register_candidate(Layout(Path(home)), dataset, features, split, model, scoring,
                              trained, evaluation, plots_dir, flow_run.get_id(), backtest)
