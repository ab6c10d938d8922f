"""A network's head: what its last layer outputs, the loss it trains on, and how those outputs
become tomorrow's return (a point, or a Student-t distribution).

Three heads, one class each; nothing outside this package asks which one a network has:
- ``PointHead``: one output, the scaled target, trained on MSE; no distribution.
- ``StudentTHead``: (loc, raw scale, raw dof) of a Student-t, trained on its NLL.
- ``HybridHead``: a correction (c0, c1, c2) to GARCH(1,1)-t, which it reads per row as
  ``offsets`` (``features.windows.OFFSETS``); zero at the start, so the untrained network *is*
  GARCH-t, and training that beats no epoch of GARCH-t on validation keeps GARCH-t.

A new head is a new class here and an entry in ``HEADS``.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from tasks.distribution.distributions import ReturnDist
from tasks.distribution.hybrid_inputs import softplus_inverse


def student_t_nll(y_true, raw):
    """Mean negative log-likelihood of ``y_true`` under Student-t parameters read from ``raw``
    ``(batch, 3)``: loc, scale = softplus + 1e-3, dof = softplus + 2 (finite variance)."""
    import tensorflow as tf

    y = tf.reshape(tf.cast(y_true, raw.dtype), (-1,))
    loc, scale = raw[:, 0], tf.nn.softplus(raw[:, 1]) + 1e-3
    nu = tf.nn.softplus(raw[:, 2]) + 2.0
    z = (y - loc) / scale
    log_pdf = (tf.math.lgamma((nu + 1) / 2) - tf.math.lgamma(nu / 2)
               - 0.5 * tf.math.log(nu * np.pi) - tf.math.log(scale)
               - (nu + 1) / 2 * tf.math.log1p(z * z / nu))
    return -tf.reduce_mean(log_pdf)


def hybrid_nll(y_packed, correction):
    """The hybrid head's loss: ``student_t_nll`` of the target under GARCH-t corrected by the
    network. ``y_packed`` is ``(target, loc, log scale, dof as softplus^-1(dof - 2))`` per row,
    GARCH-t's in the target's scaled units (``features.windows.targets_of``); ``correction``
    ``(c0, c1, c2)`` moves them: loc + c0, scale * exp(c1), softplus^-1(dof - 2) + c2."""
    import tensorflow as tf

    y_packed = tf.cast(y_packed, correction.dtype)
    y = y_packed[:, 0]
    loc = y_packed[:, 1] + correction[:, 0]
    log_scale = y_packed[:, 2] + correction[:, 1]
    nu = 2.0 + tf.nn.softplus(y_packed[:, 3] + correction[:, 2])
    z = (y - loc) * tf.exp(-log_scale)
    log_pdf = (tf.math.lgamma((nu + 1) / 2) - tf.math.lgamma(nu / 2)
               - 0.5 * tf.math.log(nu * np.pi) - log_scale
               - (nu + 1) / 2 * tf.math.log1p(z * z / nu))
    return -tf.reduce_mean(log_pdf)


def student_t_params(raw: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(loc, scale, dof) from a Student-t head's raw outputs, as ``student_t_nll`` reads them."""
    softplus = np.logaddexp(0.0, raw[:, 1:3].astype("float64"))
    return raw[:, 0].astype("float64"), softplus[:, 0] + 1e-3, softplus[:, 1] + 2.0


def hybrid_raw(correction: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """A hybrid correction plus GARCH-t's ``offsets`` (scaled units), as the raw outputs of a
    Student-t head (``student_t_params`` reads them): zero correction gives GARCH-t."""
    c = np.asarray(correction, dtype="float64")
    off = np.asarray(offsets, dtype="float64")
    scale = np.maximum(np.exp(off[:, 1] + c[:, 1]) - 1e-3, 1e-12)
    return np.column_stack([off[:, 0] + c[:, 0], softplus_inverse(scale),
                            off[:, 2] + c[:, 2]])


HYBRID_METHOD = (
    "Method: the LSTM corrects GARCH(1,1) Student-t instead of replacing it: its last layer "
    "moves GARCH-t's location, scale (times exp) and degrees of freedom, starts at zero (the "
    "untrained network is GARCH-t) and is trained on the Student-t negative log-likelihood, a "
    "proper scoring rule; when no epoch beats GARCH-t on validation it stays GARCH-t. Its "
    "inputs, all known at the forecast's origin: each lagged day's return, |r| and r^2, the "
    "GARCH(1,1) and EWMA sigma of the next day (fit on the training rows only, rolled forward "
    "without refitting) and the day's Parkinson and Garman-Klass range estimators. Baselines "
    "are fit on the training rows only and rolled forward without refitting.")
METHOD = ("Method: the LSTM's last layer predicts the location, scale (softplus) and degrees of "
          "freedom (softplus + 2) of a Student-t distribution of the next day's log return, "
          "trained on its negative log-likelihood, a proper scoring rule; its inputs add |r| and "
          "r^2 of each lagged day. Why not 11 pinball-loss quantile outputs: measured on four "
          "real symbols (benchmarks/compare_heads.py), a non-crossing quantile head scored only "
          "0.4% better on mean pinball (0.847 vs 0.851 of constant volatility; clearly better on "
          "one symbol of four) and neither beat GARCH(1,1)-t; the Student-t keeps what closecast "
          "uses and quantile outputs lack: tails beyond the 1%/99% levels, closed-form CRPS, and "
          "a whole distribution to simulate multi-day paths from. Baselines are fit on the "
          "training rows only and rolled forward without refitting.")


# The report's sentence on each optional input family a version's features turn on.
OPTIONAL_INPUTS = {
    "calendar": "the symbol's calendar of large moves: per lagged day, log1p of the largest "
                "standardized squared return (r^2 over a 60-day EWMA variance known before "
                "it) around 63, 126, 189 and 252 trading days before the day it forecasts",
    "gap": "each lagged day's overnight gap log(open / the previous close)",
    "market": "the market's state of each lagged day, from every symbol of the run's lake that "
              "day: log of the mean |log return|, of the mean range log(high/low) and of the "
              "dispersion of the returns across symbols"}


def method_text(head: Head, features: dict | None = None) -> str:
    """The head's method note, with a sentence on the optional inputs ``features`` (a
    version's saved feature config) turns on."""
    extra = [text for name, text in OPTIONAL_INPUTS.items() if (features or {}).get(name)]
    if not extra:
        return head.method
    return f"{head.method} Optional inputs of this version, known at the origin: " + \
        "; ".join(extra) + "."


class Head:
    """The point head; the others override what differs."""

    name: ClassVar[str] = "point"
    outputs: ClassVar[int] = 1
    network_name: ClassVar[str] = "closecast_lstm"  # a saved network's name
    gives_distribution: ClassVar[bool] = False
    # the training targets carry GARCH-t's offsets beside them (``features.windows.targets_of``)
    packs_targets: ClassVar[bool] = False
    # the untrained network is a baseline, kept when no epoch beats it on validation
    starts_at_baseline: ClassVar[bool] = False
    # the report's note on how the distribution is made (``reporting.distribution_report``)
    method: ClassVar[str] = METHOD

    def loss(self):
        return "mse"

    def output_layer(self, seed: int):
        """The network's last layer."""
        import keras

        return keras.layers.Dense(self.outputs, name="head",
                                  kernel_initializer=keras.initializers.GlorotUniform(
                                      seed=seed + 999))

    def params(self, outputs: np.ndarray, offsets: np.ndarray | None = None) -> np.ndarray:
        """The network's outputs ``(n, outputs)`` as this head's parameters: the scaled point
        forecast in column 0 and, for a distribution, a Student-t's raw (loc, scale, dof)."""
        return outputs

    def dist(self, params: np.ndarray, log_centre: np.ndarray, scale: float) -> ReturnDist | None:
        """The distribution of the log return centred on ``log_centre`` (the shrunk point
        forecast) from ``params`` (target units times ``scale``); None without one."""
        return None


class StudentTHead(Head):
    """A Student-t of the scaled target: loc, scale and degrees of freedom per row."""

    name = "student_t"
    outputs = 3
    gives_distribution = True
    method = METHOD

    def loss(self):
        return student_t_nll

    def dist(self, params: np.ndarray, log_centre: np.ndarray, scale: float) -> ReturnDist:
        _, t_scale, dof = student_t_params(params)
        return ReturnDist.of(log_centre, t_scale * scale, dof)


class HybridHead(StudentTHead):
    """A correction to GARCH(1,1)-t's Student-t (``hybrid_raw``), zero at the start."""

    name = "hybrid"
    network_name = "closecast_hybrid"
    packs_targets = True
    starts_at_baseline = True
    method = HYBRID_METHOD

    def loss(self):
        return hybrid_nll

    def output_layer(self, seed: int):
        import keras

        return keras.layers.Dense(self.outputs, kernel_initializer="zeros",
                                  bias_initializer="zeros", name="head")

    def params(self, outputs: np.ndarray, offsets: np.ndarray | None = None) -> np.ndarray:
        if offsets is None:
            raise ValueError("a hybrid network needs GARCH-t's offsets for its rows")
        return hybrid_raw(outputs, offsets)


HEADS: dict[str, Head] = {head.name: head for head in (Head(), StudentTHead(), HybridHead())}


def head_named(name: str) -> Head:
    """The head a ``ModelConfig.head`` names."""
    try:
        return HEADS[name]
    except KeyError:
        raise ValueError(f"unknown head {name!r}: one of {', '.join(HEADS)}") from None


def head_of(network) -> Head:
    """The head of a built or loaded network, read from the network itself (its name and its
    output width), so a version saved before heads were recorded loads with the right one."""
    if getattr(network, "name", "") == HybridHead.network_name:
        return HEADS["hybrid"]
    return HEADS["student_t"] if network.output_shape[-1] == 3 else HEADS["point"]
