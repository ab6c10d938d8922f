"""Many symbols, the global model, artifacts, `closecast models` and `closecast predict`."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from flows.cli import main
from flows.training import flow_for
from tasks.core.config import RunConfig
from tasks.core.training_config import BacktestConfig, FeatureConfig, ModelConfig
from tests.conftest import SAMPLE

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, prefect_harness):
    """One run on AAL and ZION with a global model: 2 versions per symbol."""
    config = RunConfig(home=tmp_path_factory.mktemp("predict") / "home", input=SAMPLE,
                       features=FeatureConfig(window=5, ohlcv=True, rolling=(5,)),
                       model=ModelConfig(units=(4,), epochs=2, batch_size=256, patience=2),
                       backtest=BacktestConfig(folds=2, epochs=1), global_model=True)
    state = flow_for(config)(config, return_state=True)
    return config, state.result(), state.state_details.flow_run_id


def _artifact(key: str, flow_run_id):
    """The artifact with this key that the given flow run created."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        ArtifactFilterKey,
    )

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(artifact_filter=ArtifactFilter(
            key=ArtifactFilterKey(any_=[key]),
            flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])))
    assert len(found) == 1, key
    return found[0]


def test_symbols_fan_out_with_a_global_model(trained):
    from tests.test_flow import task_states

    config, results, run_id = trained
    assert sorted((r.symbol, r.version) for r in results) == \
        [("AAL", 1), ("AAL", 2), ("ZION", 1), ("ZION", 2)]
    manifests = {(r.symbol, r.version): json.loads((Path(r.path) / "manifest.json").read_text())
                 for r in results}
    assert {key: m["trained_on"] for key, m in manifests.items()} == {
        ("AAL", 1): ["AAL"], ("ZION", 1): ["ZION"],
        ("AAL", 2): ["AAL", "ZION"], ("ZION", 2): ["AAL", "ZION"]}
    # the global network is stored once, under its content hash; both versions reference it
    shared = list((config.home / "models" / "_shared").iterdir())
    sha = manifests["AAL", 2]["model_sha256"]
    assert [p.name for p in shared] == [f"{sha}.keras"]
    assert manifests["ZION", 2]["model_sha256"] == sha
    from tasks.core.hashing import file_sha256

    assert file_sha256(shared[0]) == sha
    for symbol in ("AAL", "ZION"):
        version = config.home / "models" / symbol / "2"
        assert not (version / "model.keras").exists()
        assert json.loads((version / "model-ref.json").read_text())["sha256"] == sha
        assert (config.home / "models" / symbol / "1" / "model.keras").is_file()
    for r in results:
        m = json.loads((Path(r.path) / "metrics.json").read_text())
        assert {"moving_average_5", "linear_regression", "naive"} <= set(m["baselines"])
        assert [f["fold"] for f in m["backtest"]["folds"]] == [1, 2]
        assert 0.0 <= m["shrink_alpha"] <= 1.0 and "validation_dm" in m
        report = (Path(r.path) / "report.md").read_text()
        assert "Walk-forward backtest" in report and "linear_regression" in report
        assert "alpha" in report
        assert (Path(r.path) / "plots" / "backtest.png").stat().st_size > 0
        assert (Path(r.path) / "report.html").read_text().count("data:image/png;base64,") == 7
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id])))
    names = [run.name.rsplit("-", 1)[0] for run in runs]
    assert names.count("train") == 2 and names.count("train-global") == 1
    assert names.count("register") == 4 and names.count("backtest") == 2
    # the global model's backtest trains once per fold for all symbols; chunks of symbols
    # (here one each: about four chunks per worker) are evaluated as soon as the final network
    # is trained, then backtested and plotted
    assert names.count("train-global-fold") == 2 and names.count("score-global") == 2
    assert names.count("evaluate-global") == 2
    assert names.count("evaluate") == 2 and names.count("plot") == 2  # the per-symbol models'

    assert set(task_states(run_id).values()) == {"Completed"}
    table = _artifact("training-summary", run_id)
    rows = json.loads(table.data) if isinstance(table.data, str) else table.data
    assert len(rows) == 4 and {row["model"] for row in rows} == {"per-symbol", "global"}
    assert "Training run summary" in _artifact("training-summary-report", run_id).data


def test_models_cli_list_show_promote(trained, capsys):
    config, _, _ = trained
    home = str(config.home)
    assert main(["models", "list", "--home", home]) == 0
    listing = capsys.readouterr().out.splitlines()
    assert len(listing) == 9 and listing[1].split()[:2] == ["AAL", "1"]  # 4 versions, 2 lines each
    assert listing[2].strip().startswith("point = ") and "range: " in listing[2]
    assert main(["models", "promote", "AAL", "2", "--home", home]) == 0
    assert "AAL champion is now version 2" in capsys.readouterr().out
    assert main(["models", "show", "AAL", "--home", home]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["version"] == 2 and shown["manifest"]["symbol"] == "AAL"
    assert main(["models", "promote", "AAL", "9", "--home", home]) == 1
    assert "no version 9" in capsys.readouterr().err
    assert main(["models", "list", "AAL", "--home", home]) == 0
    assert "champion" in [line for line in capsys.readouterr().out.splitlines()
                          if line.split()[:2] == ["AAL", "2"]][0]


def test_predict_json_writes_forecast_and_plot(trained, capsys):
    config, _, _ = trained
    home = str(config.home)
    assert main(["models", "promote", "ZION", "1", "--home", home]) == 0
    capsys.readouterr()
    assert main(["predict", "--symbol", "ZION", "--horizon", "3", "--home", home, "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["symbol"] == "ZION" and out["version"] == 1
    assert [row["date"] for row in out["forecast"]] == ["2017-01-02", "2017-01-03", "2017-01-04"]
    keys = ["date", "close", "lower_50", "upper_50", "lower_80", "upper_80", "lower_95",
            "upper_95"]
    assert all(sorted(row) == sorted(keys) for row in out["forecast"])
    for row in out["forecast"]:
        assert row["lower_95"] < row["lower_80"] < row["lower_50"] < row["close"] \
            < row["upper_50"] < row["upper_80"] < row["upper_95"]
    widths = [row["upper_80"] - row["lower_80"] for row in out["forecast"]]
    assert widths == sorted(widths) and widths[-1] > widths[0]
    written = sorted((config.home / "predictions" / "ZION").iterdir())
    assert [p.suffix for p in written] == [".csv", ".png"]
    table = pd.read_csv(written[0])
    assert len(table) == 3 and table["close"].round(6).tolist() == \
        [row["close"] for row in out["forecast"]]
    assert not (config.home / "models" / "ZION" / "1" / "predictions").exists()


def test_recursive_forecast_feeds_each_forecast_back(trained):
    from tasks.data.lake import read_partition
    from tasks.features.feature_table import feature_rows
    from tasks.features.windows import window_array
    from tasks.forecaster.forecaster import point_closes
    from tasks.forecaster.paths import forecast_recursive, point_offsets
    from tasks.serving.predict import load_champion

    config, _, _ = trained
    champion = load_champion(config.home / "models", "ZION")
    raw = replace(champion.forecaster, alpha=1.0)
    prices = read_partition(config.home / "lake", "ZION")
    forecast = forecast_recursive(raw, prices, 2)
    one = forecast_recursive(raw, prices.iloc[:-1], 1)
    rows = feature_rows(prices, raw.features, raw.scaler, len(prices) - 1)
    params = raw.network.params(window_array(rows), point_offsets(raw.scaler))  # a hybrid's loc
    expected = point_closes(params, rows["base_close"].to_numpy(), raw.scaler, raw.features)
    assert one["close"].iloc[0] == pytest.approx(expected[0], rel=1e-5)
    assert forecast["close"].iloc[0] != pytest.approx(prices["close"].iloc[-1], rel=1e-9)
    assert np.isfinite(forecast["close"]).all() and len(forecast) == 2


def test_symbols_sharing_a_network_are_forecast_together_as_each_alone(trained, tmp_path):
    """The daily flow asks a global network once per step for all the symbols it serves: the
    same forecasts as forecasting each symbol alone."""
    from tasks.data.lake import read_partition
    from tasks.forecaster.paths import forecast_recursive, forecast_recursive_many
    from tasks.serving.predict import load_champion

    config, _, _ = trained
    home = tmp_path / "home"
    shutil.copytree(config.home, home)
    for symbol in ("AAL", "ZION"):  # the global version of each becomes its champion
        (shared,) = [p.name for p in (home / "models" / symbol).iterdir()
                     if (p / "model-ref.json").is_file()]
        assert main(["models", "promote", symbol, shared, "--home", str(home)]) == 0
    champions = [load_champion(home / "models", s) for s in ("AAL", "ZION")]
    forecasters = [c.forecaster for c in champions]
    assert forecasters[0].network.model is forecasters[1].network.model  # loaded once
    cases = [(f, read_partition(home / "lake", c.symbol))
             for c, f in zip(champions, forecasters, strict=True)]
    cases.append((forecasters[0], cases[0][1].iloc[:-7]))  # a symbol twice, at another date
    together = forecast_recursive_many(cases, 3)
    for (forecaster, prices), frame in zip(cases, together, strict=True):
        alone = forecast_recursive(forecaster, prices, 3)
        pd.testing.assert_frame_equal(frame, alone, check_exact=False, rtol=1e-6)
        assert frame["date"].iloc[0] == prices["date"].iloc[-1] + pd.offsets.BDay(1)
    assert forecast_recursive_many([], 3) == []


def test_predict_errors_are_clear(trained, tmp_path, capsys):
    config, _, _ = trained
    assert main(["predict", "--symbol", "MSFT", "--home", str(config.home)]) == 1
    assert "MSFT has no champion" in capsys.readouterr().err
    home = tmp_path / "copy"
    shutil.copytree(config.home, home)
    champion = json.loads((home / "models" / "ZION" / "champion.json").read_text())
    model = home / "models" / "ZION" / str(champion["version"]) / "model.keras"
    model.write_bytes(b"not a keras file")
    assert main(["predict", "--symbol", "ZION", "--home", str(home)]) == 1
    assert "damaged" in capsys.readouterr().err
    model.unlink()
    assert main(["predict", "--symbol", "ZION", "--home", str(home), "--json"]) == 1
    assert "model.keras missing or empty" in capsys.readouterr().err


def test_lstm_source_paths_feed_sampled_returns_back(trained):
    """A version whose own Student-t distribution won the gate: paths run through the network,
    and their intervals widen with the horizon."""
    from tasks.data.lake import read_partition
    from tasks.forecaster.paths import forecast_fans
    from tasks.serving.predict import load_champion

    config, _, _ = trained
    forecaster = load_champion(config.home / "models", "ZION").forecaster
    assert forecaster.distribution is not None
    as_lstm = replace(forecaster, distribution=forecaster.distribution.model_copy(
        update={"source": "lstm"}))
    prices = read_partition(config.home / "lake", "ZION")
    (fan,) = forecast_fans([(as_lstm, prices)], 3)
    width = (fan["upper_80"] - fan["lower_80"]).to_numpy()
    assert np.all(np.diff(width) > 0)
    assert np.all(fan["lower_95"] < fan["close"]) and np.all(fan["close"] < fan["upper_95"])
    assert fan.equals(forecast_fans([(as_lstm, prices)], 3)[0])  # fixed seed: reproducible


def test_version_saved_before_distributions_still_predicts(trained, tmp_path, capsys):
    config, _, _ = trained
    home = tmp_path / "old"
    shutil.copytree(config.home, home)
    champion = json.loads((home / "models" / "AAL" / "champion.json").read_text())
    (home / "models" / "AAL" / str(champion["version"]) / "distribution.json").unlink()
    assert main(["predict", "--symbol", "AAL", "--horizon", "2", "--home", str(home),
                 "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["source"] is None and len(out["forecast"]) == 2
    assert all(row["lower_80"] is None and row["close"] > 0 for row in out["forecast"])
