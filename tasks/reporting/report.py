"""Report: report.md and a self-contained report.html for one model version."""

from __future__ import annotations

import base64
import threading
from pathlib import Path

from tasks.core.markdown import escape
from tasks.core.paths import confined
from tasks.core.version_files import Manifest, Metrics, PointScores
from tasks.reporting.distribution_report import distribution_lines
from tasks.reporting.provenance import provenance_text

METRIC_ROWS = [("RMSE", "rmse", "naive_rmse"), ("MAE", "mae", "naive_mae"),
               ("MAPE %", "mape", "naive_mape")]


def direction_text(scores: Metrics | PointScores) -> str:
    """Directional accuracy, or a dash when the forecast never calls a direction (= naive)."""
    if scores.direction_calls == 0:
        return "– (no move called)"
    return f"{scores.directional_accuracy:.3f}"


def metrics_table(metrics: Metrics) -> list[list[str]]:
    """Rows of (metric, model, naive) for the report."""
    rows = [[name, f"{getattr(metrics, m):.4f}", f"{getattr(metrics, n):.4f}"]
            for name, m, n in METRIC_ROWS]
    rows.append(["Directional accuracy", direction_text(metrics), "–"])
    rows.append(["RMSE / naive RMSE", f"{metrics.rmse_vs_naive:.4f}", "1.0000"])
    return rows


def verdict(metrics: Metrics) -> str:
    """One honest sentence comparing the model with the naive baseline."""
    ratio = metrics.rmse_vs_naive
    if metrics.shrink_alpha == 0 and ratio == 1:
        unshrunk = metrics.unshrunk_rmse_vs_naive
        return ("The LSTM showed no reliable gain over the naive forecast on the validation split, "
                "so this version forecasts exactly \"tomorrow = today\" (shrink alpha = 0); the "
                f"raw LSTM's test RMSE is {ratio if unshrunk is None else unshrunk:.4f}× "
                "the naive one.")
    if ratio < 1:
        return f"The model beats the naive forecast: its RMSE is {(1 - ratio) * 100:.1f}% lower."
    return (f"The model does NOT beat the naive forecast \"tomorrow = today\": its RMSE is "
            f"{(ratio - 1) * 100:.1f}% higher. Use the naive forecast instead of this model.")


def point_name(metrics: Metrics) -> str:
    """Who makes the version's point forecast: naive when the gate shrank the LSTM to it."""
    if metrics.shrink_alpha == 0:
        return "this version (= naive)"
    return "this version (LSTM, shrunk)"


def baselines_lines(metrics: Metrics) -> list[str]:
    """A Markdown table of the model and every baseline on the same test targets."""
    lines = ["## Model and baselines on the test window", "",
             "| forecast | RMSE | MAE | MAPE % | direction | RMSE / naive |",
             "|---|---:|---:|---:|---:|---:|"]
    rows: dict[str, Metrics | PointScores] = {point_name(metrics): metrics, **metrics.baselines}
    for name, m in rows.items():
        lines.append(f"| {name} | {m.rmse:.4f} | {m.mae:.4f} | {m.mape:.3f} | "
                     f"{direction_text(m)} | {m.rmse_vs_naive:.4f} |")
    # the shrink factor and the raw LSTM's ratio came in together (a version older has none)
    if metrics.unshrunk_rmse_vs_naive is not None:
        dm = metrics.validation_dm
        lines += ["", f"Shrink factor alpha = {metrics.shrink_alpha:.3f}, fit on the "
                      f"validation split only (0 = naive, 1 = raw LSTM); the raw LSTM's RMSE / "
                      f"naive on the test window is {metrics.unshrunk_rmse_vs_naive:.4f}. "
                      f"Validation Diebold-Mariano statistic of the gain over naive: "
                      f"{float('nan') if dm is None else dm:.2f} (alpha is set to 0, "
                      f"the naive forecast, unless it clears the configured gate)."]
    return lines + [""]


def backtest_lines(metrics: Metrics, plots: bool = True) -> list[str]:
    """A Markdown table of the walk-forward folds (empty when the backtest was disabled), and
    its plot (``plots``)."""
    folds = metrics.backtest_folds
    if not folds:
        return ["## Walk-forward backtest", "", "Disabled (folds = 0).", ""]
    lines = ["## Walk-forward backtest (expanding window)", "",
             "| fold | test window | n_train | RMSE | naive RMSE | RMSE / naive | alpha | "
             "distribution | CRPS / constant | 80% cover |",
             "|---:|---|---:|---:|---:|---:|---:|---|---:|---:|"]
    for f in folds:
        lines.append(f"| {f['fold']} | {f['test_start']}..{f['test_end']} | {f['n_train']} | "
                     f"{f['rmse']:.4f} | {f['naive_rmse']:.4f} | {f['rmse_vs_naive']:.4f} | "
                     f"{f['shrink_alpha']:.3f} | {fold_distribution(f)}")
    return lines + (["", "![backtest](plots/backtest.png)"] if plots else []) + [""]


def fold_distribution(fold: dict) -> str:
    """The distribution cells of a backtest fold's row (dashes for a fold without them)."""
    model = fold.get("distribution", {}).get("model")
    if model is None:
        return "– | – | – |"
    return (f"{fold['distribution_source']} | {model['crps_vs_constant']:.3f} | "
            f"{model['coverage']['80']:.3f} |")


def network_lines(manifest: Manifest) -> list[str]:
    """Where a global model's network comes from (nothing for a per-symbol model)."""
    if not manifest.global_model:
        return []
    symbols = manifest.trained_on
    shown = ", ".join(escape(s) for s in symbols[:12]) + (" …" if len(symbols) > 12 else "")
    return [f"**Network:** the global model, one LSTM trained on the windows of "
            f"{len(symbols)} symbols ({shown}), each scaled with its own training rows; "
            "stored once and referenced by this version (`model-ref.json`).", ""]


def plots_lines(symbol: str, version: str, plots: bool) -> list[str]:
    """The report's plots section: the three model plots, or how to have them drawn."""
    if plots:
        return ["## Plots", "", "![forecast](plots/forecast.png)", "", "![loss](plots/loss.png)",
                "", "![residuals](plots/residuals.png)", ""]
    return ["## Plots", "", "Not drawn yet: the run that made this version draws plots on "
            "request (`report.plots`; by default, runs of more symbols than the Prefect UI "
            f"shows reports for). `closecast report {escape(symbol)} --version {version}` draws "
            "them (forecast, loss, residuals, backtest, fan, calibration, PIT) into this version "
            "and writes this report again with them.", ""]


def render_markdown(symbol: str, version: str, metrics: Metrics, decision: str,
                    manifest: Manifest, plots: bool = True) -> str:
    """The version's report as Markdown (plots referenced by relative path; ``plots`` False:
    the version has none yet, and the report says how to draw them)."""
    lines = [f"# {escape(symbol)} — model version {version}", "",
             f"Test window {metrics.test_start} .. {metrics.test_end} "
             f"({metrics.n_test} days); trained on {metrics.n_train} windows "
             f"of data up to {manifest.as_of}.", "",
             *network_lines(manifest),
             f"**{verdict(metrics)}**", "", f"**Forecast:** {provenance_text(metrics)}", "",
             f"**Promotion:** {decision}", "",
             f"| metric | {point_name(metrics)} | naive |", "|---|---:|---:|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in metrics_table(metrics)]
    lines += [""] + baselines_lines(metrics) + distribution_lines(
        metrics, manifest.model.get("head"), plots, manifest.features)
    lines += backtest_lines(metrics, plots)
    lines += plots_lines(symbol, version, plots)
    lines += ["## Configuration", "",
              f"- features: `{manifest.features}`", f"- model: `{manifest.model}`",
              f"- data fingerprint: `{manifest.data_fingerprint}`",
              f"- network sha256: `{manifest.model_sha256 or 'not recorded'}`",
              f"- flow run: `{manifest.flow_run_id}`", ""]
    return "\n".join(lines)


# markdown-it's URL encoder (mdurl) fills a module-level cache lazily and registers it before
# it is full: two register threads rendering their first reports at once raised IndexError in
# another thread's half-built table. One report is rendered at a time (~18 ms each).
_RENDERING = threading.Lock()


def render_html(markdown_text: str, version_dir: Path) -> str:
    """A self-contained HTML page: the report rendered by markdown-it (raw HTML off, so text
    from data is shown, never executed), its plots embedded as base64 PNG data URIs."""
    from markdown_it import MarkdownIt

    with _RENDERING:
        renderer = MarkdownIt("commonmark", {"html": False}).enable("table")
        tokens = renderer.parse(markdown_text)
        for token in tokens:
            for child in token.children or []:
                if child.type == "image":
                    child.attrSet("src", _embedded(str(child.attrGet("src")), version_dir))
        body = renderer.renderer.render(tokens, renderer.options, {})
    style = ("body{font-family:sans-serif;max-width:960px;margin:2em auto}"
             "td,th{border:1px solid #ccc;padding:4px 10px}table{border-collapse:collapse}"
             "img{max-width:100%}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>closecast report</title>"
            f"<style>{style}</style></head><body>\n{body}</body></html>\n")


def _embedded(src: str, version_dir: Path) -> str:
    """A relative PNG path inside the version directory as a data URI (others left alone)."""
    if src.startswith("data:") or "://" in src:
        return src
    data = confined(version_dir, *src.split("/")).read_bytes()
    return "data:image/png;base64," + base64.b64encode(data).decode()
