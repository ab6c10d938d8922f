"""A candidate: one symbol's trained network, scored on its test window and walk-forward, ready
to register. Both training paths, per symbol and global, end in these."""

from __future__ import annotations

from dataclasses import dataclass

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
