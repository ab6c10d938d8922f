"""The training flow on a real Prefect engine: outputs, caching, --json, bad input."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from flows.cli import main
from flows.training import train_flow
from tasks.core.config import RunConfig
from tasks.core.training_config import EvaluationConfig, FeatureConfig
from tests.conftest import tree_state

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]

VERSION_FILES = ["model.keras", "scaler.json", "config.json", "manifest.json", "metrics.json",
                 "report.md", "report.html", "plots/forecast.png", "plots/loss.png",
                 "plots/residuals.png"]
METRIC_KEYS = {"rmse", "mae", "mape", "directional_accuracy", "naive_rmse", "naive_mae",
               "rmse_vs_naive", "n_train", "n_test", "test_start", "test_end"}


def task_states(flow_run_id) -> dict[str, str]:
    """Task name -> state name of every task run of a flow run, read from the Prefect API."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    only_this_run = FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
    deadline = time.monotonic() + 30
    with get_client(sync_client=True) as client:
        while True:  # task-run states reach the API as events, a moment after the flow ends
            runs = client.read_task_runs(flow_run_filter=only_this_run)
            if all(r.state is not None and r.state.is_final() for r in runs) \
                    or time.monotonic() > deadline:
                break
            time.sleep(0.5)
    return {run.name.rsplit("-", 1)[0]: run.state.name if run.state else "?" for run in runs}


def run(config: RunConfig):
    state = train_flow(config, return_state=True)
    return state.result(), state.state_details.flow_run_id


def test_run_writes_a_complete_version_and_caches_the_rerun(tiny_config):
    results, first_id = run(tiny_config)
    (result,) = results
    version = Path(result.path)
    assert result.symbol == "AAL" and result.version == 1 and version.name == "1"
    for name in VERSION_FILES:
        assert (version / name).stat().st_size > 0, name
    metrics = json.loads((version / "metrics.json").read_text())
    assert METRIC_KEYS <= set(metrics) and metrics["n_test"] > 200
    manifest = json.loads((version / "manifest.json").read_text())
    assert {"as_of", "data_fingerprint", "features", "model", "libraries", "git_commit",
            "flow_run_id", "created_at"} <= set(manifest)
    assert manifest["flow_run_id"] == str(first_id) and manifest["as_of"] == "2016-12-30"
    report = (version / "report.md").read_text()
    assert "naive" in report and "Promotion" in report
    assert "data:image/png;base64," in (version / "report.html").read_text()
    champion = version.parent / "champion.json"
    assert champion.exists() == result.promoted
    assert set(task_states(first_id).values()) == {"Completed"}

    home = tiny_config.home
    before = tree_state(home / "lake") | tree_state(home / "models")
    again, second_id = run(tiny_config)
    assert again == results
    assert set(task_states(second_id).values()) == {"Cached"}, task_states(second_id)
    assert tree_state(home / "lake") | tree_state(home / "models") == before


def _recomputed(flow_run_id) -> set[str]:
    return {name for name, state in task_states(flow_run_id).items() if state != "Cached"}


def test_changes_recompute_exactly_what_is_downstream(tiny_config, tmp_path):
    run(tiny_config)
    downstream_of_model = {"train", "train-backtest-folds", "evaluate", "backtest", "plot",
                           "candidate", "register", "publish-artifacts"}
    model = tiny_config.model.model_copy(update={"epochs": 1})
    results, run_id = run(tiny_config.model_copy(update={"model": model}))
    assert _recomputed(run_id) == downstream_of_model and results[0].version == 2

    features = FeatureConfig(window=6)
    _, run_id = run(tiny_config.model_copy(update={"features": features}))
    # The window sets the minimum history validation asks for; the stored rows stay as they are.
    assert _recomputed(run_id) == downstream_of_model | {"prepare-dataset", "validate"}

    copy = tmp_path / "renamed.csv"
    copy.write_bytes(Path(tiny_config.input_path).read_bytes())
    _, run_id = run(tiny_config.model_copy(update={"input": copy}))
    assert _recomputed(run_id) == set(), "same bytes under another name is a cache hit"

    changed = tmp_path / "changed.csv"
    changed.write_bytes(copy.read_bytes().replace(b"2016-12-30,AAL,", b"2016-12-30,AAL,", 1)
                        + b"2017-01-03,AAL,29.0,29.5,28.5,29.9,1000\n")
    results, run_id = run(tiny_config.model_copy(update={"input": changed}))
    assert _recomputed(run_id) == {"ingest", "validate", "store-prices", "prepare-dataset"} \
        | downstream_of_model
    assert json.loads((Path(results[0].path) / "manifest.json").read_text())["as_of"] == \
        "2017-01-03"


def test_gate_z_rescores_without_retraining(tiny_config):
    """An evaluation-only setting re-scores, re-plots and re-registers; nothing upstream of the
    scoring (ingest, features, training, the backtest's fold training) runs again."""
    run(tiny_config)
    scoring = EvaluationConfig(gate_z=0.0)
    results, run_id = run(tiny_config.model_copy(update={"evaluation": scoring}))
    states = task_states(run_id)
    cached = ("ingest", "validate", "store-prices", "prepare-dataset", "train",
              "train-backtest-folds")
    assert states == {**{name: "Cached" for name in cached},
                      **{name: "Completed" for name in ("evaluate", "backtest", "plot",
                                                        "candidate", "register",
                                                        "publish-artifacts")}}
    assert results[0].version == 2
    saved = json.loads((Path(results[0].path) / "manifest.json").read_text())
    assert saved["evaluation"]["gate_z"] == 0.0


def test_cli_json_summary_is_the_last_line(tmp_path, capsys):
    home = tmp_path / "home"
    code = main(["run", "--symbols", "ZION", "--epochs", "1", "--home", str(home), "--json"])
    assert code == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    summary = json.loads(last)
    (model,) = summary["models"]
    assert summary["flow_run_id"] and model["symbol"] == "ZION" and model["version"] == 1
    assert Path(model["path"]) == home / "models" / "ZION" / "1"
    assert METRIC_KEYS <= set(model["metrics"]) and isinstance(model["promoted"], bool)
    assert model["source"] == model["metrics"]["distribution"]["model"]["source"]


def test_run_then_predict_works_right_away(tmp_path, capsys):
    """`closecast run` ends with a champion (a gated version ties the baselines and is promoted)
    and `closecast predict` forecasts intervals with it straight after."""
    home = str(tmp_path / "home")
    assert main(["run", "--symbols", "AAL", "--epochs", "1", "--home", home]) == 0
    out = capsys.readouterr().out.splitlines()
    (line,) = [line for line in out if line.startswith("AAL v1: ")]
    assert re.match(r"AAL v1: point = (naive|lstm) \(x\d\.\d{3}\); range: (lstm|garch|ewma|"
                    r"constant), CRPS x\d\.\d{3} vs constant, x\d\.\d{3} vs GARCH-t; 80% held "
                    r"\d+% of test days  PROMOTED$", line), line
    source = line.split("range: ")[1].split(",")[0]
    assert out[-1] == f"1 version(s) registered, 1 promoted; ranges: 1 {source}"
    assert main(["predict", "--symbol", "AAL", "--horizon", "5", "--home", home, "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["symbol"] == "AAL" and out["version"] == 1 and len(out["forecast"]) == 5
    assert out["source"] in {"lstm", "constant", "ewma", "garch"}
    first, last = out["forecast"][0], out["forecast"][-1]
    assert first["lower_95"] < first["lower_80"] < first["close"] < first["upper_80"] \
        < first["upper_95"]
    assert last["upper_80"] - last["lower_80"] > first["upper_80"] - first["lower_80"]
    metrics = json.loads((tmp_path / "home" / "models" / "AAL" / "1" / "metrics.json")
                         .read_text())
    assert set(metrics["distribution"]) == {"model", "constant", "ewma", "garch"}
    assert all("distribution" in fold for fold in metrics["backtest"]["folds"])


GOOD_ROW = "2016-01-04,AAL,10,11,9,12,100\n"
HEADER = "date,symbol,open,close,low,high,volume\n"


def test_validate_command(tmp_path, capsys):
    from tests.conftest import REAL

    assert main(["validate", "--input", str(REAL / "WEN.csv"), "--home", str(tmp_path)]) == 0
    assert "OK" in capsys.readouterr().out
    bad = tmp_path / "x.csv"
    bad.write_text(HEADER + GOOD_ROW + GOOD_ROW)
    assert main(["validate", "--input", str(bad), "--home", str(tmp_path)]) == 1
    out, err = capsys.readouterr()
    assert "unique (symbol, date)" in err
    assert "FAILED  unique (symbol, date): 2 row(s)" in out and "2016-01-04" in out
    # too little history is a note, not a broken rule: the rows would be kept
    assert ("NOTE    1 symbol(s) with less history than a model needs (77 days), kept: AAL "
            "(1 day)") in out
    assert "--on-invalid drop would quarantine 2 of the 2 rows" in out
    assert "Data Docs: " in out
    assert not (tmp_path / "lake").exists()
