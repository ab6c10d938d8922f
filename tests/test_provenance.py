"""Who made a version's forecast: the same words on the console, `models list`, the report and
the Prefect summary, from metrics built as evaluation builds them."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from flows.models import list_models, model_records
from tasks.core.version_files import Manifest, Metrics, write_metrics
from tasks.distribution.distributions import ReturnDist
from tasks.distribution.gate import distribution_section
from tasks.evaluation.evaluate import baseline_metrics, forecast_metrics
from tasks.forecaster.shrink import gated_shrink, shrink
from tasks.registry.artifacts import summary_markdown, summary_rows
from tasks.registry.registry import RegisteredVersion
from tasks.reporting.provenance import (
    provenance,
    provenance_text,
    run_summary,
    source_counts,
    version_line,
)
from tasks.reporting.report import render_markdown

GATE_Z = 1.645
MANIFEST = Manifest(symbol="ZION", as_of="2016-12-30", features={}, split={}, model={},
                    data_fingerprint="f", flow_run_id="r")


def _frame(seed: int, scale: np.ndarray | None = None) -> pd.DataFrame:
    """A GARCH-like (or, given ``scale``, known-volatility) path split train/validation/test."""
    rng = np.random.default_rng(seed)
    if scale is None:
        r, var = np.empty(1200), 1e-4
        for t in range(len(r)):
            r[t] = np.sqrt(var) * rng.standard_t(5) * np.sqrt(3 / 5)
            var = 2e-6 + 0.08 * r[t] ** 2 + 0.9 * var
    else:
        r = scale * rng.standard_normal(len(scale))
    close = 50 * np.exp(np.concatenate([[0.0], r.cumsum()]))
    split = np.repeat(["train", "validation", "test"], [800, 200, 200])
    return pd.DataFrame({"date": pd.bdate_range("2010-01-04", periods=1200),
                         "base_close": close[:-1], "close": close[1:], "split": split})


def _metrics(frame: pd.DataFrame, closes: np.ndarray, lstm: ReturnDist) -> Metrics:
    """metrics.json as evaluation's score_frame builds it (point, shrink, distribution)."""
    val, test = (frame["split"] == "validation").to_numpy(), (frame["split"] == "test").to_numpy()
    base, actual = frame["base_close"].to_numpy(), frame["close"].to_numpy()
    alpha, dm = gated_shrink(closes[val], base[val], actual[val], GATE_Z)
    rows = frame[test].reset_index(drop=True)
    metrics = forecast_metrics(rows, shrink(closes[test], base[test], alpha), 800)
    metrics.update(shrink_alpha=alpha, validation_dm=dm,
                   unshrunk_rmse_vs_naive=baseline_metrics(rows, closes[test])["rmse_vs_naive"],
                   baselines={"naive": baseline_metrics(rows, base[test])})
    point = shrink(closes, base, alpha)
    metrics["distribution"], _, _ = distribution_section(frame, lstm, GATE_Z,
                                                         np.log(point / base))
    return Metrics.model_validate(json.loads(json.dumps(metrics)))  # as read back


@pytest.fixture(scope="module")
def baseline_range() -> Metrics:
    """A noisy point forecast (gated to naive) and a too-wide LSTM range (a baseline wins)."""
    frame = _frame(3)
    noise = np.random.default_rng(4).normal(0, 0.02, len(frame))
    closes = frame["base_close"].to_numpy() * np.exp(noise)
    wide = ReturnDist.of(np.zeros(len(frame)), np.full(len(frame), 0.2), 4.0)
    return _metrics(frame, closes, wide)


@pytest.fixture(scope="module")
def lstm_range() -> Metrics:
    """A point forecast with real skill and an LSTM that knows each day's volatility."""
    scale = np.random.default_rng(1).choice([0.002, 0.04], size=1200)
    frame = _frame(2, scale)
    base, actual = frame["base_close"].to_numpy(), frame["close"].to_numpy()
    oracle = ReturnDist.of(np.zeros(len(frame)), scale)
    return _metrics(frame, 0.5 * base + 0.5 * actual, oracle)


def _expected(metrics: Metrics, point: str) -> str:
    dist = metrics.distribution
    model = dist.model
    return (f"point = {point} (x{metrics.rmse_vs_naive:.3f}); range: {model.source}, "
            f"CRPS x{model.crps_vs_constant:.3f} vs constant, "
            f"x{model.crps / dist.garch.crps:.3f} vs GARCH-t; "
            f"80% held {model.coverage['80'] * 100:.0f}% of test days")


def test_a_gated_version_names_naive_and_the_baseline_range(baseline_range):
    m = baseline_range
    assert m.shrink_alpha == 0 and m.source != "lstm"
    text = provenance_text(m)
    assert text == _expected(m, "naive")
    assert text.startswith("point = naive (x1.000); range: ")
    who = provenance(m)
    assert who.source == m.source
    assert who.coverage_80 == m.distribution.model.coverage["80"]


def test_a_skilled_version_names_the_lstm_for_point_and_range(lstm_range):
    m = lstm_range
    assert m.shrink_alpha > 0 and m.source == "lstm"
    text = provenance_text(m)
    assert text == _expected(m, "lstm")
    assert re.match(r"point = lstm \(x0\.\d{3}\); range: lstm, CRPS x0\.\d{3} vs constant, "
                    r"x0\.\d{3} vs GARCH-t; 80% held \d+% of test days$", text), text


def test_an_old_version_without_a_distribution_still_lists():
    old = Metrics(rmse=1.2, naive_rmse=1.0, rmse_vs_naive=1.2)  # before shrink and ranges
    assert provenance_text(old) == \
        "point = lstm (x1.200); range: none (no distribution in metrics.json)"
    assert provenance(old).source == "none"
    assert provenance_text(None) == "point = ?; range: none (no distribution in metrics.json)"


def test_counts_by_source_and_the_closing_line():
    assert source_counts(["garch", "garch"]) == "ranges: 2 garch"
    assert source_counts(["garch", "lstm"]) == "ranges: 1 lstm, 1 garch"
    assert source_counts(["none", "ewma", "ewma", "lstm"]) == "ranges: 2 ewma, 1 lstm, 1 none"
    assert run_summary([True, False], ["garch", "lstm"]) == \
        "2 version(s) registered, 1 promoted; ranges: 1 lstm, 1 garch"


def test_every_surface_says_the_same_words(tmp_path, baseline_range, lstm_range):
    text = {"AAL": provenance_text(baseline_range), "ZION": provenance_text(lstm_range)}
    results = [RegisteredVersion("AAL", 1, str(tmp_path / "AAL"), True, "promoted: x",
                                 baseline_range),
               RegisteredVersion("ZION", 3, str(tmp_path / "ZION"), False, "not promoted: y",
                                 lstm_range)]
    # the console's per-symbol line
    assert version_line("AAL", 1, text["AAL"], True) == f"AAL v1: {text['AAL']}  PROMOTED"
    # the report
    for r in results:
        markdown = render_markdown(r.symbol, str(r.version), r.metrics, r.reason, MANIFEST)
        assert f"**Forecast:** {text[r.symbol]}\n" in markdown
    # the Prefect summary artifact: table columns and the Markdown's lines
    rows = summary_rows(results)
    assert [row["forecast"] for row in rows] == [text["AAL"], text["ZION"]]
    assert [row["distribution"] for row in rows] == \
        [baseline_range.source, "lstm"]
    assert [row["point"] for row in rows] == ["naive", "lstm"]
    assert rows[1]["crps_vs_garch_t"] == pytest.approx(
        lstm_range.crps / lstm_range.distribution.garch.crps,
        abs=1e-4)
    markdown = summary_markdown(rows)
    assert f"- AAL v1: {text['AAL']}  PROMOTED\n" in markdown
    assert f"- ZION v3: {text['ZION']}  kept, not promoted\n" in markdown
    assert "2 version(s) registered, 1 promoted; ranges: 1 lstm, 1 " in markdown
    # `models list` (text and --json) reads the same metrics.json back
    for r in results:
        path = tmp_path / "models" / r.symbol / str(r.version)
        path.mkdir(parents=True)
        write_metrics(path, r.metrics)
    listing = list_models(tmp_path / "models").splitlines()
    for symbol, version in (("AAL", "1"), ("ZION", "3")):
        row = next(i for i, line in enumerate(listing) if line.split()[:2] == [symbol, version])
        assert listing[row + 1] == " " * 14 + text[symbol]
    records = model_records(tmp_path / "models")
    assert [(r["forecast"], r["source"]) for r in records] == \
        [(text["AAL"], rows[0]["distribution"]), (text["ZION"], "lstm")]


def test_models_list_shows_an_old_version_with_range_none(tmp_path):
    path = tmp_path / "models" / "AAL" / "1"
    path.mkdir(parents=True)
    (path / "metrics.json").write_text(json.dumps(
        {"rmse": 0.9, "naive_rmse": 1.0, "rmse_vs_naive": 0.9, "shrink_alpha": 0.5}))
    listing = list_models(tmp_path / "models").splitlines()
    assert listing[1].split()[:2] == ["AAL", "1"]
    assert listing[2].strip() == "point = lstm (x0.900); range: none (no distribution in " \
                                 "metrics.json)"
    record = model_records(tmp_path / "models")[0]
    assert record["source"] == "none" and record["crps_vs_constant"] is None
    assert Path(record["path"]) == path


def test_the_report_describes_the_head_that_made_the_network(lstm_range):
    """The method note of a hybrid version says it corrects GARCH-t; a Student-t head's says
    its last layer predicts the distribution from nothing."""
    def method(head: str) -> str:
        manifest = MANIFEST.model_copy(update={"model": {**MANIFEST.model, "head": head}})
        markdown = render_markdown("ZION", "1", lstm_range, "promoted: x", manifest)
        return next(line for line in markdown.splitlines() if line.startswith("Method:"))

    assert "corrects GARCH(1,1) Student-t" in method("hybrid")
    assert "starts at zero" in method("hybrid") and "Parkinson" in method("hybrid")
    assert "last layer predicts the location" in method("student_t")


def test_the_reports_tables_say_who_made_the_point_forecast(lstm_range):
    """A version whose gate shrank the LSTM to naive is not labelled "LSTM" in its tables."""
    naive = lstm_range.model_copy(update={"shrink_alpha": 0.0})
    shrunk = lstm_range.model_copy(update={"shrink_alpha": 0.4})
    naive_md = render_markdown("ZION", "1", naive, "promoted: x", MANIFEST)
    shrunk_md = render_markdown("ZION", "1", shrunk, "promoted: x", MANIFEST)
    assert "| metric | this version (= naive) | naive |" in naive_md
    assert "| this version (= naive) |" in naive_md and "LSTM (shrunk)" not in naive_md
    assert "| metric | this version (LSTM, shrunk) | naive |" in shrunk_md
