"""Model: shapes as documented, and a real (tiny) Keras training with its callbacks."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from tasks.core.training_config import FeatureConfig, ModelConfig, SplitConfig
from tasks.data.ingest import read_prices
from tasks.data.lake import upsert_prices
from tasks.features.datasets import prepare_dataset
from tasks.forecaster.network import build_lstm, load_model, train_model
from tests.conftest import SAMPLE


def test_build_lstm_shapes():
    model = build_lstm(6, 2, units=(5, 3), dropout=0.2, seed=1)
    assert model.input_shape == (None, 6, 2) and model.output_shape == (None, 1)
    assert [layer.__class__.__name__ for layer in model.layers] == \
        ["LSTM", "Dropout", "LSTM", "Dropout", "Dense"]
    assert model(np.zeros((4, 6, 2), dtype="float32")).shape == (4, 1)


def test_student_t_head_loss_is_the_negative_log_likelihood():
    from scipy import stats

    from tasks.forecaster.heads import student_t_nll, student_t_params

    raw = np.array([[0.1, -0.5, 1.0], [-0.3, 0.2, 3.0]], dtype="float32")
    y = np.array([0.4, -1.2], dtype="float32")
    loc, scale, dof = student_t_params(raw)
    assert np.all(scale > 0) and np.all(dof > 2)
    expected = -np.mean(stats.t.logpdf(y, dof, loc, scale))
    assert float(student_t_nll(y, raw)) == pytest.approx(expected, rel=1e-5)
    head = build_lstm(6, 2, units=(3,), seed=1, head="student_t")
    assert head.output_shape == (None, 3)


@pytest.mark.slow
def test_tiny_training_run_logs_epochs_and_saves(tmp_path, caplog):
    upsert_prices(read_prices(SAMPLE, symbols=["ZION"]), tmp_path / "lake")
    dataset = prepare_dataset(tmp_path / "lake", "ZION", None, FeatureConfig(window=4),
                              SplitConfig())
    cfg = ModelConfig(units=(3,), epochs=3, batch_size=512, patience=3)
    with caplog.at_level(logging.INFO):
        trained = train_model(dataset.path, "ZION", cfg, tmp_path / "out")
    history = json.loads((tmp_path / "out" / "history.json").read_text())
    assert trained.epochs_run == len(history["loss"]) == len(history["val_loss"]) == 3
    assert "ZION epoch 3/3" in caplog.text
    model = load_model(trained.model_path)
    # the return, |r|, r^2, GARCH/EWMA sigma and range channels in; the hybrid head's
    # correction to GARCH-t's loc, scale and dof out
    assert model.input_shape == (None, 4, 7) and model.output_shape == (None, 3)
    assert model.name == "closecast_hybrid"
    # the best validation loss, counting the untrained network (GARCH-t itself)
    assert trained.best_val_loss == min(history["val_loss"] + history["initial_val_loss"])


@pytest.mark.slow
@pytest.mark.parametrize("head", ["hybrid", "student_t"])
def test_training_is_deterministic(tmp_path, head):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(300, 6, 2)).astype("float32")
    y = (x[:, -1, 0] * 0.5).astype("float32")
    if head == "hybrid":  # the target beside GARCH-t's loc, log scale and dof (4 - 2 = 2)
        y = np.column_stack([y, np.zeros(300), np.full(300, -0.5), np.full(300, 1.8)])
        y = y.astype("float32")
    cfg = ModelConfig(units=(4,), epochs=2, batch_size=32, seed=7, head=head)
    from tasks.forecaster.network import fit_arrays

    first = fit_arrays((x, y), (x[:50], y[:50]), "A", cfg, tmp_path / "a")
    second = fit_arrays((x, y), (x[:50], y[:50]), "A", cfg, tmp_path / "b")
    other = fit_arrays((x, y), (x[:50], y[:50]), "A", cfg.model_copy(update={"seed": 8}),
                       tmp_path / "c")
    history = [json.loads((tmp_path / d / "history.json").read_text()) for d in "abc"]
    assert history[0] == history[1] and history[0] != history[2]
    weights = [load_model(t.model_path).get_weights() for t in (first, second, other)]
    assert all(np.array_equal(a, b) for a, b in zip(weights[0], weights[1], strict=True))


@pytest.mark.slow
def test_a_reused_network_trains_as_a_new_one(tmp_path):
    """The compiled-network pool hands the same network out again (its traced steps kept), set
    back to a new build's state: a training after another one on other data (which lowered the
    learning rate on a plateau) gives the same weights and losses as the first, and two leases
    at once get two networks."""
    from tasks.forecaster.network import fit_arrays, fresh_lstm

    rng = np.random.default_rng(5)
    x, other = (rng.normal(size=(200, 5, 2)).astype("float32") for _ in range(2))
    y = (x[:, -1, 0] * 0.5).astype("float32")
    noise = rng.normal(size=200).astype("float32")
    cfg = ModelConfig(units=(3,), epochs=4, batch_size=32, seed=11, learning_rate=0.05,
                      patience=2, head="student_t")  # ReduceLROnPlateau waits 1, EarlyStopping 2
    with fresh_lstm(5, 2, cfg) as first, fresh_lstm(5, 2, cfg) as second:
        assert first is not second
    with fresh_lstm(5, 2, cfg) as again:
        assert again is first or again is second
    a = fit_arrays((x, y), (x[:40], y[:40]), "A", cfg, tmp_path / "a")
    fit_arrays((other, noise), (other[:40], -noise[:40]), "B", cfg, tmp_path / "b")
    a_again = fit_arrays((x, y), (x[:40], y[:40]), "A", cfg, tmp_path / "c")
    history = [json.loads((tmp_path / d / "history.json").read_text()) for d in "abc"]
    assert min(history[1]["learning_rate"]) < cfg.learning_rate  # B left a lowered rate
    assert history[0] == history[2] and history[0] != history[1]
    for u, v in zip(load_model(a.model_path).get_weights(),
                    load_model(a_again.model_path).get_weights(), strict=True):
        np.testing.assert_array_equal(u, v)


def test_several_steps_per_call_and_batched_validation_change_no_number():
    """The training loop's two speed-ups leave the numbers as Keras's plain loop has them: 32
    steps per call into TensorFlow give the same weights as one step per call, and the
    validation split as one cached batch gives Keras's own validation losses (batches of 32)."""
    import keras

    from tasks.forecaster.heads import student_t_nll
    from tasks.forecaster.network import (
        STEPS_PER_EXECUTION,
        _shuffled_batches,
        _validation_batches,
    )

    rng = np.random.default_rng(9)
    x = rng.normal(size=(700, 6, 2)).astype("float32")  # 11 batches of 64 per epoch, one partial
    y = (x[:, -1, 0] * 0.3 + rng.normal(scale=0.1, size=700)).astype("float32")

    def fit(steps: int, validation) -> tuple[list, list[float]]:
        model = build_lstm(6, 2, units=(4,), seed=3, head="student_t")
        model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=student_t_nll,
                      steps_per_execution=steps)
        history = model.fit(_shuffled_batches(x, y, 64, 3), epochs=3, verbose=0, shuffle=False,
                            validation_data=validation)
        return model.get_weights(), history.history["val_loss"]

    assert STEPS_PER_EXECUTION > 11  # an epoch here is one call
    plain, plain_loss = fit(1, (x[:150], y[:150]))
    fast, fast_loss = fit(STEPS_PER_EXECUTION, _validation_batches(x[:150], y[:150]))
    for u, v in zip(plain, fast, strict=True):
        np.testing.assert_array_equal(u, v)
    np.testing.assert_allclose(fast_loss, plain_loss, rtol=1e-6)
