"""A version's report: report.md and report.html, written at registration, and its plots, drawn
then or on request (``closecast report``), from the version's own files alone."""

from __future__ import annotations

import logging
import shutil
import uuid
from pathlib import Path

from tasks.core.atomic import atomic_write_text
from tasks.core.version_files import Manifest, Metrics, read_manifest, read_metrics, read_promotion
from tasks.registry.integrity import check_version
from tasks.registry.registry import fsync_tree, symbol_dir, symbol_lock
from tasks.reporting.plots import make_plots
from tasks.reporting.report import render_html, render_markdown

log = logging.getLogger(__name__)
PLOTS = "plots"


def report_texts(path: Path, symbol: str, version: int, metrics: Metrics, reason: str,
                 manifest: Manifest) -> tuple[str, str]:
    """(report.md, report.html) of the version directory ``path``: with its plots when it has
    them (report.html embeds them), else saying how to draw them."""
    markdown = render_markdown(symbol, str(version), metrics, reason, manifest,
                               plots=(path / PLOTS).is_dir())
    return markdown, render_html(markdown, path)


def write_report(path: Path, symbol: str, version: int, metrics: Metrics, reason: str,
                 manifest: Manifest) -> None:
    """Write report.md and report.html into ``path`` (each replaced atomically)."""
    markdown, html = report_texts(path, symbol, version, metrics, reason, manifest)
    atomic_write_text(path / "report.md", markdown)
    atomic_write_text(path / "report.html", html)


def _read(path: Path) -> tuple[Metrics, Manifest, str]:
    """A version's metrics, manifest and promotion reason."""
    promotion = read_promotion(path)
    if promotion is None:
        raise FileNotFoundError(f"{path}: the version recorded no promotion decision")
    return read_metrics(path), read_manifest(path), promotion.reason


def draw_version_plots(path: Path, symbol: str, out_dir: Path) -> list[str]:
    """The version's seven plots, drawn into ``out_dir`` from the files the version holds
    (predictions.parquet, history.json and the backtest folds of its metrics)."""
    metrics, manifest, _ = _read(path)
    return make_plots(str(path / "predictions.parquet"), str(path / "history.json"), symbol,
                      out_dir, metrics.backtest_folds,
                      "global model" if manifest.global_model else None)


def complete_report(models: Path, symbol: str, version: int) -> tuple[Path, bool]:
    """The version's report.html, with its plots: a version registered without them (a run
    drawing plots on request, ``ReportConfig``) gets them drawn into ``plots/`` (complete or
    absent: drawn in a temp directory, then renamed) and its report written again with them.

    The version's model, scores and decision are only read, and a report that already shows
    its plots (a version registered with them) is left as written. Returns (report.html,
    whether the plots were drawn now); a second call draws nothing and rewrites nothing.
    """
    path = check_version(models, symbol, version)
    with symbol_lock(models, symbol):
        for stale in path.glob(".tmp-*"):  # a report write killed before its rename
            stale.unlink(missing_ok=True)
        drawn = not (path / PLOTS).is_dir()
        if not drawn and f"]({PLOTS}/" in (path / "report.md").read_text():
            return path / "report.html", False
        if drawn:
            tmp = symbol_dir(models, symbol) / f".tmp-plots-{uuid.uuid4().hex}"
            try:
                draw_version_plots(path, symbol, tmp)
                fsync_tree(tmp)
                tmp.rename(path / PLOTS)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            log.info("%s version %d: plots drawn into %s", symbol, version, path / PLOTS)
        # also completes a report whose plots were renamed in just before a kill
        metrics, manifest, reason = _read(path)
        write_report(path, symbol, version, metrics, reason, manifest)
    return path / "report.html", drawn
