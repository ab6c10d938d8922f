"""Task result records are written atomically: a process killed while it writes one leaves no
record that a later run reads as valid, and the later run recomputes (issue 23, point 5)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest
from prefect.filesystems import LocalFileSystem
from prefect.results import ResultRecord

from tasks.core import atomic
from tasks.core.results import AtomicLocalFileSystem, result_storage

ROOT = Path(__file__).resolve().parent.parent
KEY = "the-cache-key"

# A flow with one cached, persisted task whose result is large (tens of MB: its record takes
# a while to write). With "kill", a thread started just before the task returns SIGKILLs the
# process as soon as anything appears in the cache directory: mid-write, whatever the writer.
CHILD = r'''
import os, signal, sys, threading, time
from pathlib import Path

from prefect import flow, task
from prefect.cache_policies import CacheKeyFnPolicy

from tasks.core.results import stored_in

cache, storage_kind, kill, marker = Path(sys.argv[1]), sys.argv[2], sys.argv[3], Path(sys.argv[4])
SIZE = 40_000_000


def kill_on_first_entry():
    while True:
        if cache.is_dir() and any(cache.iterdir()):
            os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(0.0001)


def kill_before_rename():
    def replace(src, dst):
        os.kill(os.getpid(), signal.SIGKILL)
    os.replace = replace


@task(cache_policy=CacheKeyFnPolicy(cache_key_fn=lambda context, parameters: "KEY"),
      persist_result=True)
def big(n: int) -> bytes:
    marker.write_text("computed")
    if kill == "first-entry":
        threading.Thread(target=kill_on_first_entry, daemon=True).start()
    elif kill == "before-rename":
        kill_before_rename()
    return b"x" * n


# "plain": a Path, which Prefect stores through its own LocalFileSystem (the control)
big = big.with_options(result_storage=cache) if storage_kind == "plain" else stored_in(cache, big)


@flow
def once() -> int:
    return len(big(SIZE))


print("result length", once())
'''.replace('"KEY"', repr(KEY))


def _child(tmp_path: Path, env: dict[str, str], storage: str,
           kill: str) -> subprocess.CompletedProcess:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    marker = tmp_path / "marker"
    marker.unlink(missing_ok=True)
    return subprocess.run([sys.executable, str(script), str(tmp_path / "cache"), storage, kill,
                           str(marker)], cwd=ROOT, env={**env, "PYTHONPATH": str(ROOT)},
                          capture_output=True, text=True, timeout=300)


def _reads_as_valid(record: Path) -> bool:
    try:
        ResultRecord.deserialize(record.read_bytes())
    except Exception:  # noqa: BLE001 - anything Prefect cannot load is not a valid record
        return False
    return True


def test_a_record_is_written_whole_or_not_at_all(tmp_path, monkeypatch):
    storage = result_storage(tmp_path / "cache")
    assert isinstance(storage, LocalFileSystem)
    storage.write_path(KEY, content=b"first")
    assert storage.read_path(KEY) == b"first"

    def fail(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(atomic.os, "replace", fail)
    with pytest.raises(OSError):
        storage.write_path(KEY, content=b"second, never seen")
    monkeypatch.undo()
    assert storage.read_path(KEY) == b"first"
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == [KEY]  # no temp left
    storage.write_path(KEY, content=b"second")
    assert (tmp_path / "cache" / KEY).read_bytes() == b"second"


def test_the_async_write_is_atomic_too(tmp_path):
    storage = AtomicLocalFileSystem(basepath=str(tmp_path))
    asyncio.run(storage.awrite_path("k", b"data"))
    assert (tmp_path / "k").read_bytes() == b"data"


@pytest.mark.slow
@pytest.mark.parametrize("kill", ["first-entry", "before-rename"])
def test_sigkill_while_a_result_is_written_leaves_no_valid_record_and_the_next_run_recomputes(
        tmp_path, cli_env, kill):
    killed = _child(tmp_path, cli_env, "atomic", kill)
    assert killed.returncode == -9, killed.stdout + killed.stderr
    assert (tmp_path / "marker").read_text() == "computed"
    cache = tmp_path / "cache"
    record = cache / KEY
    assert not record.exists() or not _reads_as_valid(record)
    assert not record.exists()  # atomic: the key was never written
    assert [p.name for p in cache.iterdir() if not p.name.startswith(".tmp-")] == []

    again = _child(tmp_path, cli_env, "atomic", "none")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "result length 40000000" in again.stdout
    assert (tmp_path / "marker").read_text() == "computed"  # recomputed, not read
    assert _reads_as_valid(record)

    third = _child(tmp_path, cli_env, "atomic", "none")
    assert third.returncode == 0 and "result length 40000000" in third.stdout
    assert not (tmp_path / "marker").exists()  # now a cache hit: the whole record is valid


@pytest.mark.slow
def test_prefects_own_writer_leaves_a_torn_record_when_killed_the_same_way(tmp_path, cli_env):
    """The control: the same kill against Prefect's LocalFileSystem tears the record itself,
    so the test above kills mid-write, not before or after it."""
    killed = _child(tmp_path, cli_env, "plain", "first-entry")
    assert killed.returncode == -9, killed.stdout + killed.stderr
    record = tmp_path / "cache" / KEY
    assert record.exists() and not _reads_as_valid(record)
