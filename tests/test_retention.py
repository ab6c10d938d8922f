"""Retention (``closecast gc``) and ``closecast status`` (issue 23, points 3 and 4).

Unit tests build a home by hand (real files, real Parquet, records in Prefect's format);
the slow test makes one with real ``closecast run`` processes, runs gc beside a run, kills gc
with SIGKILL midway, and runs again on what it left.
"""

from __future__ import annotations

import base64
import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from tasks.core.atomic import atomic_write_parquet
from tasks.core.errors import InputError
from tasks.core.layout import Layout
from tasks.core.locks import home_exclusive, home_shared
from tasks.core.operations_config import RetentionConfig
from tasks.housekeeping.cache_records import record_paths
from tasks.housekeeping.gc_report import format_gc
from tasks.housekeeping.retention import collect_garbage
from tasks.housekeeping.status import format_status, home_status
from tests.conftest import ROOT, closecast, tree_state

DAY = 86_400
OLD = time.time() - 40 * DAY
GX_OLD = time.strftime("%Y%m%dT%H%M%S", time.gmtime(OLD)) + ".000000Z"
GX_NEW = time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + ".000000Z"


def _record(path: Path, result: object, mtime: float | None = None) -> Path:
    """A task result record as Prefect writes one: metadata and a base64 pickle."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({
        "metadata": {"storage_key": str(path), "expiration": None, "prefect_version": "3.8.8",
                     "serializer": {"type": "pickle", "picklelib": "cloudpickle"},
                     "storage_block_id": None},
        "result": base64.encodebytes(pickle.dumps(result)).decode()}))
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def _file(path: Path, text: str = "x", mtime: float | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def _age_tree(root: Path, mtime: float) -> None:
    for p in [root, *root.rglob("*")]:
        os.utime(p, (mtime, mtime), follow_symlinks=False)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A hand-made home: what a few runs leave, old and new, and what gc must never touch."""
    home = tmp_path / "home"
    h = str(home)
    # staging: one input already stored (its stamp), old; one stored but fresh; one never stored
    _file(home / "staging" / "aaaaaaaaaaaaaaaa-all.parquet", mtime=OLD)
    _file(home / "staging" / "bbbbbbbbbbbbbbbb-all.parquet")
    _file(home / "staging" / "cccccccccccccccc-all.parquet", mtime=OLD)
    _file(home / "staging" / ".tmp-killed.parquet", mtime=OLD)
    _file(home / "lake" / "_stamps" / ("a" * 32 + ".json"), "{}", mtime=OLD)
    _file(home / "lake" / "_stamps" / ("b" * 32 + ".json"), "{}")
    atomic_write_parquet(pd.DataFrame({"date": pd.to_datetime(["2016-12-29", "2016-12-30"]),
                                       "close": [1.0, 2.0]}),
                         home / "lake" / "prices" / "symbol=AAL" / "part.parquet")
    _file(home / "lake" / "forecasts" / "symbol=AAL" / "part.parquet", "ledger", mtime=OLD)
    # work: an old candidate and fold work, a fresh candidate
    _file(home / "work" / "AAL" / "oldkey" / "model.keras", mtime=OLD)
    _file(home / "work" / "AAL" / "backtest-old" / "fold-1" / "model.keras", mtime=OLD)
    _age_tree(home / "work" / "AAL" / "oldkey", OLD)
    _age_tree(home / "work" / "AAL" / "backtest-old", OLD)
    _file(home / "work" / "AAL" / "newkey" / "model.keras")
    # validation: an old and a new GX result
    _file(home / "validation" / "old.csv.result.json", mtime=OLD)
    _file(home / "validation" / "new.csv.result.json")
    for store in ("validations", "data_docs/local_site/validations"):
        base = home / "validation" / "gx" / "uncommitted" / store / "closecast-prices" / "__none__"
        _file(base / GX_OLD / "closecast-prices.json")
        _file(base / GX_NEW / "closecast-prices.json")
    _file(home / "validation" / "gx" / "great_expectations.yml", mtime=OLD)
    _file(home / "validation" / "quarantine" / "bad.parquet", mtime=OLD)
    # models: a version and the champion, old: never touched
    _file(home / "models" / "AAL" / "1" / "model.keras", mtime=OLD)
    _file(home / "models" / "AAL" / "1" / "metrics.json",
          json.dumps({"distribution": {"model": {"source": "garch"}}}), mtime=OLD)
    _file(home / "models" / "AAL" / "champion.json", json.dumps({"version": 1}), mtime=OLD)
    # feature tables: AAL's two superseded ones (old) and its newest (old too: it stays);
    # ZION's only table; a superseded one touched lately
    features = home / "lake" / "features" / "cfg"
    _file(features / "symbol=AAL" / "t1.parquet", mtime=OLD - 2 * DAY)
    _file(features / "symbol=AAL" / "t2.parquet", mtime=OLD - DAY)
    _file(features / "symbol=AAL" / "t3.parquet", mtime=OLD)
    _file(features / "symbol=ZION" / "z1.parquet", mtime=OLD)
    _file(features / "symbol=MSFT" / "m1.parquet", mtime=time.time() - 3600)
    _file(features / "symbol=MSFT" / "m2.parquet")
    # market states of past runs (features.market): the older one goes, the newest stays
    _file(home / "lake" / "market" / "s1.parquet", mtime=OLD - DAY)
    _file(home / "lake" / "market" / "s2.parquet", mtime=OLD)
    # cache: records naming the files above (paths as a run writes them: under the home)
    cache = home / "cache"
    _record(cache / "prepare-old", {"path": f"{h}/lake/features/cfg/symbol=AAL/t1.parquet"})
    _record(cache / "prepare-new", {"path": f"{h}/lake/features/cfg/symbol=AAL/t3.parquet"})
    _record(cache / "ingest-old", {"path": f"{h}/staging/aaaaaaaaaaaaaaaa-all.parquet"})
    _record(cache / "ingest-new", {"path": f"{h}/staging/bbbbbbbbbbbbbbbb-all.parquet"})
    _record(cache / "train-old", (f"{h}/work/AAL/oldkey/model.keras", 3))
    _record(cache / "folds-old", [f"{h}/work/AAL/backtest-old/fold-1/model.keras"])
    _record(cache / "train-new", (f"{h}/work/AAL/newkey/model.keras", 3))
    _record(cache / "validate-old", {"result": f"{h}/validation/old.csv.result.json"})
    _record(cache / "register", {"path": f"{h}/models/AAL/1"})
    _record(cache / "gone", {"path": f"{h}/work/ZION/vanished/model.keras"})
    _record(cache / "ancient", {"path": f"{h}/models/AAL/1"}, mtime=OLD)
    (cache / "torn").write_text('{"metadata": {"storage_k')
    os.utime(cache / "torn", (OLD, OLD))
    _file(cache / ".tmp-killed", mtime=OLD)
    return home


NEVER = ("models", "lake/prices", "lake/forecasts", "lake/_stamps",
         "lake/features/cfg/symbol=AAL/t3.parquet", "lake/features/cfg/symbol=ZION",
         "lake/features/cfg/symbol=MSFT", "lake/market/s2.parquet",
         "validation/gx/great_expectations.yml", "validation/quarantine")


def _kept(home: Path) -> dict:
    return {k: v for name in NEVER for k, v in tree_state(home / name).items()}


def test_gc_removes_what_no_later_run_needs_and_never_a_version_the_lake_or_the_ledger(home):
    never = _kept(home)
    report = collect_garbage(home, RetentionConfig())
    removed = {r.path: r.why for r in report.removed}
    assert set(removed) == {
        "staging/aaaaaaaaaaaaaaaa-all.parquet", "staging/cccccccccccccccc-all.parquet",
        "staging/.tmp-killed.parquet", "work/AAL/oldkey", "work/AAL/backtest-old",
        "validation/old.csv.result.json",
        f"validation/gx/uncommitted/validations/closecast-prices/__none__/{GX_OLD}",
        f"validation/gx/uncommitted/data_docs/local_site/validations/closecast-prices/__none__/"
        f"{GX_OLD}",
        "cache/ingest-old", "cache/train-old", "cache/folds-old", "cache/validate-old",
        "cache/gone", "cache/ancient", "cache/torn", "cache/.tmp-killed",
        "lake/features/cfg/symbol=AAL/t1.parquet", "lake/features/cfg/symbol=AAL/t2.parquet",
        "lake/market/s1.parquet", "cache/prepare-old"}
    assert removed["cache/train-old"] == "names work/AAL/oldkey/model.keras, removed now"
    assert removed["lake/features/cfg/symbol=AAL/t1.parquet"].startswith("superseded by t3")
    assert removed["cache/gone"] == "names work/ZION/vanished/model.keras, which is gone"
    assert [r.area for r in report.removed][:9] == ["cache"] * 9  # records before their files
    assert _kept(home) == never
    for path in removed:
        assert not (home / path).exists()
    for kept in ("staging/bbbbbbbbbbbbbbbb-all.parquet", "work/AAL/newkey/model.keras",
                 "cache/ingest-new", "cache/train-new", "cache/register", "cache/prepare-new",
                 "validation/new.csv.result.json"):
        assert (home / kept).exists(), kept
    assert not (home / ".trash").exists() or not any((home / ".trash").iterdir())
    freed = report.freed()
    assert freed["cache"]["items"] == 9 and freed["work"]["items"] == 2
    assert freed["features"]["items"] == 3
    text = format_gc(report)
    assert "work/" in text and "total" in text and len(text.splitlines()) <= 8
    assert collect_garbage(home, RetentionConfig()).removed == []  # a second gc: nothing left


def test_dry_run_changes_nothing(home):
    before = tree_state(home)
    report = collect_garbage(home, RetentionConfig(), dry_run=True)
    assert len(report.removed) == 20 and report.dry_run
    assert tree_state(home) == before
    assert not (home / ".locks").exists()  # not even the lock file
    assert "dry run" in format_gc(report)


def test_gc_removes_nothing_while_a_run_holds_the_home(home):
    before = tree_state(home)
    with home_shared(Layout(home).home_lock):
        report = collect_garbage(home, RetentionConfig(), wait_seconds=0.5)
    assert report.busy and report.removed == []
    assert {k: v for k, v in tree_state(home).items() if not k.startswith(".locks")} == before
    assert "a run is using this home" in format_gc(report)
    with home_shared(Layout(home).home_lock), home_shared(Layout(home).home_lock):
        pass  # runs share it (a retrain subflow inside a daily run)
    with home_exclusive(Layout(home).home_lock) as alone:
        assert alone


def test_a_missing_home_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="no such directory"):
        collect_garbage(tmp_path / "nowhere")
    with pytest.raises(InputError, match="no such directory"):
        home_status(tmp_path / "nowhere")


def test_record_paths_reads_paths_under_the_home_without_unpickling(tmp_path):
    home = tmp_path / "data"
    record = _record(tmp_path / "r", {"a": "data/work/AAL/k/model.keras",  # a relative home
                                      "b": f"{home}/staging/x.parquet",
                                      "c": "/elsewhere/work/prices.csv",  # an input: not ours
                                      "d": "data/sample/prices.csv"})
    assert record_paths(record, home) == {"work/AAL/k/model.keras", "staging/x.parquet"}
    (tmp_path / "torn").write_text("{")
    assert record_paths(tmp_path / "torn", home) is None


KILL_GC = """
import os, signal, sys, time
from pathlib import Path
import tasks.housekeeping.retention as retention

done, after = [0], int(sys.argv[2])
real = retention.remove
def remove(layout, removal):
    if done[0] == after:
        os.kill(os.getpid(), signal.SIGKILL)
    real(layout, removal)
    done[0] += 1
retention.remove = remove
real_rmtree = retention.shutil.rmtree
def rmtree(path, ignore_errors=False):  # kill halfway through deleting a directory
    files = sorted(p for p in Path(path).rglob("*") if p.is_file())
    if files and after < 0:
        files[0].unlink()
        os.kill(os.getpid(), signal.SIGKILL)
    real_rmtree(path, ignore_errors=ignore_errors)
retention.shutil.rmtree = rmtree
retention.collect_garbage(Path(sys.argv[1]), now=time.time() + float(sys.argv[3]))
"""


def _kill_gc(home: Path, after: int, ahead_days: float = 0) -> None:
    done = subprocess.run([sys.executable, "-c", KILL_GC, str(home), str(after),
                           str(ahead_days * DAY)], cwd=ROOT, env={**os.environ,
                                                                   "PYTHONPATH": str(ROOT)},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == -signal.SIGKILL, done.stderr


def _consistent(home: Path, dangling_before: tuple[str, ...] = ()) -> None:
    """Every record left names only files that are there (but those that already did not)."""
    for record in (home / "cache").iterdir():
        named = record_paths(record, home)
        if named is None or record.name.startswith(".tmp-") or record.name in dangling_before:
            continue
        missing = [n for n in named if not (home / n).exists()]
        assert not missing, f"{record.name} names {missing}"


@pytest.mark.parametrize("after", [0, 3, 9, -1])
def test_sigkill_in_the_middle_of_gc_leaves_a_consistent_home_the_next_gc_finishes(home, after):
    never = _kept(home)
    _kill_gc(home, after)
    _consistent(home, dangling_before=("gone",))
    assert _kept(home) == never
    report = collect_garbage(home, RetentionConfig())
    _consistent(home)
    assert not (home / ".trash").exists() or not any((home / ".trash").iterdir())
    assert not (home / "work" / "AAL" / "oldkey").exists()
    assert _kept(home) == never
    assert all(r.area != ".trash" for r in report.removed) or after == -1


def test_status_fits_one_screen_for_500_symbols(tmp_path):
    home = tmp_path / "home"
    frame = pd.DataFrame({"date": pd.bdate_range("2016-12-01", "2016-12-30"), "close": 1.0})
    symbols = [f"S{i:03d}" for i in range(500)]
    for i, symbol in enumerate(symbols):
        rows = frame if i % 100 else frame.iloc[:-3]  # five symbols behind
        atomic_write_parquet(rows, home / "lake" / "prices" / f"symbol={symbol}" / "part.parquet")
    for symbol in symbols[:300]:
        _file(home / "models" / symbol / "1" / "metrics.json", json.dumps(
            {"rmse": 1.0, "naive_rmse": 1.0, "rmse_vs_naive": 1.0, "distribution": {
                "model": {"crps": 0.9, "source": "garch"}, "constant": {"crps": 1.0}}}))
        _file(home / "models" / symbol / "champion.json", json.dumps({"version": 1}))
    _file(home / "models" / "S301" / "1" / "metrics.json", "{}")
    status = home_status(home)
    text = format_status(status)
    lines = text.splitlines()
    assert len(lines) <= 12 and max(map(len, lines)) <= 240, text
    assert status["lake"]["symbols"] == 500 and status["lake"]["at_last_date"] == 495
    assert status["lake"]["last_date"] == "2016-12-30" and len(status["lake"]["behind"]) == 5
    assert "S000 2016-12-27" in text and "5 behind" in text
    assert status["models"]["champions"] == 300 and status["models"]["by_source"] == {
        "garch": 300}
    assert status["models"]["without_champion"] == ["S301"]
    one = home_status(home, "S001")["symbol"]
    assert one["rows"] == len(frame) and one["champion"] == 1 and one["versions"] == [1]


def test_status_of_an_empty_home(tmp_path):
    text = format_status(home_status(tmp_path))
    assert "lake: empty" in text and "0 champion(s)" in text and "disk: empty" in text


@pytest.mark.slow
def test_gc_beside_a_run_then_killed_midway_leaves_a_home_the_next_run_uses(tmp_path, cli_env):
    """Real runs: gc started while a run uses the home (cache hits on every record) removes
    nothing that run needs; gc then removes (as if 40 days had passed), is SIGKILLed midway,
    and the next run on what it left completes without error and adds no version."""
    home = tmp_path / "home"
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps({"model": {"units": [4], "epochs": 2, "batch_size": 256,
                                            "patience": 2},
                                  "features": {"window": 5}, "backtest": {"folds": 2,
                                                                          "epochs": 1}}))
    args = ["run", "--symbols", "AAL", "--config", str(config), "--home", str(home)]
    code, output = closecast(cli_env, *args)
    assert code == 0, output
    assert "AAL v1" in output

    env = {**cli_env, "PYTHONPATH": str(ROOT)}
    second = subprocess.Popen([sys.executable, "-m", "flows.cli", *args], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lock = Layout(home).home_lock
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and second.poll() is None:
        with home_exclusive(lock) as alone:
            if not alone:
                break  # the run holds the home
        time.sleep(0.05)
    assert second.poll() is None, "the run ended before gc could start beside it"
    during = collect_garbage(home, RetentionConfig(), now=time.time() + 40 * DAY)
    out, _ = second.communicate(timeout=300)
    assert second.returncode == 0, out
    assert during.busy and during.removed == []
    assert "AAL v1" in out  # all cached: the same version

    planned = collect_garbage(home, RetentionConfig(), dry_run=True, now=time.time() + 40 * DAY)
    areas = {r.area for r in planned.removed}
    assert {"cache", "work", "staging", "validation"} <= areas, planned.removed
    _kill_gc(home, after=len(planned.removed) // 2, ahead_days=40)
    _consistent(home)
    assert (home / "models" / "AAL" / "champion.json").exists()

    code, output = closecast(cli_env, *args)
    assert code == 0, output
    assert "AAL v1" in output  # registration found the version it already wrote
    assert sorted(p.name for p in (home / "models" / "AAL").iterdir()
                  if not p.name.startswith(".")) == ["1", "champion.json"]
    code, output = closecast(cli_env, "gc", "--home", str(home), "--json")
    assert code == 0, output
    assert json.loads(output.strip().splitlines()[-1])["busy"] is False
    assert not (home / ".trash").exists() or not any((home / ".trash").iterdir())
