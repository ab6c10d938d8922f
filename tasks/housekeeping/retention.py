"""Retention (``closecast gc``): remove from a home what no later run or version needs.

What each directory holds, and what gc does with it:

- ``cache/<key>``: Prefect task result records (``tasks.core.results``). A record's result names
  files (staged inputs, work directories, validation results, lake files, versions). A record
  is removed when it names a file that gc removes (always before that file), a file already
  gone, when it is older than ``retention.cache_days``, or when it cannot be read (torn by a
  crash before records were written atomically). A removed record only makes its task
  recompute in a later run; registration then finds the version it already wrote
  (``candidate_key``), so re-runs and backfills add no duplicate.
- ``staging/``: parsed inputs. Once stored (the lake's stamp for its source exists) a staged
  file is read again only by a run that hits the ingest cache and misses validation or the
  store: removed after ``grace_hours`` with the records naming it. Never stored (validation
  failed): after ``work_days``.
- ``work/<S>/<key>/``: candidates, fold networks, evaluations and plots, copied into a version
  when registered; read again only by a run that hits the cache upstream and misses below.
  Removed when nothing in it changed for ``work_days``.
- ``validation/``: Great Expectations results (``<file>.result.json``, each stored validation
  under ``gx/uncommitted/validations/`` and its Data Docs page) older than
  ``validation_days``. GX's configuration, the Data Docs index and ``quarantine/`` stay.
- ``lake/features/<config>/symbol=S/<data fingerprint>.parquet``: each training run's feature
  table, derived from the lake's prices (a weekly retrain of 50 symbols added ~100 MiB, ~5 GiB a
  year). A symbol's newest table per config stays; an older one (superseded: the newest holds
  its rows and more) goes once untouched for ``work_days``. Only a training run reads a table
  (versions keep their scaler and predictions; predict and the daily flow read prices).
- ``.tmp-*`` in ``cache/`` and ``staging/``: temp files of writes killed before their rename.
- ``.trash/``: directories a gc killed midway was deleting.

Never touched: ``models/`` (versions, ``champion.json``, shared networks), the lake's data of
record (``lake/prices``, its stamps, the forecast ledger ``lake/forecasts``) and each symbol's
newest feature table, ``predictions/``.

Runs under way: every run holds the home lock shared from its first cache lookup to its last
write (``tasks.core.locks``); gc removes only while it holds it alone. A run between a cache
hit and the read of the files its record names is therefore never robbed; if runs hold the
lock, gc waits up to ``wait_seconds`` and otherwise removes nothing and says so.

Crash safety (SIGKILL anywhere): records go first, each by one ``unlink``; then the files they
named; a directory is renamed into ``.trash/`` (one atomic step) and deleted from there. At
every point a record that is left names only files that are left, so the next run reads the
home without error, and the next gc finishes the job.
"""

from __future__ import annotations

import base64
import json
import os
import pickletools
import re
import shutil
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from tasks.core.errors import InputError
from tasks.core.layout import Layout
from tasks.core.locks import home_exclusive
from tasks.core.operations_config import RetentionConfig
from tasks.core.results import RECORD_TEMP_PREFIX
from tasks.data.lake import stored_sources

DAY = 86_400.0
AREAS = ("cache", "staging", "work", "validation", "features", ".trash")
# Top directories of a home that a record's result may name (paths outside them are inputs).
NAMED = ("staging", "work", "validation", "lake", "models", "predictions")
GX_STORES = ("gx/uncommitted/validations", "gx/uncommitted/data_docs/local_site/validations")
GX_RUN_TIME = re.compile(r"^(\d{8}T\d{6})(\.\d+)?Z$")  # a stored validation's directory


@dataclass(frozen=True)
class Removal:
    """One thing gc removes: where (relative to the home), its size and why."""

    area: str
    path: str
    bytes: int
    why: str


@dataclass
class GcReport:
    """What one gc removed (or, dry run, would remove), per directory."""

    home: str
    dry_run: bool
    busy: bool = False
    removed: list[Removal] = field(default_factory=list)

    def freed(self) -> dict[str, dict[str, int]]:
        """Per area: items and bytes."""
        out = {area: {"items": 0, "bytes": 0} for area in AREAS}
        for r in self.removed:
            out[r.area]["items"] += 1
            out[r.area]["bytes"] += r.bytes
        return out

    def to_json(self) -> dict:
        return {"home": self.home, "dry_run": self.dry_run, "busy": self.busy,
                "freed": self.freed(), "total_bytes": sum(r.bytes for r in self.removed),
                "removed": [asdict(r) for r in self.removed]}


def require_home(home: Path) -> Layout:
    """The layout of an existing home; a missing one is an input error, not an empty home."""
    if not home.is_dir():
        raise InputError(home, "rule 'an existing closecast home': no such directory "
                               "(give --home or set CLOSECAST_HOME)")
    return Layout(home)


def collect_garbage(home: Path, retention: RetentionConfig = RetentionConfig(),  # noqa: B008
                    dry_run: bool = False, wait_seconds: float = 0.0,
                    now: float | None = None) -> GcReport:
    """Remove (or, ``dry_run``, only list) what retention allows; see the module docstring."""
    layout = require_home(Path(home))
    report = GcReport(str(layout.home), dry_run)
    if dry_run:  # reads only: no lock taken, not even its file created
        report.removed = plan(layout, retention, now)
        return report
    with home_exclusive(layout.home_lock, wait_seconds) as alone:
        if not alone:
            report.busy = True
            return report
        report.removed = plan(layout, retention, now)
        for removal in report.removed:  # records first: plan() orders them so
            remove(layout, removal)
        prune_empty_dirs(layout.work)
    return report


def plan(layout: Layout, retention: RetentionConfig, now: float | None = None) -> list[Removal]:
    """Everything to remove, records first (those naming a removed file included)."""
    now = time.time() if now is None else now
    files = [*trash(layout), *staging(layout, retention, now), *work(layout, retention, now),
             *validation(layout, retention, now), *features(layout, retention, now)]
    gone = {f.path for f in files}
    return [*records(layout, retention, now, gone), *files]


def remove(layout: Layout, removal: Removal) -> None:
    """One removal: a file by ``unlink``; a directory renamed into .trash/, then deleted."""
    path = layout.home / removal.path
    if path.is_dir() and not path.is_symlink():
        if removal.area != ".trash":
            layout.trash.mkdir(exist_ok=True)
            moved = layout.trash / f"{uuid.uuid4().hex[:12]}-{path.name}"
            try:
                path.rename(moved)
            except OSError:  # another file system (a mount point): delete in place
                moved = path
            path = moved
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def prune_empty_dirs(root: Path) -> None:
    """Remove directories left empty under ``root`` (a symbol's work/ once its work is gone)."""
    if not root.is_dir():
        return
    for directory in sorted((p for p in root.rglob("*") if p.is_dir()), reverse=True):
        try:
            directory.rmdir()
        except OSError:
            pass  # not empty


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
    work_days."""
    out = []
    for directory in sorted((layout.lake / "features").glob("*/symbol=*")):
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


def record_paths(record: Path, home: Path) -> set[str] | None:
    """Home-relative paths that a record's result names; None when the record cannot be read.

    The result's pickle is read with ``pickletools`` (opcodes only; nothing is unpickled, no
    code runs): every string in it that is a path under the home counts.
    """
    try:
        data = json.loads(record.read_bytes())
        kind = data["metadata"]["serializer"]["type"]
        result = data["result"]
        if kind == "pickle":
            strings = [arg for _, arg, _ in pickletools.genops(base64.b64decode(result))
                       if isinstance(arg, str)]
        else:  # e.g. the json serializer: its text holds the paths
            strings = re.findall(r"[^\"'\s]+", result if isinstance(result, str)
                                 else json.dumps(result))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    roots = (home.absolute(), home.resolve())
    return {rel for text in strings if (rel := home_relative(text, roots, home.name))}


def home_relative(text: str, roots: tuple[Path, ...], name: str) -> str | None:
    """``text`` as a path relative to the home if it names something under one of its
    NAMED directories: absolute under a root, or relative as ``[...]/<home name>/<dir>/...``
    (a home given as a relative path), else None."""
    if "/" not in text or "\n" in text or len(text) > 4096:
        return None
    path = PurePosixPath(os.path.normpath(text))
    if path.is_absolute():
        for root in roots:
            try:
                rel = path.relative_to(root)
            except ValueError:
                continue
            return rel.as_posix() if rel.parts and rel.parts[0] in NAMED else None
        return None
    parts = path.parts
    for i, part in enumerate(parts):
        if part in NAMED and (i == 0 or parts[i - 1] == name):
            return "/".join(parts[i:])
    return None


def format_size(n: int) -> str:
    """Bytes as B, KiB, MiB or GiB with one decimal."""
    size, unit = float(n), "B"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            break
        size /= 1024
    return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"


def format_gc(report: GcReport) -> str:
    """What gc freed per directory, one line each, and the total."""
    if report.busy:
        return (f"{report.home}: a run is using this home; nothing removed "
                "(gc removes only while no run holds the home lock: run it again later)")
    verb = "would free" if report.dry_run else "freed"
    lines = [f"{report.home}: gc {verb}" + (" (dry run: nothing removed)" if report.dry_run
                                             else "")]
    freed = report.freed()
    for area in AREAS:
        items, size = freed[area]["items"], freed[area]["bytes"]
        if area == ".trash" and not items:
            continue
        lines.append(f"  {area + '/':<12} {items:>6} item(s) {format_size(size):>11}")
    total = sum(r.bytes for r in report.removed)
    lines.append(f"  {'total':<12} {len(report.removed):>6} item(s) {format_size(total):>11}")
    return "\n".join(lines)


@task(name="gc", cache_policy=NO_CACHE)
def gc_task(home: str, retention: RetentionConfig) -> dict:
    """Collect garbage at the end of a deployment's run; a home in use by another run is left
    for the next one (no waiting: the schedule comes back tomorrow)."""
    report = collect_garbage(Path(home), retention)
    get_run_logger().info("%s", format_gc(report))
    return report.to_json()
