"""The hybrid volatility network outside a run: train it on ``HybridInputs`` (any symbols'
rows, pooled) and read its distribution, for benchmarks and tests of the head itself.

The network is ``network.build_lstm(head="hybrid")``, trained by ``network.fit_arrays`` as a run
trains it: its output is a correction to GARCH(1,1)-t (``hybrid_inputs.correction_dist``), zero
at the start, so the untrained network *is* GARCH-t, and training on the Student-t negative
log-likelihood keeps the best validation epoch, or GARCH-t itself when no epoch beats it.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tasks.core.training_config import ModelConfig
from tasks.distribution.distributions import ReturnDist
from tasks.distribution.hybrid_inputs import HybridInputs, correction_dist
from tasks.forecaster.network import fit_arrays, load_model


@dataclass(frozen=True)
class HybridFit:
    """A trained correction network and how its training went."""

    model: object
    epochs_run: int
    initial_val_loss: float
    best_val_loss: float
    moved: bool  # False: no epoch beat GARCH-t on validation; the network is left at zero


def fit_hybrid(train: tuple[np.ndarray, np.ndarray], validation: tuple[np.ndarray, np.ndarray],
               *, units: tuple[int, ...] = (16,), dropout: float = 0.1,
               learning_rate: float = 1e-3, batch_size: int = 256, epochs: int = 30,
               patience: int = 5, seed: int = 42, label: str = "hybrid") -> HybridFit:
    """Fit the correction on ``train`` windows (``HybridInputs.windows``), early stopping on
    ``validation``, exactly as a run's training does (``fit_arrays``)."""
    cfg = ModelConfig(units=units, dropout=dropout, learning_rate=learning_rate,
                      batch_size=batch_size, epochs=epochs, patience=patience, seed=seed,
                      head="hybrid")
    with tempfile.TemporaryDirectory() as work:
        trained = fit_arrays(train, validation, label, cfg, Path(work))
        history = json.loads(Path(trained.history_path).read_text())
        model = load_model(trained.model_path)
    initial = history["initial_val_loss"][0]
    return HybridFit(model, trained.epochs_run, initial, trained.best_val_loss,
                     trained.best_val_loss < initial)


def hybrid_dist(model, inputs: HybridInputs, window: int) -> tuple[ReturnDist, int]:
    """(the hybrid's distribution of each windowed row, the first row it covers)."""
    x, _, first = inputs.windows(window)
    correction = np.asarray(model(x, training=False), dtype="float64")
    return correction_dist(correction, inputs.offset[first:]), first
