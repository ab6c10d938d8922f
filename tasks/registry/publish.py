"""Publish: turn an evaluated candidate into a registered version, report included."""

from __future__ import annotations

import functools
import json
import logging
import platform
import shutil
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd
from prefect import task

from tasks.core.caching import BY_CONTENT
from tasks.core.hashing import file_sha256, short_key
from tasks.core.layout import Layout
from tasks.core.logs import DETAIL
from tasks.core.training_config import EvaluationConfig, FeatureConfig, ModelConfig, SplitConfig
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
from tasks.evaluation.candidate import Candidate
from tasks.evaluation.evaluate import regression_metrics
from tasks.features.datasets import DatasetRef
from tasks.forecaster.forecaster import save_forecaster
from tasks.forecaster.network import TrainedModel
from tasks.registry.integrity import damaged_files, served_forecaster
from tasks.registry.networks import (
    MODEL_FILE,
    MODEL_REF,
    SHARED,
    network_sha256,
    store_shared_model,
)
from tasks.registry.promotion import fallback_for
from tasks.registry.records import Fallback, champion_record, fallback_of
from tasks.registry.registry import (
    RegisteredVersion,
    list_versions,
    publish_version,
    read_champion,
    symbol_lock,
    version_dir,
    write_champion,
)
from tasks.registry.reports import PLOTS, write_report

LIBRARIES = ("prefect", "tensorflow-cpu", "keras", "pandas", "numpy", "pyarrow",
             "great-expectations", "scikit-learn", "matplotlib")
log = logging.getLogger(__name__)


def score_saved_version(version_dir: Path, prices: pd.DataFrame, dates: pd.Series, lake: Path,
                        fallback: Fallback | None = None) -> tuple[float, float | None]:
    """(RMSE, CRPS or None) of a registered version on the given target dates, as it serves
    (a fallback champion: the baselines it serves); ``lake``: where its inputs besides the
    symbol's prices come from (``Forecaster.inputs``)."""
    from tasks.distribution.scoring import crps_price

    forecaster = served_forecaster(version_dir, fallback)
    try:
        days = forecaster.forecast_days(forecaster.inputs(prices, lake), dates)
    except ValueError as error:
        raise ValueError(f"{version_dir}: {error}") from error
    rmse = regression_metrics(days.actual, days.point)["rmse"]
    if days.dist is None:
        return rmse, None
    return rmse, float(np.mean(crps_price(days.dist, days.base, days.actual)))


def library_versions() -> dict[str, str]:
    """Installed versions of the libraries that shape a model."""
    return dict(_library_versions())


@functools.cache
def _library_versions() -> dict[str, str]:
    """``library_versions``, read once per process (importlib.metadata parses every installed
    package's METADATA: ~15 ms, per version of a 390-symbol run)."""
    found = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


@functools.cache
def git_commit() -> str | None:
    """The commit of the closecast checkout, if it is a git work tree: asked once per process
    (a ``git`` child process per version was ~5 ms), the code this process runs."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                             cwd=Path(__file__).parent, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


@dataclass(frozen=True)
class Recipe:
    """The configs that make a candidate, as its version records them."""

    features: FeatureConfig
    split: SplitConfig
    model: ModelConfig
    evaluation: EvaluationConfig

    def dump(self) -> dict[str, dict]:
        """Each config as JSON, by name (the forecaster's config and the manifest hold them)."""
        return {name: getattr(self, name).model_dump(mode="json")
                for name in ("features", "split", "model", "evaluation")}

    def fingerprints(self) -> tuple[str, ...]:
        return (self.evaluation.fingerprint(), self.model.fingerprint(),
                self.features.fingerprint(), self.split.fingerprint())


def build_manifest(dataset: DatasetRef, recipe: Recipe, trained: TrainedModel,
                   flow_run_id: str | None) -> dict:
    """Everything needed to know where a version came from."""
    return {
        "symbol": dataset.symbol,
        "as_of": dataset.as_of,
        "data_fingerprint": dataset.data_fingerprint,
        **recipe.dump(),
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
    return score_saved_version(path, prices, test_dates, layout.lake, fallback_of(champion))


def with_backtest(metrics: Metrics, backtest: BacktestResult | None) -> Metrics:
    """The version's metrics: the DESIGN.md keys plus ``backtest`` (per-fold rows and their
    mean ratio)."""
    return metrics if backtest is None else metrics.with_backtest(backtest.folds)


def register_candidate(layout: Layout, candidate: Candidate, recipe: Recipe,
                       flow_run_id: str | None = None) -> RegisteredVersion:
    """Decide promotion, write the version atomically, then move the champion if it won."""
    from tasks.registry.promotion import promotion_decision

    dataset, trained = candidate.dataset, candidate.trained
    symbol = dataset.symbol
    metrics = with_backtest(candidate.evaluation.metrics, candidate.backtest)
    manifest = build_manifest(dataset, recipe, trained, flow_run_id)
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
                                          *recipe.fingerprints())
    test_dates = pd.read_parquet(candidate.evaluation.predictions_path, columns=["date"])["date"]
    with symbol_lock(layout.models, symbol):
        existing = registered_as(layout.models, symbol, manifest["candidate_key"])
        if existing is not None:
            return existing
        champion = read_champion(layout.models, symbol)
        champ_rmse, champ_crps = champion_scores_on(layout, symbol, champion, dataset.as_of,
                                                    test_dates)
        promoted, reason = promotion_decision(metrics, champion, champ_rmse, champ_crps)

        def fill(tmp: Path, version: int) -> None:
            record = write_version(tmp, candidate, shared, manifest, metrics, (promoted, reason))
            write_report(tmp, symbol, version, metrics, reason, record)

        version = publish_version(layout.models, symbol, fill)
        # a symbol without a champion gets one either way: a version that lost to a baseline
        # on its test window serves that baseline's forecast (README: "A forecast for every
        # symbol")
        fallback = None if promoted or champion is not None else fallback_for(metrics)
        if promoted or fallback is not None:
            write_champion(layout.models, symbol, champion_record(
                version, metrics, reason if fallback is None
                else f"fallback champion, serving {fallback.text()}: {reason}", fallback))
    path = version_dir(layout.models, symbol, version)
    log.info("%s version %d registered at %s (%s)", symbol, version, path, reason, extra=DETAIL)
    return RegisteredVersion(symbol, version, str(path), promoted, reason, metrics,
                             fallback.text() if fallback is not None else None)


def write_version(tmp: Path, candidate: Candidate, shared: str | None, manifest: dict,
                  metrics: Metrics, decision: tuple[bool, str]) -> Manifest:
    """A new version's files into its temporary directory: the network (or a reference to the
    shared one), the forecaster's settings, predictions, plots and the version records; the
    manifest record written."""
    trained, evaluation = candidate.trained, candidate.evaluation
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
    if candidate.plots_dir is not None:  # None: drawn on request (``reports.complete_report``)
        shutil.copytree(candidate.plots_dir, tmp / PLOTS)
    market = candidate.dataset.market
    save_forecaster(tmp, candidate.dataset.scaler, {key: manifest[key] for key in (
        "features", "split", "model", "evaluation")}, metrics.shrink_alpha,
        market.universe if market else ())
    record = Manifest.model_validate(manifest)
    write_manifest(tmp, record)
    write_metrics(tmp, metrics)
    # What registration decided, for `closecast models list` (champion.json moves on).
    promoted, reason = decision
    write_promotion(tmp, Promotion(promoted=promoted, reason=reason))
    return record


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


def register_candidates(layout: Layout, candidates: list[Candidate], recipe: Recipe,
                        flow_run_id: str | None = None) -> list[RegisteredVersion]:
    """Register candidates one symbol after another; a repeated call re-finds what it
    registered before."""
    return [register_candidate(layout, c, recipe, flow_run_id) for c in candidates]


@task(name="register", cache_policy=BY_CONTENT, persist_result=True)
def register_task(home: str, candidates: list[Candidate], recipe: Recipe
                  ) -> list[RegisteredVersion]:
    """Register a chunk of candidates as new versions (an identical rerun is a cache hit)."""
    from prefect.runtime import flow_run

    return register_candidates(Layout(Path(home)), candidates, recipe, flow_run.get_id())
