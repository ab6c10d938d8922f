"""Plots drawn on request: a market-sized run registers versions without them, `closecast
report` draws them into the version and writes its report again, touching nothing else."""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path

import pytest

from flows.cli import main
from flows.training import train_flow
from tasks.core.config import RunConfig
from tasks.core.operations_config import MAX_REPORT_ARTIFACTS, ReportConfig
from tasks.core.training_config import GlobalModelConfig
from tasks.registry.integrity import check_version, damaged_files
from tasks.registry.reports import complete_report
from tasks.serving.predict import load_champion
from tests.conftest import tree_state

PLOTS = {"forecast.png", "loss.png", "residuals.png", "backtest.png", "fan.png",
         "calibration.png", "pit.png"}


def test_auto_draws_during_runs_whose_reports_the_ui_shows():
    auto = ReportConfig()
    assert auto.draws(1) and auto.draws(MAX_REPORT_ARTIFACTS)
    assert not auto.draws(MAX_REPORT_ARTIFACTS + 1) and not auto.draws(501)
    assert ReportConfig(plots="always").draws(501)
    assert not ReportConfig(plots="on_request").draws(1)


def _global_run(tiny_config: RunConfig, home: Path, plots: str):
    """The sample's two symbols through one global network (a market run's path)."""
    config = tiny_config.model_copy(update={
        "home": home, "symbols": ("AAL", "ZION"),
        "global_model": GlobalModelConfig(mode="global", batch_size=256,
                                          windows_per_epoch=2000, validation_windows=500),
        "report": ReportConfig(plots=plots)})
    return {r.symbol: r for r in train_flow(config)}


def _at_once(n: int, call, *args) -> list:
    """``call(*args)`` in ``n`` threads started together; their results."""
    results = []
    threads = [threading.Thread(target=lambda: results.append(call(*args))) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def _without_run_ids(text: str) -> str:
    """A report without what differs between two trainings of one network: the flow run and
    the model file's sha256 (Keras stamps the save time into the file)."""
    return re.sub(r"(flow run|network sha256): `[^`]*`", r"\1: -", text)


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_harness")
def test_report_draws_the_plots_a_run_left_for_later(tiny_config, tmp_path, capsys):
    lazy = _global_run(tiny_config, tmp_path / "lazy", "on_request")
    version = Path(lazy["AAL"].path)
    assert not (version / "plots").exists()
    assert damaged_files(version) == []  # a version without plots is whole
    assert load_champion(tmp_path / "lazy" / "models", "AAL") is not None
    report = (version / "report.md").read_text()
    assert "`closecast report AAL --version 1` draws them" in report
    assert "](plots/" not in report and "data:image/png" not in (
        version / "report.html").read_text()

    others = {k: v for k, v in tree_state(version).items() if not k.startswith("report.")}
    assert main(["report", "AAL", "--home", str(tmp_path / "lazy"), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["version"] == 1 and printed["drawn_now"] is True
    assert {p.name for p in (version / "plots").iterdir()} == PLOTS
    html = (version / "report.html").read_text()
    assert html.count("data:image/png;base64,") == len(PLOTS)
    after = tree_state(version)
    assert {k: v for k, v in after.items() if k in others} == others  # model, scores: untouched
    check_version(tmp_path / "lazy" / "models", "AAL", 1)

    # the same report a run drawing its plots writes for the same version
    eager = _global_run(tiny_config, tmp_path / "eager", "always")
    eager_dir = Path(eager["AAL"].path)
    assert {p.name for p in (eager_dir / "plots").iterdir()} == PLOTS
    assert _without_run_ids((eager_dir / "report.md").read_text()) == _without_run_ids(
        (version / "report.md").read_text())
    # a report an earlier closecast rendered with its plots is left as it was written
    with (eager_dir / "report.md").open("a") as report:
        report.write("\nRendered by an earlier closecast.\n")
    registered = tree_state(eager_dir)
    assert complete_report(tmp_path / "eager" / "models", "AAL", 1)[1] is False
    assert tree_state(eager_dir) == registered

    # asked again (twice at once): nothing is drawn or written
    results = _at_once(2, complete_report, tmp_path / "lazy" / "models", "AAL", 1)
    assert [drawn for _, drawn in results] == [False, False]
    assert tree_state(version) == after
    # ZION's version was not touched by AAL's report
    assert not (Path(lazy["ZION"].path) / "plots").exists()


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_harness")
def test_two_first_requests_at_once_draw_once(tiny_config, tmp_path):
    lazy = _global_run(tiny_config, tmp_path / "home", "on_request")
    results = _at_once(3, complete_report, tmp_path / "home" / "models", "ZION", 1)
    assert sorted(drawn for _, drawn in results) == [False, False, True]
    version = Path(lazy["ZION"].path)
    assert {p.name for p in (version / "plots").iterdir()} == PLOTS
    assert not list(version.parent.glob(".tmp-*")) and not list(version.glob(".tmp-*"))
