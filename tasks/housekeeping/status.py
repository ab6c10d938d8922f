"""What a home holds (``closecast status``): the lake, the champions, the ledger, disk use.

Summaries, not a row per symbol, so that a 500-symbol home fits one screen; ``symbol`` gives
one symbol's details. Read only: nothing here writes, locks or starts a server.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from tasks.core.layout import Layout
from tasks.core.version_files import read_metrics
from tasks.data.lake import partition_path
from tasks.housekeeping.gc_plan import size_of
from tasks.housekeeping.gc_report import format_size
from tasks.housekeeping.retention import require_home
from tasks.registry.networks import SHARED
from tasks.registry.records import fallback_of
from tasks.registry.registry import list_versions, read_champion, version_dir
from tasks.serving.ledger import ledger_path, ledger_symbols

SHOWN = 5  # symbols named where a summary lists exceptions


def lake_symbols(lake: Path) -> list[str]:
    """Symbols with a price partition."""
    root = lake / "prices"
    if not root.is_dir():
        return []
    return sorted(p.name.removeprefix("symbol=") for p in root.glob("symbol=*")
                  if (p / "part.parquet").exists())


def partition_span(lake: Path, symbol: str) -> tuple[int, str | None, str | None]:
    """Rows, first and last date of a partition, from its Parquet statistics when present."""
    path = partition_path(lake, symbol)
    meta = pq.ParquetFile(path).metadata
    column = meta.schema.names.index("date")
    stats = [meta.row_group(i).column(column).statistics for i in range(meta.num_row_groups)]
    if stats and all(s is not None and s.has_min_max for s in stats):
        lo, hi = min(s.min for s in stats), max(s.max for s in stats)
    else:
        dates = pd.read_parquet(path, columns=["date"])["date"]
        lo, hi = (dates.min(), dates.max()) if len(dates) else (None, None)
    return meta.num_rows, _day(lo), _day(hi)


def champion_kind(models: Path, symbol: str, champion: dict) -> tuple[str, str]:
    """(the range it serves, network) of a champion: e.g. ("garch", "per-symbol"); a fallback
    champion serves its baseline's range."""
    path = version_dir(models, symbol, int(champion["version"]))
    fallback = fallback_of(champion)
    try:
        source = (fallback.range if fallback and fallback.range
                  else read_metrics(path).source or "point")
    except (OSError, ValueError):  # pydantic's ValidationError is a ValueError
        source = "unreadable"
    return source, "global" if (path / "model-ref.json").exists() else "per-symbol"


def model_symbols(models: Path) -> list[str]:
    if not models.is_dir():
        return []
    return sorted(p.name for p in models.iterdir() if p.is_dir() and p.name != SHARED
                  and not p.name.startswith("."))


def ledger_summary(lake: Path, symbols: list[str]) -> dict:
    """Forecasts issued and scored, the last as-of issued and the last day scored."""
    issued = scored = 0
    last_issued = last_scored = None
    for symbol in symbols:
        frame = pd.read_parquet(ledger_path(lake, symbol), columns=["as_of", "actual_date"])
        issued += len(frame)
        done = frame["actual_date"].dropna()
        scored += len(done)
        if len(frame):
            last_issued = max(filter(None, [last_issued, pd.Timestamp(frame["as_of"].max())]))
        if len(done):
            last_scored = max(filter(None, [last_scored, pd.Timestamp(done.max())]))
    return {"symbols": len(symbols), "issued": issued, "scored": scored,
            "last_issued_as_of": _day(last_issued), "last_scored_day": _day(last_scored)}


def _day(value) -> str | None:
    return pd.Timestamp(value).date().isoformat() if value is not None else None


def disk_use(home: Path) -> dict[str, int]:
    """Bytes under each top-level entry of the home."""
    return {p.name: size_of(p) for p in sorted(home.iterdir())}


def home_status(home: Path, symbol: str | None = None) -> dict:
    """Everything ``closecast status`` shows, as plain data."""
    layout = require_home(Path(home))
    symbols = lake_symbols(layout.lake)
    spans = {s: partition_span(layout.lake, s) for s in symbols}
    modelled = model_symbols(layout.models)
    champions = {s: c for s in modelled if (c := read_champion(layout.models, s)) is not None}
    kinds = {s: champion_kind(layout.models, s, c) for s, c in champions.items()}
    fallbacks = {s: f.text() for s, c in champions.items() if (f := fallback_of(c))}
    status = {
        "home": str(layout.home),
        "lake": lake_summary(spans),
        "models": {"symbols": len(modelled),
                   "versions": sum(len(list_versions(layout.models, s)) for s in modelled),
                   "champions": len(champions),
                   "without_champion": [s for s in modelled if s not in champions],
                   "fallback": fallbacks,
                   "by_source": dict(Counter(k[0] for k in kinds.values()).most_common()),
                   "by_network": dict(Counter(k[1] for k in kinds.values()).most_common())},
        "ledger": ledger_summary(layout.lake, ledger_symbols(layout.lake)),
        "disk": disk_use(layout.home),
    }
    if symbol is not None:
        status["symbol"] = symbol_status(layout, symbol, spans.get(symbol), champions.get(symbol),
                                         kinds.get(symbol))
    return status


def lake_summary(spans: dict[str, tuple[int, str | None, str | None]]) -> dict:
    """Symbols, rows, the newest last date and the symbols behind it."""
    last = {s: span[2] for s, span in spans.items() if span[2]}
    newest = max(last.values(), default=None)
    behind = sorted(((d, s) for s, d in last.items() if d != newest))
    return {"symbols": len(spans), "rows": sum(span[0] for span in spans.values()),
            "first_date": min((span[1] for span in spans.values() if span[1]), default=None),
            "last_date": newest, "at_last_date": sum(d == newest for d in last.values()),
            "behind": [{"symbol": s, "last_date": d} for d, s in behind]}


def symbol_status(layout: Layout, symbol: str, span, champion, kind) -> dict:
    """One symbol: its partition, versions, champion and ledger."""
    versions = list_versions(layout.models, symbol) if layout.models.is_dir() else []
    out = {"symbol": symbol, "rows": span[0] if span else 0,
           "first_date": span[1] if span else None, "last_date": span[2] if span else None,
           "versions": versions, "champion": champion.get("version") if champion else None,
           "champion_source": kind[0] if kind else None,
           "champion_network": kind[1] if kind else None}
    out["ledger"] = (ledger_summary(layout.lake, [symbol])
                     if ledger_path(layout.lake, symbol).exists() else None)
    return out


def format_status(status: dict) -> str:
    """The status as about 15 lines, whatever the number of symbols."""
    lake, models, ledger = status["lake"], status["models"], status["ledger"]
    lines = [f"home: {status['home']}"]
    if lake["symbols"]:
        behind = lake["behind"]
        named = ", ".join(f"{b['symbol']} {b['last_date']}" for b in behind[:SHOWN])
        lines.append(f"lake: {lake['symbols']} symbol(s), {lake['rows']:,} rows, "
                     f"{lake['first_date']} .. {lake['last_date']}; {lake['at_last_date']} up "
                     f"to {lake['last_date']}" + (f"; {len(behind)} behind: {named}"
                                                  + (" ..." if len(behind) > SHOWN else "")
                                                  if behind else ""))
    else:
        lines.append("lake: empty (no prices stored yet: closecast run)")
    sources = ", ".join(f"{k} {v}" for k, v in models["by_source"].items()) or "-"
    networks = ", ".join(f"{k} {v}" for k, v in models["by_network"].items()) or "-"
    lines.append(f"models: {models['versions']} version(s) of {models['symbols']} symbol(s); "
                 f"{models['champions']} champion(s) by source: {sources}; by network: "
                 f"{networks}")
    if models.get("fallback"):
        shown = [f"{s} ({text})" for s, text in models["fallback"].items()]
        lines.append(f"  fallback champions, serving a baseline their only version lost to on "
                     f"its test window ({len(shown)}): {', '.join(shown[:SHOWN])}"
                     + (" ..." if len(shown) > SHOWN else ""))
    if models["without_champion"]:
        missing = models["without_champion"]
        lines.append(f"  no champion: {', '.join(missing[:SHOWN])}"
                     + (f" ... ({len(missing)})" if len(missing) > SHOWN else ""))
    lines.append(f"ledger: {ledger['issued']} forecast(s) for {ledger['symbols']} symbol(s), "
                 f"{ledger['scored']} scored; last issued as of "
                 f"{ledger['last_issued_as_of'] or '-'}, last scored day "
                 f"{ledger['last_scored_day'] or '-'}")
    disk = status["disk"]
    lines.append("disk: " + (", ".join(f"{name}/ {format_size(size)}"
                                       for name, size in disk.items())
                             + f"; total {format_size(sum(disk.values()))}" if disk else "empty"))
    if "symbol" in status:
        lines += format_symbol(status["symbol"])
    if "prefect" in status:
        lines += format_prefect(status["prefect"])
    return "\n".join(lines)


def format_symbol(one: dict) -> list[str]:
    ledger = one["ledger"]
    return [f"{one['symbol']}: {one['rows']} rows {one['first_date'] or '-'} .. "
            f"{one['last_date'] or '-'}; versions {one['versions'] or '-'}; champion "
            + (f"v{one['champion']} ({one['champion_source']}, {one['champion_network']})"
               if one["champion"] else "none"),
            f"  ledger: {ledger['issued']} issued, {ledger['scored']} scored, last scored day "
            f"{ledger['last_scored_day'] or '-'}" if ledger else "  ledger: no forecasts"]


def format_prefect(prefect: dict) -> list[str]:
    if prefect["api"] is None:
        return ["prefect: PREFECT_API_URL not set (each command starts a temporary server; "
                "no run history to show)"]
    if not prefect["answers"]:
        return [f"prefect: {prefect['api']} does not answer ({prefect['error']})"]
    lines = [f"prefect: {prefect['api']} answers"]
    for row in prefect["deployments"]:
        lines.append(f"  {row['deployment']}: " + (
            f"last run {row['last_run']} {row['state']} started {row['started']}"
            if row["last_run"] else "no run yet"))
    if not prefect["deployments"]:
        lines.append("  no closecast deployment registered (closecast serve, or prefect deploy)")
    return lines
