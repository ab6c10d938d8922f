"""Student-t head vs quantile head: the same LSTM body, seed and data, scored side by side (JSON).

Issue 10 point 1 asked to choose the distribution head by measurement. Per symbol (AAL, ZION
from the Kaggle split-adjusted file; AMZN, WEN from Yahoo exports), default RunConfig features
and split, two networks are trained on the same train rows with EarlyStopping on the same
validation rows:

- ``student_t``: the project's head, ``tasks.forecaster.network.fit_arrays`` with the default
  ModelConfig (loc, softplus scale, softplus + 2 dof; negative log-likelihood);
- ``quantile``: defined here only, the stacked LSTM body of ``build_lstm`` (the same layers and
  seeds) with Dense(11) made non-crossing by construction (the median output, plus/minus
  cumulative sums of softplus increments), trained on the mean pinball loss over the 11 levels
  0.01 .. 0.99, with the same batches, optimizer, EarlyStopping and ReduceLROnPlateau.

Both are scored on the test window in price units (close of day t-1 times exp of the return
quantile): mean pinball over the 11 levels, CRPS (Student-t: the closed form; both: the
11-level approximation 2 x mean pinball, an approximation on 11 uneven levels, so the
like-for-like CRPS figure is that one), coverage and mean width of the 80% (0.1..0.9) and 95%
(0.025..0.975) central intervals, fit seconds and epochs. Each head is scored twice: with its
own centre ("own") and re-centred on its point forecast after the validation shrink/gate of
``tasks.evaluation.evaluate`` ("gated", as a version would ship it). Ratios are to the
constant-volatility baseline on the same days (``tasks.evaluation.evaluate.score_frame``'s
distribution section).

    python benchmarks/compare_heads.py [--epochs N] [--symbols AAL,ZION]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from _common import REAL_FILES, machine, wait_for_quiet  # noqa: E402

from tasks.distribution.distributions import QUANTILE_LEVELS  # noqa: E402

FILES = REAL_FILES
LEVELS = QUANTILE_LEVELS  # the levels closecast scores its distributions at
MEDIAN = LEVELS.index(0.5)
INTERVALS = {"80": (0.1, 0.9), "95": (0.025, 0.975)}
HEADS = ("student_t", "quantile")
VARIANTS = ("own", "gated")


def pinball_loss(y_true, out):
    """Mean pinball loss of ``out`` ``(batch, 11)`` quantiles at LEVELS (scaled target units)."""
    import tensorflow as tf

    y = tf.reshape(tf.cast(y_true, out.dtype), (-1, 1))
    tau = tf.constant(LEVELS, dtype=out.dtype)[None, :]
    diff = y - out
    return tf.reduce_mean(tf.maximum(tau * diff, (tau - 1.0) * diff))


def non_crossing(raw):
    """Quantiles from Dense(11) outputs: the median output, plus cumulative sums of softplus
    increments above it and minus them below it (ordered by construction)."""
    import tensorflow as tf

    median = raw[:, MEDIAN:MEDIAN + 1]
    up = tf.math.cumsum(tf.nn.softplus(raw[:, MEDIAN + 1:]) + 1e-6, axis=1)
    down = tf.math.cumsum(tf.nn.softplus(raw[:, MEDIAN - 1::-1]) + 1e-6, axis=1)
    return tf.concat([median - tf.reverse(down, axis=[1]), median, median + up], axis=1)


def build_quantile_lstm(window: int, n_features: int, cfg):
    """``build_lstm``'s stacked LSTM + Dropout body (the very layers, so the same seeds and
    initial weights as the Student-t network's body) with the non-crossing 11-quantile head."""
    import keras

    from tasks.forecaster.network import build_lstm

    body = build_lstm(window, n_features, units=cfg.units, dropout=cfg.dropout,
                      learning_rate=cfg.learning_rate, seed=cfg.seed, head="point").layers[:-1]
    dense = keras.layers.Dense(len(LEVELS), kernel_initializer=keras.initializers.GlorotUniform(
        seed=cfg.seed + 999))
    model = keras.Sequential([keras.Input(shape=(window, n_features)), *body, dense,
                              keras.layers.Lambda(non_crossing, output_shape=(len(LEVELS),))],
                             name="closecast_lstm_quantile")
    model.compile(optimizer=keras.optimizers.Adam(cfg.learning_rate), loss=pinball_loss)
    return model


def fit_quantile(train, validation, cfg):
    """Train like ``fit_arrays`` (same batches, callbacks on val_loss); (model, epochs run)."""
    import keras

    from tasks.forecaster.network import _shuffled_batches, enable_determinism

    enable_determinism(cfg.seed)
    model = build_quantile_lstm(*train[0].shape[1:], cfg)
    callbacks = [keras.callbacks.EarlyStopping(monitor="val_loss", patience=cfg.patience,
                                               restore_best_weights=True),
                 keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5,
                                                   patience=max(1, cfg.patience // 2))]
    history = model.fit(_shuffled_batches(*train, cfg.batch_size, cfg.seed), epochs=cfg.epochs,
                        callbacks=callbacks, shuffle=False, verbose=0, validation_data=validation)
    return model, len(history.history["loss"]), float(np.min(history.history["val_loss"]))


def gated_centre(centre: np.ndarray, frame, evaluation) -> tuple[np.ndarray, float]:
    """Each row's centre (log return) after ``tasks.evaluation.evaluate``'s validation
    shrink/gate toward naive, exactly as ``score_frame`` does it for the point forecast; and
    alpha."""
    from tasks.forecaster.shrink import gated_shrink, shrink

    base, actual = frame["base_close"].to_numpy(), frame["close"].to_numpy()
    closes = base * np.exp(centre)
    val = (frame["split"] == "validation").to_numpy()
    alpha = (gated_shrink(closes[val], base[val], actual[val], evaluation.gate_z)[0]
             if evaluation.shrink else 1.0)
    return np.log(shrink(closes, base, alpha) / base), alpha


def score_quantiles(q_price: np.ndarray, actual: np.ndarray) -> tuple[dict, np.ndarray]:
    """Scores of ``(n, 11)`` price quantiles at LEVELS; and the per-row mean pinball."""
    from tasks.distribution.scoring import pinball

    per_level = np.column_stack([pinball(q_price[:, i], actual, q)
                                 for i, q in enumerate(LEVELS)])
    row_loss = per_level.mean(axis=1)
    out = {"pinball": float(row_loss.mean()), "crps_11": float(2 * row_loss.mean())}
    for name, (lo, hi) in INTERVALS.items():
        low, high = q_price[:, LEVELS.index(lo)], q_price[:, LEVELS.index(hi)]
        out[f"coverage_{name}"] = float(np.mean((actual >= low) & (actual <= high)))
        out[f"width_{name}"] = float(np.mean(high - low))
    out["calibration"] = {f"{q:g}": round(float(np.mean(actual <= q_price[:, i])), 4)
                          for i, q in enumerate(LEVELS)}
    return out, row_loss


def with_ratios(scores: dict, constant: dict) -> dict:
    """Add ratios to the constant-volatility baseline on the same test days."""
    scores["pinball_vs_constant"] = scores["pinball"] / constant["pinball"]
    scores["crps_11_vs_constant_11"] = scores["crps_11"] / (2 * constant["pinball"])
    if "crps" in scores:
        scores["crps_vs_constant"] = scores["crps"] / constant["crps"]
    return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in scores.items()}


def student_t_scores(raw, centre, frame, scaler, test) -> tuple[dict, np.ndarray]:
    """The Student-t head's test scores with the given centre (log return per row)."""
    from tasks.distribution.distributions import ReturnDist
    from tasks.distribution.scoring import crps_price, price_quantile
    from tasks.forecaster.heads import student_t_params

    _, scale, dof = student_t_params(raw)
    dist = ReturnDist.of(centre, scale * scaler.scale, dof).rows(test)
    base, actual = frame["base_close"].to_numpy()[test], frame["close"].to_numpy()[test]
    q_price = np.column_stack([price_quantile(dist, base, q) for q in LEVELS])
    scores, row_loss = score_quantiles(q_price, actual)
    scores["crps"] = float(np.mean(crps_price(dist, base, actual)))
    scores["mean_dof"] = float(np.mean(dist.dof))
    return scores, row_loss


def quantile_scores(q_return, centre_shift, frame, test) -> tuple[dict, np.ndarray]:
    """The quantile head's test scores: return quantiles (shifted by ``centre_shift``) as prices."""
    base, actual = frame["base_close"].to_numpy()[test], frame["close"].to_numpy()[test]
    q_price = base[:, None] * np.exp((q_return + centre_shift[:, None])[test])
    return score_quantiles(q_price, actual)


def train_both(frame, cfg, symbol: str, work: Path):
    """Fit both heads on the same rows; (Student-t TrainedModel, quantile model, timings)."""
    from tasks.features.windows import split_arrays
    from tasks.forecaster.network import fit_arrays

    arrays = split_arrays(frame, "train", "validation")
    started = time.perf_counter()
    trained = fit_arrays(arrays[0], arrays[1], symbol, cfg, work / symbol,
                         logging.getLogger("bench"))
    st_fit = time.perf_counter() - started
    started = time.perf_counter()
    q_model, q_epochs, q_val = fit_quantile(arrays[0], arrays[1], cfg)
    q_fit = time.perf_counter() - started
    fits = {"student_t": {"fit_s": round(st_fit, 1), "epochs_run": trained.epochs_run,
                          "best_val_loss_nll": round(trained.best_val_loss, 5)},
            "quantile": {"fit_s": round(q_fit, 1), "epochs_run": q_epochs,
                         "best_val_loss_pinball": round(q_val, 5)}}
    return trained, q_model, fits


def score_symbol(path: Path, symbol: str, epochs: int | None, work: Path) -> dict:
    """Train both heads on one symbol under the default config and score them on its test rows."""
    from tasks.core.config import RunConfig
    from tasks.data.ingest import read_prices
    from tasks.distribution.scoring import diebold_mariano_loss
    from tasks.evaluation.evaluate import score_frame
    from tasks.features.feature_table import build_feature_frame
    from tasks.features.windows import window_array
    from tasks.forecaster.forecaster import Network

    config = RunConfig()
    cfg = config.model if epochs is None else config.model.model_copy(update={"epochs": epochs})
    prices = read_prices(path, None, (symbol,))
    prices = prices[prices["symbol"] == symbol].reset_index(drop=True)
    frame, scaler = build_feature_frame(prices, config.features, config.split)
    trained, q_model, fits = train_both(frame, cfg, symbol, work)
    st_model = Network.load(trained.model_path)
    metrics, _, _ = score_frame(st_model, frame, scaler, config.features,
                                int((frame["split"] == "train").sum()), config.evaluation)
    d = metrics["distribution"]
    test = (frame["split"] == "test").to_numpy()
    x = window_array(frame)

    raw = st_model.outputs(x)
    q_return = scaler.inverse(Network.of(q_model).outputs(x).astype("float64"))  # affine, scale > 0
    own = {"student_t": scaler.inverse(raw[:, 0].astype("float64")),
           "quantile": q_return[:, MEDIAN]}
    out: dict = {h: {**fits[h]} for h in HEADS}
    losses: dict = {}
    exact: dict = {}
    for head in HEADS:
        gated, alpha = gated_centre(own[head], frame, config.evaluation)
        out[head]["shrink_alpha"] = round(alpha, 4)
        for variant, centre in (("own", own[head]), ("gated", gated)):
            if head == "student_t":
                scores, losses[head, variant] = student_t_scores(raw, centre, frame, scaler, test)
            else:
                scores, losses[head, variant] = quantile_scores(q_return, centre - own[head],
                                                                frame, test)
            out[head][variant] = with_ratios(scores, d["constant"])
            exact[head, variant] = scores
    ungated = d["model"]["lstm_ungated"]
    # cross-check: the Student-t "gated" scores are score_frame's lstm_ungated ones
    out["student_t_gated_vs_score_frame_rel_diff"] = {
        k: float(f"{abs(exact['student_t', 'gated'][k] / ungated[k] - 1):.2e}")
        for k in ("crps", "pinball")}
    out["dm_pinball_quantile_over_student_t"] = {  # > 0: the quantile head's loss is lower
        v: round(diebold_mariano_loss(losses["student_t", v], losses["quantile", v]), 3)
        for v in VARIANTS}
    out["baselines"] = {name: {"crps": round(d[name]["crps"], 6),
                               "pinball": round(d[name]["pinball"], 6),
                               "crps_vs_constant": round(d[name]["crps_vs_constant"], 4),
                               "pinball_vs_constant": round(d[name]["pinball"]
                                                            / d["constant"]["pinball"], 4),
                               "coverage_80": round(d[name]["coverage"]["80"], 4),
                               "coverage_95": round(d[name]["coverage"]["95"], 4)}
                        for name in ("constant", "ewma", "garch")}
    out.update(test=f"{metrics['test_start']}..{metrics['test_end']}", n_test=metrics["n_test"],
               n_train=int((frame["split"] == "train").sum()),
               n_validation=int((frame["split"] == "validation").sum()))
    return out


KEYS = ("pinball", "crps_11", "coverage_80", "coverage_95", "width_80", "width_95",
        "pinball_vs_constant", "crps_11_vs_constant_11")


def means(per: dict) -> dict:
    """Per head and variant: the mean of each score over the symbols, and the calibration
    error (mean |coverage - nominal| over the 80% and 95% intervals and the symbols)."""
    out: dict = {}
    for head in HEADS:
        out[head] = {"fit_s": round(float(np.mean([r[head]["fit_s"] for r in per.values()])), 1),
                     "epochs_run": float(np.mean([r[head]["epochs_run"] for r in per.values()]))}
        for variant in VARIANTS:
            rows = [r[head][variant] for r in per.values()]
            keys = KEYS + (("crps", "crps_vs_constant") if head == "student_t" else ())
            m = {k: round(float(np.mean([row[k] for row in rows])), 6) for k in keys}
            m["coverage_error"] = round(float(np.mean(
                [abs(row["coverage_80"] - 0.80) + abs(row["coverage_95"] - 0.95)
                 for row in rows]) / 2), 4)
            out[head][variant] = m
    return out


def choice(avg: dict) -> dict:
    """Which head is better on each criterion (means over symbols), per variant; "gated" (the
    distribution a version would ship) decides."""
    out = {}
    for variant in VARIANTS:
        st, qh = avg["student_t"][variant], avg["quantile"][variant]
        out[variant] = {
            "lower_pinball": "student_t" if st["pinball_vs_constant"] <= qh["pinball_vs_constant"]
            else "quantile",
            "lower_crps_11": "student_t" if st["crps_11_vs_constant_11"]
            <= qh["crps_11_vs_constant_11"] else "quantile",
            "better_coverage": "student_t" if st["coverage_error"] <= qh["coverage_error"]
            else "quantile"}
    verdicts = set(out["gated"].values())
    out["decided_on"] = "gated"
    out["head"] = verdicts.pop() if len(verdicts) == 1 else "split"
    out["note"] = ("crps_11 = 2 x mean pinball over the 11 levels (an approximation of CRPS on "
                   "11 uneven levels, so it ranks exactly as pinball); the Student-t's closed-form "
                   "CRPS is in 'crps'; ratios are to the constant-volatility baseline's 11-level "
                   "pinball on the same days, averaged over symbols")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, help="override the default epochs (smoke test)")
    parser.add_argument("--symbols", help=f"comma-separated subset of {','.join(FILES)}")
    args = parser.parse_args(argv)
    names = [s.strip().upper() for s in args.symbols.split(",")] if args.symbols else list(FILES)
    unknown = sorted(set(names) - set(FILES))
    if unknown:
        parser.error(f"unknown symbol(s): {', '.join(unknown)}")
    start = wait_for_quiet(limit_s=60)
    with tempfile.TemporaryDirectory(prefix="closecast-compare-heads-") as tmp:
        per = {s: score_symbol(FILES[s], s, args.epochs, Path(tmp)) for s in names}
    avg = means(per)
    print(json.dumps({"benchmark": "compare_heads", "epochs": args.epochs, "levels": LEVELS,
                      "symbols": per, "mean": avg, "choice": choice(avg),
                      "machine": machine(start)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
