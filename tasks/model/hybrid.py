"""The hybrid volatility network: an LSTM that corrects GARCH(1,1)-t instead of replacing it.

Its output ``(c0, c1, c2)`` is a correction: loc = c0, scale = GARCH-t scale * exp(c1), dof =
2 + softplus(softplus^-1(GARCH-t dof - 2) + c2) (``hybrid_inputs.correction_dist``). The last
layer starts at zero, so the untrained network *is* GARCH-t, and training on the Student-t
negative log-likelihood moves away from it only as far as validation pays: early stopping
keeps the best validation epoch, and the starting point when no epoch beats it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from tasks.core.logs import DETAIL, quiet_libraries
from tasks.distribution.distributions import ReturnDist
from tasks.distribution.hybrid_inputs import HybridInputs, correction_dist

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HybridFit:
    """A trained correction network and how its training went."""

    model: object
    epochs_run: int
    initial_val_loss: float
    best_val_loss: float
    moved: bool  # False: no epoch beat GARCH-t on validation; the network is left at zero


def hybrid_nll(y_packed, correction):
    """Mean Student-t negative log-likelihood; ``y_packed`` is ``(return, GARCH-t log-scale,
    GARCH-t dof as softplus^-1(dof - 2))`` per row, ``correction`` the network's output."""
    import tensorflow as tf

    y_packed = tf.cast(y_packed, correction.dtype)
    y = y_packed[:, 0]
    loc = correction[:, 0]
    log_scale = y_packed[:, 1] + correction[:, 1]
    nu = 2.0 + tf.nn.softplus(y_packed[:, 2] + correction[:, 2])
    z = (y - loc) * tf.exp(-log_scale)
    log_pdf = (tf.math.lgamma((nu + 1) / 2) - tf.math.lgamma(nu / 2)
               - 0.5 * tf.math.log(nu * np.pi) - log_scale
               - (nu + 1) / 2 * tf.math.log1p(z * z / nu))
    return -tf.reduce_mean(log_pdf)


def build_hybrid(window: int, n_context: int, *, units: tuple[int, ...] = (16,),
                 dropout: float = 0.1, learning_rate: float = 1e-3, seed: int = 42):
    """``(batch, window, n_context)`` context rows -> ``(batch, 3)`` correction; the output
    layer's kernel and bias start at zero (the network starts as GARCH-t)."""
    quiet_libraries()
    import keras

    from tasks.model.lstm import enable_determinism

    enable_determinism(seed)
    layers: list = [keras.Input(shape=(window, n_context))]
    for i, size in enumerate(units):
        layers.append(keras.layers.LSTM(
            size, return_sequences=i < len(units) - 1,
            kernel_initializer=keras.initializers.GlorotUniform(seed=seed + 10 * i),
            recurrent_initializer=keras.initializers.Orthogonal(seed=seed + 10 * i + 1)))
        layers.append(keras.layers.Dropout(dropout, seed=seed + 10 * i + 2))
    layers.append(keras.layers.Dense(3, kernel_initializer="zeros", bias_initializer="zeros"))
    model = keras.Sequential(layers, name="closecast_hybrid")
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=hybrid_nll)
    return model


def fit_hybrid(train: tuple[np.ndarray, np.ndarray], validation: tuple[np.ndarray, np.ndarray],
               *, units: tuple[int, ...] = (16,), dropout: float = 0.1,
               learning_rate: float = 1e-3, batch_size: int = 256, epochs: int = 30,
               patience: int = 5, seed: int = 42, label: str = "hybrid") -> HybridFit:
    """Fit the correction on ``train`` windows; EarlyStopping and ReduceLROnPlateau watch
    ``validation``. The result is the best validation epoch, or the untrained (GARCH-t)
    network when no epoch beats it."""
    quiet_libraries()
    import keras

    x, y = train
    model = build_hybrid(x.shape[1], x.shape[2], units=units, dropout=dropout,
                         learning_rate=learning_rate, seed=seed)
    start = [w.copy() for w in model.get_weights()]
    initial = float(model.evaluate(*validation, batch_size=4096, verbose=0))
    stop = keras.callbacks.EarlyStopping(patience=patience, restore_best_weights=True)
    history = model.fit(
        x, y, validation_data=validation, epochs=epochs, batch_size=batch_size, verbose=0,
        shuffle=True, callbacks=[stop, keras.callbacks.ReduceLROnPlateau(
            factor=0.5, patience=max(1, patience // 2), min_lr=1e-5)])
    val = history.history["val_loss"]
    best = float(min(val))
    moved = best < initial
    if not moved:
        model.set_weights(start)
    log.info("%s: %d epochs, validation NLL %.5f -> %.5f%s", label, len(val), initial,
             min(best, initial), "" if moved else " (kept GARCH-t)", extra=DETAIL)
    return HybridFit(model, len(val), initial, min(best, initial), moved)


def hybrid_dist(model, inputs: HybridInputs, window: int) -> tuple[ReturnDist, int]:
    """(the hybrid's distribution of each windowed row, the first row it covers)."""
    x, _, first = inputs.windows(window)
    correction = np.asarray(model(x, training=False), dtype="float64")
    return correction_dist(correction, inputs.offset[first:]), first
