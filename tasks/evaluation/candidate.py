"""A candidate: one symbol's trained network, scored on its test window and walk-forward, ready
to register. Both training paths, per symbol and global, end in these."""

from __future__ import annotations

from dataclasses import dataclass

from prefect import task

from tasks.core.caching import BY_CONTENT
from tasks.evaluation.backtest import BacktestResult
from tasks.evaluation.evaluate import Evaluation
from tasks.features.datasets import DatasetRef
from tasks.forecaster.network import TrainedModel


@dataclass(frozen=True)
class Candidate:
    """What registration needs of a symbol's candidate (a global model's share one network)."""

    dataset: DatasetRef
    trained: TrainedModel
    evaluation: Evaluation
    backtest: BacktestResult | None = None
    plots_dir: str | None = None  # None: drawn on request (``closecast report``)


@task(name="candidate", cache_policy=BY_CONTENT, persist_result=True)
def candidate_task(dataset: DatasetRef, trained: TrainedModel, evaluation: Evaluation,
                   backtest: BacktestResult | None = None,
                   plots_dir: str | None = None) -> Candidate:
    """A symbol's candidate from its stages' results: the stages are separate tasks, and a
    task runner resolves their futures in a task's arguments (Dask does not look inside a
    dataclass), so the candidate is made by a task of its own."""
    return Candidate(dataset, trained, evaluation, backtest, plots_dir)
