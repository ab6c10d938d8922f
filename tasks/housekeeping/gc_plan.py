"""What gc would remove from a home, area by area, records first (``retention`` removes it)."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from tasks.core.layout import Layout
from tasks.core.operations_config import RetentionConfig
from tasks.core.results import RECORD_TEMP_PREFIX
from tasks.data.lake import stored_sources
from tasks.housekeeping.cache_records import record_paths

DAY = 86_400.0
AREAS = ("cache", "staging", "work", "validation", "features", ".trash")
GX_STORES = ("gx/uncommitted/validations", "gx/uncommitted/data_docs/local_site/validations")
GX_RUN_TIME = re.compile(r"^(\d{8}T\d{6})(\.\d+)?Z$")  # a stored validation's directory


@dataclass(frozen=True)
class Removal:
    """One thing gc removes: where (relative to the home), its size and why."""

    area: str
    path: str
    bytes: int
    why: str


def plan(layout: Layout, retention: RetentionConfig, now: float | None = None) -> list[Removal]:
    """Everything to remove, records first (those naming a removed file included)."""
    now = time.time() if now is None else now
    files = [*trash(layout), *staging(layout, retention, now), *work(layout, retention, now),
             *validation(layout, retention, now), *features(layout, retention, now)]
    gone = {f.path for f in files}
    return [*records(layout, retention, now, gone), *files]


def newest_mtime(path: Path) -> float:
    """The latest modification under ``path`` (itself, or any file or directory in it)."""
    times = [path.lstat().st_mtime]
    if path.is_dir() and not path.is_symlink():
        times += [p.lstat().st_mtime for p in path.rglob("*")]
    return max(times)


def size_of(path: Path) -> int:
    if path.is_dir() and not path.is_symlink():
        return sum(p.lstat().st_size for p in path.rglob("*") if p.is_file())
    return path.lstat().st_size


def _removal(layout: Layout, area: str, path: Path, why: str) -> Removal:
    return Removal(area, path.relative_to(layout.home).as_posix(), size_of(path), why)


def trash(layout: Layout) -> list[Removal]:
    """Directories a killed gc left half-deleted."""
    if not layout.trash.is_dir():
        return []
    return [_removal(layout, ".trash", p, "left by an interrupted gc")
            for p in sorted(layout.trash.iterdir())]


def staging(layout: Layout, retention: RetentionConfig, now: float) -> list[Removal]:
    """Staged inputs already stored (past the grace), never stored (past work_days), temps."""
    if not layout.staging.is_dir():
        return []
    stored, out = stored_sources(layout.lake), []
    grace, stale = retention.grace_hours * 3600, retention.work_days * DAY
    for path in sorted(layout.staging.iterdir()):
        age = now - newest_mtime(path)
        key = path.name.removeprefix("yahoo-")[:16]
        if path.name.startswith(RECORD_TEMP_PREFIX):
            why = "temp file of a killed write" if age > grace else None
        elif key in stored:
            why = "staged input already stored in the lake" if age > grace else None
        else:
            why = f"staged input never stored, {age / DAY:.0f} days old" if age > stale else None
        if why:
            out.append(_removal(layout, "staging", path, why))
    return out


def work(layout: Layout, retention: RetentionConfig, now: float) -> list[Removal]:
    """Candidate, evaluation and fold directories (``work/<S>/<key>``) untouched for work_days."""
    if not layout.work.is_dir():
        return []
    out = []
    for path in sorted(layout.work.glob("*/*")):
        age = now - newest_mtime(path)
        if age > retention.work_days * DAY:
            out.append(_removal(layout, "work", path, f"untouched for {age / DAY:.0f} days"))
    return out


def features(layout: Layout, retention: RetentionConfig, now: float) -> list[Removal]:
    """Superseded feature tables: all but each symbol's newest per config, untouched for
    work_days; so too the market states of past runs (``lake/market``: only its own run reads
    one; a version rebuilds its state from the lake)."""
    out = []
    market = layout.lake / "market"
    for directory in [*sorted((layout.lake / "features").glob("*/symbol=*")),
                      *([market] if market.is_dir() else [])]:
        tables = sorted(directory.glob("*.parquet"), key=lambda p: p.lstat().st_mtime)
        for path in tables[:-1]:
            age = now - path.lstat().st_mtime
            if age > retention.work_days * DAY:
                why = f"superseded by {tables[-1].name}, untouched for {age / DAY:.0f} days"
                out.append(_removal(layout, "features", path, why))
    return out


def _gx_run_time(path: Path) -> float:
    """When a stored validation ran (its directory's name), else its modification time."""
    match = GX_RUN_TIME.match(path.name)
    if match:
        return datetime.strptime(match.group(1), "%Y%m%dT%H%M%S").replace(tzinfo=UTC).timestamp()
    return newest_mtime(path)


def validation(layout: Layout, retention: RetentionConfig, now: float) -> list[Removal]:
    """GX results older than validation_days: result JSON, stored validations, their pages."""
    root, limit, out = layout.validation, retention.validation_days * DAY, []
    if not root.is_dir():
        return []
    for path in sorted(root.glob("*.result.json")):
        if now - newest_mtime(path) > limit:
            out.append(_removal(layout, "validation", path, "GX result past validation_days"))
    for store in GX_STORES:
        for path in sorted((root / store).glob("*/*/*")):  # <suite>/<run name>/<run time>
            if path.is_dir() and GX_RUN_TIME.match(path.name) and now - _gx_run_time(path) > limit:
                out.append(_removal(layout, "validation", path, "GX result past validation_days"))
    return out


def records(layout: Layout, retention: RetentionConfig, now: float,
            gone: set[str]) -> list[Removal]:
    """Records to remove: naming a file about to go or gone, too old, unreadable, temps."""
    if not layout.cache.is_dir():
        return []
    out = []
    for path in sorted(layout.cache.iterdir()):
        if not path.is_file():
            continue
        age = now - path.lstat().st_mtime
        why = record_verdict(layout, path, age, retention, gone)
        if why:
            out.append(_removal(layout, "cache", path, why))
    return out


def record_verdict(layout: Layout, path: Path, age: float, retention: RetentionConfig,
                   gone: set[str]) -> str | None:
    """Why a record goes, or None when it stays."""
    grace = retention.grace_hours * 3600
    if path.name.startswith(RECORD_TEMP_PREFIX):
        return "temp file of a killed write" if age > grace else None
    named = record_paths(path, layout.home)
    if named is None:
        return "unreadable record" if age > grace else None
    for name in sorted(named):
        if any(name == g or name.startswith(g + "/") for g in gone):
            return f"names {name}, removed now"
    for name in sorted(named):
        if not (layout.home / name).exists():
            return f"names {name}, which is gone"
    if age > retention.cache_days * DAY:
        return f"older than {retention.cache_days} days"
    return None
