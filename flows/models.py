"""``closecast models``: list, show and hand-promote registered versions (plain text out)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from tasks.errors import RegistryError
from tasks.registry import (
    check_version,
    damaged_files,
    list_symbols,
    list_versions,
    read_champion,
    symbol_lock,
    version_dir,
    write_champion,
)


def _metrics(path: Path) -> dict:
    try:
        return json.loads((path / "metrics.json").read_text())
    except (OSError, ValueError):
        return {}


def list_models(models: Path, symbol: str | None = None) -> str:
    """A table of every version: rmse, naive, ratio, champion mark, damage."""
    lines = [f"{'symbol':<8} {'ver':>4} {'rmse':>9} {'naive':>9} {'ratio':>7}  status"]
    for sym in [symbol] if symbol else list_symbols(models):
        champion = read_champion(models, sym) or {}
        for version in list_versions(models, sym):
            path = version_dir(models, sym, version)
            m = _metrics(path)
            status = "champion" if champion.get("version") == version else ""
            problems = damaged_files(path)
            if problems:
                status = f"DAMAGED ({'; '.join(problems)}) {path}"
            lines.append(f"{sym:<8} {version:>4} {m.get('rmse', float('nan')):>9.4f} "
                         f"{m.get('naive_rmse', float('nan')):>9.4f} "
                         f"{m.get('rmse_vs_naive', float('nan')):>7.3f}  {status}")
    if len(lines) == 1:
        return f"no models under {models}"
    return "\n".join(lines)


def show_version(models: Path, symbol: str, version: int | None = None) -> str:
    """A version's manifest and metrics (the champion when no version is given)."""
    if version is None:
        champion = read_champion(models, symbol)
        if champion is None:
            raise RegistryError(f"{symbol} has no champion under {models}; name a version")
        version = int(champion["version"])
    path = check_version(models, symbol, version)
    manifest = json.loads((path / "manifest.json").read_text())
    return json.dumps({"symbol": symbol, "version": version, "path": str(path),
                       "metrics": _metrics(path), "manifest": manifest}, indent=2)


def promote(models: Path, symbol: str, version: int) -> str:
    """Make a complete version the champion by hand (recorded as such in champion.json)."""
    path = check_version(models, symbol, version)
    m = _metrics(path)
    with symbol_lock(models, symbol):
        write_champion(models, symbol, {
            "version": version, "rmse": m.get("rmse"), "naive_rmse": m.get("naive_rmse"),
            "test_start": m.get("test_start"), "test_end": m.get("test_end"),
            "reason": "promoted by hand (closecast models promote)",
            "promoted_at": datetime.now(UTC).isoformat(timespec="seconds")})
    return f"{symbol} champion is now version {version}"
