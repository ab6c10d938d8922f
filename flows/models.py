"""``closecast models``: list, show and hand-promote registered versions (plain text out)."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import ValidationError

from tasks.core.errors import RegistryError
from tasks.core.version_files import (
    METRICS_FILE,
    Manifest,
    Metrics,
    read_manifest,
    read_metrics,
    read_promotion,
)
from tasks.registry.integrity import check_version, damaged_files
from tasks.registry.records import champion_record, fallback_of
from tasks.registry.registry import (
    list_symbols,
    list_versions,
    read_champion,
    symbol_lock,
    version_dir,
    write_champion,
)
from tasks.reporting.provenance import provenance, provenance_text


def _metrics(path: Path) -> Metrics | None:
    """A version's metrics; None when missing or not a metrics record."""
    try:
        return read_metrics(path)
    except (OSError, ValueError):  # pydantic's ValidationError is a ValueError
        return None


# `models show` has always printed these keys first, with these values where a version lacks
# one, then the rest as the version's files hold them: its --json output stays as it was.
_SHOWN_METRICS = {"rmse": None, "mae": None, "mape": None, "directional_accuracy": None,
                  "naive_rmse": None, "naive_mae": None, "rmse_vs_naive": None,
                  "n_train": None, "n_test": None, "test_start": None, "test_end": None,
                  "shrink_alpha": 1.0, "distribution": {}, "backtest": None}
_SHOWN_MANIFEST = {"symbol": None, "as_of": None, "data_fingerprint": None, "features": None,
                   "split": None, "model": None, "evaluation": None, "created_at": None}


def _shown(record: Metrics | Manifest | None, first: dict) -> dict:
    """A record as ``models show`` prints it (``first``: its leading keys and their values
    where the record has none; {} for no record)."""
    return {} if record is None else {**first, **record.to_dict()}


_SHORT = 70  # characters of a reason shown in the table


def registration_decision(path: Path) -> tuple[bool | None, str]:
    """(promoted, reason) as registration recorded it; older versions: from report.md."""
    try:
        record = read_promotion(path)
        if record is not None:
            return record.promoted, record.reason
    except (OSError, ValueError):
        pass
    try:
        for line in (path / "report.md").read_text().splitlines():
            if line.startswith("**Promotion:**"):
                reason = line.removeprefix("**Promotion:**").strip()
                return reason.startswith("promoted"), reason
    except OSError:
        pass
    return None, "no reason recorded"


def version_status(path: Path, champion: dict) -> dict:
    """``status`` (champion / not promoted / superseded / DAMAGED) and the full ``reason``; a
    fallback champion also says what it ``serves`` instead of its own forecast."""
    problems = damaged_files(path)
    promoted, reason = registration_decision(path)
    champion_version = champion.get("version")
    if problems:
        return {"status": "damaged", "reason": "; ".join(problems)}
    if champion_version == int(path.name):
        fallback = fallback_of(champion)
        return {"status": "champion", "reason": reason,
                **({"serves": fallback.text()} if fallback else {})}
    if promoted:  # registration promoted it; another version is champion now (or none is)
        return {"status": "superseded", "reason": reason, "champion": champion_version}
    return {"status": "not promoted", "reason": reason}


def model_records(models: Path, symbol: str | None = None) -> list[dict]:
    """Every version with its metrics, status and reason (what ``models list --json`` prints)."""
    records = []
    for sym in [symbol] if symbol else list_symbols(models):
        champion = read_champion(models, sym) or {}
        for version in list_versions(models, sym):
            path = version_dir(models, sym, version)
            m = _metrics(path)
            records.append({"symbol": sym, "version": version, "path": str(path),
                            **version_status(path, champion),
                            "rmse": m.rmse if m else None,
                            "naive_rmse": m.naive_rmse if m else None,
                            "rmse_vs_naive": m.rmse_vs_naive if m else None,
                            **provenance(m).as_dict(),
                            "forecast": provenance_text(m) if m else None})
    return records


def _status_text(record: dict) -> str:
    if record["status"] == "champion":
        return f"champion (fallback: serves {record['serves']})" if record.get("serves") \
            else "champion"
    if record["status"] == "damaged":
        return f"DAMAGED ({record['reason']}) {record['path']}"
    if record["status"] == "superseded":
        return f"superseded: was champion; now version {record['champion'] or 'none'}"
    reason = record["reason"].removeprefix("not promoted:").strip()
    reason = reason if len(reason) <= _SHORT else reason[:_SHORT - 1] + "…"
    return f"{record['status']}: {reason}"


def _number(value: object, width: int, digits: int) -> str:
    return f"{value if isinstance(value, int | float) else float('nan'):>{width}.{digits}f}"


def list_models(models: Path, symbol: str | None = None) -> str:
    """A table of every version: rmse, naive, ratio, and champion / not promoted (why) / DAMAGED,
    each followed by an indented line naming who made its point forecast and its range."""
    records = model_records(models, symbol)
    if not records:
        return f"no models under {models}"
    lines = [f"{'symbol':<8} {'ver':>4} {'rmse':>9} {'naive':>9} {'ratio':>7}  status"]
    for r in records:
        lines.append(f"{r['symbol']:<8} {r['version']:>4} {_number(r['rmse'], 9, 4)} "
                     f"{_number(r['naive_rmse'], 9, 4)} {_number(r['rmse_vs_naive'], 7, 3)}  "
                     f"{_status_text(r)}")
        if r["forecast"] is not None:
            lines.append(f"{'':<14}{r['forecast']}")
    return "\n".join(lines)


def named_or_champion(models: Path, symbol: str, version: int | None) -> int:
    """``version``, or the symbol's champion when none is named."""
    if version is not None:
        return version
    champion = read_champion(models, symbol)
    if champion is None:
        raise RegistryError(f"{models / symbol}: {symbol} has no champion; name a version")
    return int(champion["version"])


def show_version(models: Path, symbol: str, version: int | None = None,
                 indent: int | None = 2) -> str:
    """A version's manifest and metrics (the champion when no version is given)."""
    version = named_or_champion(models, symbol, version)
    path = check_version(models, symbol, version)
    manifest = read_manifest(path)
    champion = read_champion(models, symbol) or {}
    return json.dumps({"symbol": symbol, "version": version, "path": str(path),
                       **version_status(path, champion),
                       "metrics": _shown(_metrics(path), _SHOWN_METRICS),
                       "manifest": _shown(manifest, _SHOWN_MANIFEST)}, indent=indent)


def promote(models: Path, symbol: str, version: int) -> str:
    """Make a complete version the champion by hand (recorded as such in champion.json)."""
    path = check_version(models, symbol, version)
    try:
        record = champion_record(version, read_metrics(path),
                                 "promoted by hand (closecast models promote)")
    except ValidationError as error:
        raise RegistryError(f"{path / METRICS_FILE}: {symbol} version {version} has no "
                            f"usable metrics ({error.error_count()} problem(s))") from error
    with symbol_lock(models, symbol):
        write_champion(models, symbol, record)
    return f"{symbol} champion is now version {version}"


def report_version(models: Path, symbol: str, version: int | None = None) -> dict:
    """A version's report with its plots (the champion's when no version is given), drawn now
    if its run left them to be drawn on request: what ``closecast report`` prints."""
    from tasks.registry.reports import complete_report

    version = named_or_champion(models, symbol, version)
    report, drawn = complete_report(models, symbol, version)
    m = _metrics(report.parent)
    return {"symbol": symbol, "version": version, "report": str(report),
            "plots": str(report.parent / "plots"), "drawn_now": drawn,
            "forecast": provenance_text(m) if m else None}
