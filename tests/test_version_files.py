"""A version directory's records (tasks/core/version_files.py): today's files read and write
back byte for byte, older files load with defaults and keep their shape, and consumers read
fields instead of key paths."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from pydantic import ValidationError

from tasks.core.version_files import (
    DISTRIBUTION_FILE,
    MANIFEST_FILE,
    METRICS_FILE,
    PROMOTION_FILE,
    Metrics,
    PooledGate,
    read_distribution,
    read_manifest,
    read_metrics,
    read_promotion,
    write_distribution,
    write_manifest,
    write_metrics,
    write_promotion,
)

# The four records of ZION version 1 as `closecast run` wrote them on the sample at bb25fab.
TODAY = Path(__file__).parent / "data" / "version_records"
FILES = {METRICS_FILE: (read_metrics, write_metrics),
         MANIFEST_FILE: (read_manifest, write_manifest),
         PROMOTION_FILE: (read_promotion, write_promotion),
         DISTRIBUTION_FILE: (read_distribution, write_distribution)}


@pytest.mark.parametrize("name", sorted(FILES))
def test_every_file_of_a_real_version_reads_and_writes_back_byte_for_byte(name, tmp_path):
    read, write = FILES[name]
    record = read(TODAY)
    assert record.to_dict() == json.loads((TODAY / name).read_text())
    written = write(tmp_path, record)
    assert written == tmp_path / name
    assert written.read_bytes() == (TODAY / name).read_bytes()


def test_a_real_version_reads_as_typed_fields():
    metrics, manifest = read_metrics(TODAY), read_manifest(TODAY)
    promotion, saved = read_promotion(TODAY), read_distribution(TODAY)
    assert (metrics.test_start, metrics.test_end, metrics.n_test) == \
        ("2015-12-18", "2016-12-30", 261)
    assert metrics.rmse == metrics.naive_rmse and metrics.rmse_vs_naive == 1.0
    assert metrics.shrink_alpha == 0.0 and metrics.source == "lstm"
    assert metrics.crps == metrics.distribution.model.crps < metrics.distribution.constant.crps
    assert metrics.pooled_gate is None and metrics.distribution.model.gate == "symbol"
    assert list(metrics.distribution.forecasters()) == ["model", "constant", "ewma", "garch"]
    assert metrics.baselines["naive"].rmse == metrics.naive_rmse
    assert [f["fold"] for f in metrics.backtest_folds] == [1, 2, 3]
    assert metrics.backtest.mean_rmse_vs_naive == 1.0
    assert (manifest.symbol, manifest.as_of, manifest.trained_on) == \
        ("ZION", "2016-12-30", ["ZION"])
    assert manifest.global_model is False and manifest.model["head"] == "hybrid"
    assert promotion.promoted and promotion.reason.startswith("promoted: ")
    assert saved.source == "lstm" and saved.start_date == "2014-12-05"
    assert saved.params("garch")["dist"] == "t" and set(saved.baselines) == \
        {"constant", "ewma", "garch"}


# metrics.json and manifest.json as closecast wrote them before shrinking, baselines,
# distributions and global models (2026-11-23): the DESIGN.md keys only.
OLD_METRICS = {"rmse": 0.61, "mae": 0.44, "mape": 1.6, "directional_accuracy": 0.51,
               "naive_rmse": 0.57, "naive_mae": 0.41, "rmse_vs_naive": 1.07,
               "n_train": 1219, "n_test": 261, "test_start": "2015-12-18",
               "test_end": "2016-12-30"}
OLD_MANIFEST = {"symbol": "ZION", "as_of": "2016-12-30", "data_fingerprint": "a0d4",
                "features": {"window": 100, "target": "close"}, "split": {"test": 0.15},
                "model": {"units": [50, 50], "epochs": 1}, "libraries": {"python": "3.11.7"},
                "git_commit": None, "flow_run_id": "r", "created_at": "2026-11-22T10:00:00+00:00"}


def test_an_old_version_loads_with_defaults_and_writes_back_unchanged(tmp_path):
    (tmp_path / METRICS_FILE).write_text(json.dumps(OLD_METRICS, indent=2))
    (tmp_path / MANIFEST_FILE).write_text(json.dumps(OLD_MANIFEST, indent=2))
    metrics, manifest = read_metrics(tmp_path), read_manifest(tmp_path)
    # keys the version predates read as their defaults ...
    assert metrics.shrink_alpha == 1.0 and metrics.baselines == {}
    assert metrics.distribution is None and metrics.crps is None and metrics.source is None
    assert metrics.pooled_gate is None and metrics.backtest_folds == []
    assert manifest.evaluation is None and manifest.trained_on == []
    assert manifest.global_model is False and manifest.model_sha256 is None
    # ... files it never had read as None ...
    assert read_promotion(tmp_path) is None and read_distribution(tmp_path) is None
    # ... and are not added on the way back
    assert metrics.to_dict() == OLD_METRICS and manifest.to_dict() == OLD_MANIFEST
    out = tmp_path / "out"
    out.mkdir()
    write_metrics(out, metrics)
    write_manifest(out, manifest)
    for name in (METRICS_FILE, MANIFEST_FILE):
        assert (out / name).read_bytes() == (tmp_path / name).read_bytes()


def test_keys_of_a_newer_closecast_are_kept(tmp_path):
    shutil.copy(TODAY / METRICS_FILE, tmp_path / METRICS_FILE)
    data = json.loads((tmp_path / METRICS_FILE).read_text())
    data["distribution"]["model"]["new_score"] = {"x": 1}
    data["distribution"]["student_t_garch"] = {"crps": 0.3}
    data["new_section"] = [1, 2]
    (tmp_path / METRICS_FILE).write_text(json.dumps(data, indent=2))
    metrics = read_metrics(tmp_path)
    assert metrics.to_dict() == data
    assert metrics.distribution.model.new_score == {"x": 1}


def test_the_pooled_gate_and_the_backtest_are_added_where_the_files_keep_them():
    metrics = Metrics.model_validate(
        {k: v for k, v in read_metrics(TODAY).to_dict().items() if k != "backtest"})
    gate = PooledGate(accepted=True, dm=2.1, symbols=8, validation_crps_ratio=0.99, kept=True,
                      tolerance=0.01)
    gated = metrics.with_pooled_gate(gate).with_backtest(
        [{"fold": 1, "rmse_vs_naive": 0.9}, {"fold": 2, "rmse_vs_naive": 1.1}])
    out = gated.to_dict()
    assert list(out["distribution"]["model"])[-1] == "pooled_gate"
    assert out["distribution"]["model"]["pooled_gate"] == gate.to_dict()
    assert list(out)[-1] == "backtest" and out["backtest"]["mean_rmse_vs_naive"] == \
        pytest.approx(1.0)
    assert gated.pooled_gate == gate and Metrics.model_validate(out) == gated
    assert metrics.pooled_gate is None  # records are values: the original is unchanged
    with pytest.raises(ValueError, match="no gate"):
        Metrics.model_validate(OLD_METRICS).with_pooled_gate(gate)


def test_a_file_that_is_not_the_record_is_refused(tmp_path):
    (tmp_path / METRICS_FILE).write_text(json.dumps({"rmse": 1.0}))
    with pytest.raises(ValidationError, match="naive_rmse"):
        read_metrics(tmp_path)
    (tmp_path / PROMOTION_FILE).write_text("{not json")
    with pytest.raises(ValueError):
        read_promotion(tmp_path)
    with pytest.raises(OSError):
        read_manifest(tmp_path)
