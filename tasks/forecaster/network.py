"""The network: a stacked Keras LSTM under a head (``heads``), fit on the training split,
stopped and checkpointed on validation, saved and loaded."""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from prefect import get_run_logger, task

from tasks.core.caching import BY_CONTENT
from tasks.core.hashing import short_key
from tasks.core.logs import DETAIL, quiet_libraries
from tasks.core.paths import confined
from tasks.core.training_config import ModelConfig
from tasks.features.batches import Batches
from tasks.features.datasets import DatasetRef
from tasks.features.windows import load_arrays
from tasks.forecaster.heads import head_named


@dataclass(frozen=True)
class TrainedModel:
    """A fitted model on disk with its training history; not yet a registered version."""

    symbol: str
    model_path: str
    history_path: str
    epochs_run: int
    best_val_loss: float
    trained_on: tuple[str, ...] = ()  # a global model's symbols (empty: just ``symbol``)


def enable_determinism(seed: int) -> None:
    """Seed Python, NumPy and TF, and make TF ops deterministic (measured: no slowdown on CPU)."""
    quiet_libraries()
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


# Training steps per call into TensorFlow: one call runs up to 32 batches in a graph loop
# instead of returning to Python after each. The same updates in the same order (the weights
# are bit-identical to one step per call); a one-symbol epoch takes ~40% less time.
STEPS_PER_EXECUTION = 32


def build_lstm(window: int, n_features: int, *, units: tuple[int, ...] = (32, 16),
               dropout: float = 0.1, learning_rate: float = 1e-3, seed: int = 42,
               head: str = "point"):
    """Input ``(batch, window, n_features)`` -> output ``(batch, head.outputs)``: stacked LSTM,
    Dropout, then the layer and loss of the head ``head`` names (``heads.HEADS``).

    Every initializer and dropout layer gets its own seed, so two builds with the same seed are
    identical even when other threads build models at the same time; every layer gets its own
    name, so a saved network does not depend on how many Keras built before it in the process.
    """
    quiet_libraries()
    import keras

    enable_determinism(seed)
    layers: list = [keras.Input(shape=(window, n_features), name="windows")]
    for i, size in enumerate(units):
        layers.append(keras.layers.LSTM(
            size, return_sequences=i < len(units) - 1, name=f"lstm_{i + 1}",
            kernel_initializer=keras.initializers.GlorotUniform(seed=seed + 10 * i),
            recurrent_initializer=keras.initializers.Orthogonal(seed=seed + 10 * i + 1)))
        layers.append(keras.layers.Dropout(dropout, seed=seed + 10 * i + 2,
                                           name=f"dropout_{i + 1}"))
    chosen = head_named(head)
    layers.append(chosen.output_layer(seed))
    model = keras.Sequential(layers, name=chosen.network_name)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate, name="adam"),
                  loss=chosen.loss(), steps_per_execution=STEPS_PER_EXECUTION)
    return model


def _progress_callback(symbol: str, epochs: int, log: logging.Logger | logging.LoggerAdapter):
    quiet_libraries()
    import keras

    class EpochProgress(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            logs = logs or {}
            log.info("%s epoch %d/%d loss=%.4f val_loss=%.4f", symbol, epoch + 1, epochs,
                     logs.get("loss", float("nan")), logs.get("val_loss", float("nan")),
                     extra=DETAIL)  # console: --verbose only; the Prefect UI: always

    return EpochProgress()


def _shuffled_batches(x: np.ndarray, y: np.ndarray, batch_size: int, seed: int):
    """A tf.data pipeline reshuffled each epoch with an explicit op seed (thread-safe)."""
    quiet_libraries()
    import tensorflow as tf

    data = tf.data.Dataset.from_tensor_slices((x, y))
    return data.shuffle(len(x), seed=seed, reshuffle_each_iteration=True).batch(batch_size)


# Rows per validation batch: one batch for a symbol's split. Keras scores validation arrays in
# batches of 32 through a data adapter it sets up again every epoch: ~90 of a ~230 ms epoch on
# one symbol (BENCHMARKS.md (i)); a cached tf.data pipeline of large batches costs ~5 ms and
# gives the same loss (a mean over the same rows).
VALIDATION_BATCH = 2048


def _validation_batches(x: np.ndarray, y: np.ndarray):
    """The validation split as a cached tf.data pipeline, in order, in large batches."""
    quiet_libraries()
    import tensorflow as tf

    return tf.data.Dataset.from_tensor_slices((x, y)).batch(VALIDATION_BATCH).cache()


def fit_arrays(train: tuple[np.ndarray, np.ndarray] | Batches,
               validation: tuple[np.ndarray, np.ndarray] | Batches,
               symbol: str, cfg: ModelConfig, out_dir: Path,
               log: logging.Logger | logging.LoggerAdapter | None = None) -> TrainedModel:
    """Fit on ``train``; EarlyStopping, ReduceLROnPlateau, ModelCheckpoint watch ``validation``.

    Each is ``(x, y)`` arrays, or ``Batches`` that build their windows batch by batch.
    """
    log = log or logging.getLogger(__name__)
    window, channels = (train.input_shape if isinstance(train, Batches)
                        else train[0].shape[1:])
    with fresh_lstm(window, channels, cfg) as model:
        return _fit(model, train, validation, symbol, cfg, out_dir, log)


class _CompiledPool:
    """Compiled networks kept for reuse in this process, by architecture.

    Most of a small LSTM's training time is TensorFlow tracing its train and test steps, once
    per new model (~2.8 of the ~4 CPU seconds of a 6-epoch fit on one symbol). A network
    handed out again is first set back to the exact state of a new build (weights, dropout seed
    states, optimizer slots and learning rate), so it trains weight for weight as a new one
    would (tests/test_model.py), while its traced functions are kept. One network serves one
    training at a time; concurrent trainings get networks of their own.
    """

    def __init__(self, per_key: int = 2) -> None:
        self._free: dict[tuple, list[tuple]] = {}
        self._lock = threading.Lock()
        self._per_key = per_key

    @contextlib.contextmanager
    def lease(self, window: int, n_features: int, cfg: ModelConfig):
        key = (window, n_features, cfg.units, cfg.dropout, cfg.learning_rate, cfg.seed, cfg.head)
        with self._lock:
            free = self._free.setdefault(key, [])
            entry = free.pop() if free else None
        if entry is None:
            model = build_lstm(window, n_features, units=cfg.units, dropout=cfg.dropout,
                               learning_rate=cfg.learning_rate, seed=cfg.seed, head=cfg.head)
            model.optimizer.build(model.trainable_variables)
            entry = (model, [v.numpy() for v in model.variables],
                     [v.numpy() for v in model.optimizer.variables])
        else:
            model, state, slots = entry
            enable_determinism(cfg.seed)  # the global generators, as a new build sets them
            for variable, value in zip(model.variables, state, strict=True):
                variable.assign(value)
            for variable, value in zip(model.optimizer.variables, slots, strict=True):
                variable.assign(value)
        try:
            yield entry[0]
        finally:
            with self._lock:
                if len(self._free[key]) < self._per_key:
                    self._free[key].append(entry)


_POOL = _CompiledPool()


def fresh_lstm(window: int, n_features: int, cfg: ModelConfig):
    """A context manager lending a compiled network in the state of a new ``build_lstm``."""
    return _POOL.lease(window, n_features, cfg)


def _fit(model, train: tuple[np.ndarray, np.ndarray] | Batches,
         validation: tuple[np.ndarray, np.ndarray] | Batches, symbol: str, cfg: ModelConfig,
         out_dir: Path, log: logging.Logger | logging.LoggerAdapter) -> TrainedModel:
    quiet_libraries()
    import keras

    out_dir.mkdir(parents=True, exist_ok=True)
    model_path = out_dir / "model.keras"
    callbacks = [
        keras.callbacks.EarlyStopping(monitor="val_loss", patience=cfg.patience,
                                      restore_best_weights=True),
        keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5,
                                          patience=max(1, cfg.patience // 2)),
        keras.callbacks.ModelCheckpoint(str(model_path), monitor="val_loss", save_best_only=True),
        _progress_callback(symbol, cfg.epochs, log),
    ]
    batches = (train.dataset() if isinstance(train, Batches)
                else _shuffled_batches(*train, cfg.batch_size, cfg.seed))
    checked = (validation.dataset() if isinstance(validation, Batches)
               else _validation_batches(*validation))
    start = model.get_weights() if head_named(cfg.head).starts_at_baseline else None
    initial = float(model.evaluate(checked, verbose=0)) if start is not None else np.inf
    history = model.fit(batches, epochs=cfg.epochs, callbacks=callbacks, shuffle=False, verbose=0,
                        validation_data=checked)
    losses = {key: [float(v) for v in values] for key, values in history.history.items()}
    best = float(np.min(losses["val_loss"]))
    if start is not None:
        losses["initial_val_loss"] = [initial]
        if not best < initial:  # no epoch beat the baseline (GARCH-t) on validation: keep it
            model.set_weights(start)
            model.save(str(model_path))
            log.info("%s: no epoch beat GARCH-t on validation (loss %.4f); the hybrid keeps "
                     "GARCH-t", symbol, initial)
            best = initial
    history_path = out_dir / "history.json"
    history_path.write_text(json.dumps(losses))
    return TrainedModel(symbol, str(model_path), str(history_path), len(losses["loss"]), best)


def train_model(dataset_path: str, symbol: str, cfg: ModelConfig, out_dir: Path,
                log: logging.Logger | logging.LoggerAdapter | None = None) -> TrainedModel:
    """Fit a symbol's model on its stored feature table's train and validation splits."""
    packed = head_named(cfg.head).packs_targets
    x_train, y_train, _ = load_arrays(dataset_path, "train", packed)
    x_val, y_val, _ = load_arrays(dataset_path, "validation", packed)
    return fit_arrays((x_train, y_train), (x_val, y_val), symbol, cfg, out_dir, log)


def load_model(path: str | Path):
    """Load a saved model.keras; a file already loaded in this process (same path, size and
    mtime: a shared global model read for each of its symbols) is loaded once."""
    stat = Path(path).stat()
    return _load_model(str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=8)
def _load_model(path: str, size: int, mtime_ns: int):
    quiet_libraries()
    import keras

    return keras.models.load_model(path, compile=False)


def candidate_dir(work: Path, dataset: DatasetRef, cfg: ModelConfig) -> Path:
    """A candidate's working directory, named by what determines it."""
    key = short_key(dataset.path, cfg.fingerprint())
    return confined(work, dataset.symbol, key)


@task(name="train", cache_policy=BY_CONTENT, persist_result=True)
def train_task(dataset: DatasetRef, cfg: ModelConfig, work: str) -> TrainedModel:
    """Train one symbol's model; per-epoch progress goes to the run's logs."""
    log = get_run_logger()
    log.info("%s: training LSTM%s for up to %d epochs", dataset.symbol, list(cfg.units), cfg.epochs)
    return train_model(dataset.path, dataset.symbol, cfg, candidate_dir(Path(work), dataset, cfg),
                       log)
