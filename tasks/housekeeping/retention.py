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

What goes is decided in ``gc_plan`` (the paths a record names, in ``cache_records``); what gc
freed is told by ``gc_report``. This module removes it, under the home lock.
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from tasks.core.errors import InputError
from tasks.core.layout import Layout
from tasks.core.locks import home_exclusive
from tasks.core.operations_config import RetentionConfig
from tasks.housekeeping.gc_plan import Removal, plan
from tasks.housekeeping.gc_report import GcReport, format_gc


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


@task(name="gc", cache_policy=NO_CACHE)
def gc_task(home: str, retention: RetentionConfig) -> dict:
    """Collect garbage at the end of a deployment's run; a home in use by another run is left
    for the next one (no waiting: the schedule comes back tomorrow)."""
    report = collect_garbage(Path(home), retention)
    get_run_logger().info("%s", format_gc(report))
    return report.to_json()
