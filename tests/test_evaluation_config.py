"""Evaluation settings live in ``RunConfig.evaluation``; the old keys still load."""

from __future__ import annotations

import json

import yaml

from tasks.core.config import RunConfig, load_config
from tasks.core.training_config import EvaluationConfig, FeatureConfig, ModelConfig
from tasks.forecaster.forecaster import load_settings


def test_old_keys_move_into_evaluation(tmp_path):
    path = tmp_path / "old.yaml"
    path.write_text(yaml.safe_dump({"features": {"window": 7, "ma_window": 3},
                                    "model": {"epochs": 2, "shrink": False, "gate_z": 0.5}}))
    config = load_config(path)
    assert config.evaluation == EvaluationConfig(ma_window=3, shrink=False, gate_z=0.5)
    assert config.features.window == 7 and config.model.epochs == 2


def test_explicit_evaluation_wins_and_defaults_are_single():
    config = RunConfig.model_validate({"model": {"gate_z": 0.5},
                                       "evaluation": {"gate_z": 2.0}})
    assert config.evaluation.gate_z == 2.0
    assert RunConfig().evaluation.gate_z == 1.645
    assert "gate_z" not in ModelConfig.model_fields
    assert "ma_window" not in FeatureConfig.model_fields


def test_training_fingerprints_ignore_evaluation():
    a = RunConfig(evaluation=EvaluationConfig(gate_z=0.0, ma_window=9))
    b = RunConfig()
    assert a.features.fingerprint() == b.features.fingerprint()
    assert a.model.fingerprint() == b.model.fingerprint()
    assert a.evaluation.fingerprint() != b.evaluation.fingerprint()


def test_a_version_saved_with_the_old_keys_loads(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({
        "features": {"window": 5, "ma_window": 5}, "split": {},
        "model": {"shrink": True, "gate_z": 1.645}, "shrink_alpha": 0.25}))
    (tmp_path / "scaler.json").write_text(json.dumps({"mean": 0.0, "scale": 1.0}))
    features, _, alpha, _ = load_settings(tmp_path)
    assert features.window == 5 and alpha == 0.25
