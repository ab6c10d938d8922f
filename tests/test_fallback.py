"""A forecast for every symbol: a symbol's only version that loses to a baseline on its test
window becomes a fallback champion serving that baseline's forecast, and every place a person
looks says so (README: "A forecast for every symbol")."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from flows.cli import main
from flows.training import flow_for
from tasks.core.config import RunConfig
from tasks.core.training_config import (
    BacktestConfig,
    EvaluationConfig,
    FeatureConfig,
    ModelConfig,
)
from tasks.core.version_files import read_metrics
from tasks.registry.promotion import fallback_for, promotion_decision
from tasks.registry.records import Fallback, champion_record, fallback_of
from tests.conftest import REAL, SAMPLE

RECORDS = REAL / "version_records"
GOLDEN_HOME = REAL / "golden" / "version_v1" / "home"


def test_the_fallback_names_each_baseline_the_version_lost_to():
    metrics = read_metrics(RECORDS)
    constant = metrics.distribution.constant.crps
    assert fallback_for(metrics) == Fallback()  # it passed the guard: nothing to fall back on
    worse_point = metrics.model_copy(update={"rmse": metrics.naive_rmse * 1.01})
    assert fallback_for(worse_point) == Fallback(point="naive")
    assert not promotion_decision(worse_point, None, None)[0]
    model = metrics.distribution.model.model_copy(update={"crps": constant * 1.05})
    worse_range = metrics.model_copy(update={
        "distribution": metrics.distribution.model_copy(update={"model": model})})
    assert fallback_for(worse_range) == Fallback(range="constant")
    assert Fallback(point="naive", range="constant").text() == \
        "naive point forecast and constant volatility's range"


def test_a_champion_record_keeps_its_shape_unless_it_falls_back():
    metrics = read_metrics(RECORDS)
    plain = champion_record(1, metrics, "promoted: ...")
    assert "fallback" not in plain and fallback_of(plain) is None
    fallen = champion_record(1, metrics, "fallback champion", Fallback(range="constant"))
    assert fallback_of(json.loads(json.dumps(fallen))) == Fallback(range="constant")


@pytest.mark.slow
def test_a_fallback_champion_serves_constant_volatility(tmp_path, prefect_harness, capsys):
    """A real version (ZION v1, its own LSTM range) as a fallback champion serving constant
    volatility: predict's fan is the constant baseline's, centred on the naive path."""
    from tasks.data.lake import read_partition
    from tasks.distribution.gate import price_returns, saved_baseline_variance
    from tasks.distribution.simulate import fan, simulate_baseline
    from tasks.serving.predict import load_champion

    home = tmp_path / "home"
    shutil.copytree(GOLDEN_HOME, home)
    champion_file = home / "models" / "ZION" / "champion.json"
    record = json.loads(champion_file.read_text())
    champion_file.write_text(json.dumps({**record, "fallback": {"point": "naive",
                                                                  "range": "constant"}}))
    forecaster = load_champion(home / "models", "ZION").forecaster
    assert forecaster.alpha == 0.0 and forecaster.source == "constant"
    assert main(["predict", "--symbol", "ZION", "--horizon", "3", "--home", str(home),
                 "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    prices = read_partition(home / "lake", "ZION")
    last = float(prices["close"].iloc[-1])
    saved = forecaster.distribution
    var = saved_baseline_variance(saved, price_returns(prices)).iloc[-1]
    expected = fan(last, simulate_baseline("constant", saved.params(), np.array([var]), 3)[0])
    assert out["source"] == "constant"
    for day, row in enumerate(out["forecast"]):
        assert row["close"] == pytest.approx(last, rel=1e-6)  # naive: tomorrow = today
        assert row["upper_80"] == pytest.approx(expected["upper_80"][day], rel=1e-5)
    assert main(["models", "list", "ZION", "--home", str(home)]) == 0
    assert "champion (fallback: serves naive point forecast and constant volatility's range)" \
        in capsys.readouterr().out
    assert main(["status", "--home", str(home)]) == 0
    assert "fallback champions" in capsys.readouterr().out


@pytest.mark.slow
def test_a_symbols_only_version_that_loses_to_naive_still_serves(tmp_path, prefect_harness,
                                                                capsys):
    """A raw point network (no shrink toward naive, a learning rate that overshoots) loses to
    naive on its test window: not promoted, yet the symbol's champion serves the naive point
    forecast, and the run, `models list` and `predict` all say so."""
    config = RunConfig(home=tmp_path / "home", input=SAMPLE, symbols=("AAL",),
                       features=FeatureConfig(window=5),
                       model=ModelConfig(units=(4,), epochs=2, batch_size=256, patience=2,
                                         head="point", learning_rate=0.5),
                       evaluation=EvaluationConfig(shrink=False),
                       backtest=BacktestConfig(folds=2, epochs=1))
    (result,) = flow_for(config)(config)
    assert result.metrics.rmse > result.metrics.naive_rmse  # it lost, as set up
    assert not result.promoted and result.fallback == "naive point forecast"
    champion = json.loads((config.home / "models" / "AAL" / "champion.json").read_text())
    assert champion["version"] == result.version
    assert champion["fallback"] == {"point": "naive", "range": None}
    assert champion["reason"].startswith("fallback champion, serving naive point forecast: "
                                         "not promoted: RMSE")
    assert main(["predict", "--symbol", "AAL", "--horizon", "2", "--home", str(config.home),
                 "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    from tasks.data.lake import read_partition

    last = float(read_partition(config.home / "lake", "AAL")["close"].iloc[-1])
    assert [row["close"] for row in out["forecast"]] == [pytest.approx(last, rel=1e-9)] * 2
    assert main(["models", "list", "--home", str(config.home)]) == 0
    assert "champion (fallback: serves naive point forecast)" in capsys.readouterr().out
    assert Path(result.path, "metrics.json").is_file()  # the version itself is unchanged
