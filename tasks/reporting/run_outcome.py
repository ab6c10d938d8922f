"""A training run's outcome in lines that fit a screen, however many symbols it trained: the
counts, what is served where a version lost to a baseline, the best and worst ranges against
GARCH(1,1)-t, and where the full per-symbol table is."""

from __future__ import annotations

from pathlib import Path

from tasks.core.logs import named_few
from tasks.reporting.provenance import run_summary

SHOWN = 5  # symbols named per line
# `closecast run` prints a line per version up to this many versions (or with --verbose)
PER_SYMBOL_LINES = 20


def _short(reason: str) -> str:
    """A promotion reason without its verdict prefix: what it lost to, and by how much."""
    text = reason.removeprefix("not promoted:").strip()
    return text.split(" on the ")[0]


def outcome_lines(rows: list[dict], table: Path | None) -> list[str]:
    """The run's closing lines from ``artifacts.summary_rows``: counts; the fallback
    champions and the symbols that kept their previous champion, with why; the best and worst
    few by test CRPS against GARCH-t; the full table's path."""
    fallbacks = [r for r in rows if r["fallback"]]
    kept = [r for r in rows if not r["promoted"] and not r["fallback"]]
    lines = [run_summary([r["promoted"] for r in rows], [r["distribution"] for r in rows],
                         len(fallbacks))]
    if fallbacks:
        lines.append(f"fallback champions, serving a baseline where the version lost to it on "
                     f"its test window ({len(fallbacks)}): " + named_few(
                         [f"{r['symbol']} ({_short(r['reason'])})" for r in fallbacks], SHOWN))
    if kept:
        lines.append(f"kept their previous champion ({len(kept)}): " + named_few(
            [f"{r['symbol']} ({_short(r['reason'])})" for r in kept], SHOWN))
    ranked = sorted((r for r in rows if r["crps_vs_garch_t"] is not None),
                    key=lambda r: (r["crps_vs_garch_t"], r["symbol"]))
    if len(ranked) > SHOWN:
        def shown(part: list[dict]) -> str:
            return ", ".join(f"{r['symbol']} x{r['crps_vs_garch_t']:.3f}" for r in part)

        lines.append(f"test CRPS vs GARCH-t, best: {shown(ranked[:SHOWN])}; worst: "
                     f"{shown(ranked[-SHOWN:][::-1])}")
    if table is not None:
        lines.append(f"every symbol: {table} (and {table.with_suffix('.md').name} beside it; "
                     "Prefect artifact 'training-summary')")
    return lines
