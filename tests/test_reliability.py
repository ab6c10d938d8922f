"""Reliability under faults, crashes and concurrent runs: real processes, signals and files."""

from __future__ import annotations

import ctypes
import errno
import json
import os
import select
import shutil
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from flows.cli import main
from tasks.core.errors import RegistryError
from tasks.registry.integrity import check_version, damaged_files, load_version_model
from tasks.registry.registry import list_versions, read_champion
from tests.conftest import KAGGLE_SUBSET, ROOT, SAMPLE, tree_state

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]

SYMBOL = "AAL"


def write_config(path: Path, seed: int, epochs: int = 2, patience: int = 2) -> Path:
    """A run config that trains in a second or two (or for ages, with many epochs)."""
    path.write_text(json.dumps({
        "features": {"window": 5},
        "model": {"units": [4], "epochs": epochs, "batch_size": 256, "patience": patience,
                  "seed": seed}}))
    return path


def run_args(home: Path, config: Path, *extra: str) -> list[str]:
    return ["run", "--home", str(home), "--symbols", SYMBOL, "--config", str(config), *extra]


@pytest.fixture
def child_env(prefect_harness) -> dict[str, str]:
    """Environment for `closecast` child processes: this checkout, the harness's Prefect API."""
    from prefect.settings import PREFECT_API_URL

    return {**os.environ, "PYTHONPATH": str(ROOT), "PREFECT_API_URL": PREFECT_API_URL.value()}


def spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    """Start `python -m flows.cli ARGS` as a real child process, output to a log file."""
    handle = open(log, "wb")  # noqa: SIM115 - closed by the child's exit / the test's tmp_path
    return subprocess.Popen([sys.executable, "-m", "flows.cli", *args], cwd=ROOT, env=env,
                            stdout=handle, stderr=subprocess.STDOUT)


def wait_for(predicate, proc: subprocess.Popen, timeout: float = 180.0, every: float = 0.02):
    """Poll until predicate() is truthy; fail if the child exits or time runs out first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        assert proc.poll() is None, f"child exited early with {proc.returncode}"
        time.sleep(every)
    raise AssertionError("timed out waiting for the child")


def symbol_entries(home: Path) -> list[str]:
    return sorted(p.name for p in (home / "models" / SYMBOL).iterdir())


# --- 1. retries ---------------------------------------------------------------------------------


@pytest.fixture
def flaky_reader(monkeypatch):
    """Fake the I/O device under the CSV reader: reading one chosen file fails N times (EIO)."""
    real = pd.read_csv
    state = {"path": None, "failures_left": 0, "attempts": 0}

    def read_csv(path, *args, **kwargs):
        if state["path"] is not None and Path(path) == state["path"]:
            state["attempts"] += 1
            if state["failures_left"] > 0:
                state["failures_left"] -= 1
                raise OSError(errno.EIO, "Input/output error (flaky device)", str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(pd, "read_csv", read_csv)
    return state


@pytest.fixture
def fast_retries(monkeypatch):
    """The real ingest task with its real retry count and condition, but short delays."""
    import flows.prices
    from tasks.core.caching import IO_RETRIES, is_transient
    from tasks.data.ingest import ingest_task

    assert ingest_task.retries == IO_RETRIES["retries"] == 2
    assert ingest_task.retry_condition_fn is is_transient
    fast = ingest_task.with_options(retry_delay_seconds=0.05)
    assert fast.retries == 2 and fast.retry_condition_fn is is_transient
    monkeypatch.setattr(flows.prices, "ingest_task", fast)  # the data half of every flow


def test_flaky_source_recovers_and_a_dead_one_stores_nothing(tmp_path, flaky_reader,
                                                             fast_retries, capsys):
    home = tmp_path / "home"
    config = write_config(tmp_path / "c.json", seed=1)
    flaky_reader.update(path=SAMPLE, failures_left=2)
    assert main(run_args(home, config, "--json")) == 0
    assert flaky_reader["attempts"] == 3, "two failures, then the third attempt answered"
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert [m["version"] for m in summary["models"]] == [1]
    assert damaged_files(home / "models" / SYMBOL / "1") == []

    before = tree_state(home / "lake") | tree_state(home / "models")
    flaky_reader.update(path=KAGGLE_SUBSET, failures_left=10**6, attempts=0)
    code = main(run_args(home, config, "--input", str(KAGGLE_SUBSET)))
    err = capsys.readouterr().err
    assert code == 1 and flaky_reader["attempts"] == 3, "1 try + the 2 configured retries"
    last = err.strip().splitlines()[-1]  # the CLI's own message, not an uncaught exception
    assert last.startswith(f"closecast run: error: {KAGGLE_SUBSET}: I/O failed after retries")
    assert tree_state(home / "lake") | tree_state(home / "models") == before


# --- 2. SIGKILL ---------------------------------------------------------------------------------

IN_CREATE = 0x100
_EVENT = struct.Struct("iIII")


def kill_on_create(directory: Path, prefix: str, proc: subprocess.Popen,
                   timeout: float = 180.0) -> str | None:
    """SIGKILL proc the moment an entry named prefix* is created in directory (inotify)."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
    assert fd >= 0 and libc.inotify_add_watch(fd, str(directory).encode(), IN_CREATE) >= 0
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if not select.select([fd], [], [], 0.2)[0]:
                continue
            data = os.read(fd, 65536)
            while data:
                _, _, _, size = _EVENT.unpack_from(data)
                name = data[_EVENT.size:_EVENT.size + size].rstrip(b"\0").decode()
                data = data[_EVENT.size + size:]
                if name.startswith(prefix):
                    proc.send_signal(signal.SIGKILL)
                    proc.wait()
                    return name
        return None
    finally:
        os.close(fd)


def test_sigkill_in_training_or_registration_leaves_the_registry_whole(tmp_path, child_env,
                                                                       capsys):
    home, models = tmp_path / "home", tmp_path / "home" / "models"
    assert main(run_args(home, write_config(tmp_path / "c1.json", seed=1))) == 0
    assert main(["models", "promote", SYMBOL, "1", "--home", str(home)]) == 0
    champion_bytes = (models / SYMBOL / "champion.json").read_bytes()

    # Killed during training: once the first epoch's checkpoint is on disk.
    work = home / "work" / SYMBOL
    seen = {p.name for p in work.iterdir()}
    long_run = write_config(tmp_path / "long.json", seed=2, epochs=5000, patience=5000)
    proc = spawn(run_args(home, long_run), child_env, tmp_path / "killed-train.log")
    wait_for(lambda: [p for p in work.iterdir() if p.name not in seen
                      and (p / "model.keras").exists()], proc)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    assert list_versions(models, SYMBOL) == [1]
    assert symbol_entries(home) == [".lock", "1", "champion.json"]
    assert (models / SYMBOL / "champion.json").read_bytes() == champion_bytes

    assert main(run_args(home, write_config(tmp_path / "c2.json", seed=2))) == 0
    assert list_versions(models, SYMBOL) == [1, 2]
    # a complete run may promote (it beat the champion's CRPS on the same test window)
    champion_bytes = (models / SYMBOL / "champion.json").read_bytes()

    # Killed while registering: the instant its temp version directory appears.
    caught, seed = None, 3
    while caught is None and seed < 6:
        proc = spawn(run_args(home, write_config(tmp_path / f"c{seed}.json", seed=seed)),
                     child_env, tmp_path / f"killed-register-{seed}.log")
        name = kill_on_create(models / SYMBOL, ".tmp-", proc)
        assert name is not None, (tmp_path / f"killed-register-{seed}.log").read_text()[-2000:]
        if (models / SYMBOL / name).exists():
            caught = seed  # killed mid-fill: its half-written temp directory is left behind
        else:
            seed += 1  # the rename won the race: that version is complete, try again
    assert caught is not None, "never managed to kill a run in the middle of registering"
    complete = list_versions(models, SYMBOL)
    assert all(damaged_files(models / SYMBOL / str(v)) == [] for v in complete)
    # unchanged, unless a run that won the race to rename completed and was promoted
    champion_now = (models / SYMBOL / "champion.json").read_bytes()
    assert champion_now == champion_bytes or json.loads(champion_now)["version"] in complete[2:]

    capsys.readouterr()
    assert main(run_args(home, tmp_path / f"c{caught}.json", "--json")) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["models"][0]["version"] == complete[-1] + 1
    assert not [n for n in symbol_entries(home) if n.startswith(".tmp-")], "stale temps cleaned"
    assert check_version(models, SYMBOL, read_champion(models, SYMBOL)["version"])


# --- 3. concurrency -----------------------------------------------------------------------------


def test_four_concurrent_runs_get_four_complete_versions(tmp_path, child_env):
    from flows.models import promote

    home, models = tmp_path / "home", tmp_path / "home" / "models"
    procs = [spawn(run_args(home, write_config(tmp_path / f"c{s}.json", seed=s), "--json"),
                   child_env, tmp_path / f"run-{s}.log") for s in range(11, 15)]
    reads, promotions, champion = 0, 0, models / SYMBOL / "champion.json"
    last_promote = 0.0
    while any(p.poll() is None for p in procs):
        if champion.exists():
            record = json.loads(champion.read_text())  # never torn: always whole JSON
            assert check_version(models, SYMBOL, record["version"])  # names a complete version
            reads += 1
        versions = list_versions(models, SYMBOL) if (models / SYMBOL).exists() else []
        if versions and time.monotonic() - last_promote > 0.2:
            promote(models, SYMBOL, versions[-1])  # a fifth writer, racing the runs
            promotions, last_promote = promotions + 1, time.monotonic()
        time.sleep(0.02)
    logs = [(tmp_path / f"run-{s}.log").read_text() for s in range(11, 15)]
    assert [p.returncode for p in procs] == [0] * 4, logs
    reported = sorted(json.loads(log.strip().splitlines()[-1])["models"][0]["version"]
                      for log in logs)
    assert reported == list_versions(models, SYMBOL) == [1, 2, 3, 4]
    seeds = {json.loads((models / SYMBOL / str(v) / "manifest.json").read_text())["model"]["seed"]
             for v in reported}
    assert seeds == {11, 12, 13, 14}, "each run's own model is in its own version"
    assert all(damaged_files(models / SYMBOL / str(v)) == [] for v in reported)
    assert reads > 50 and promotions > 0
    assert len(pd.read_parquet(home / "lake" / "prices" / f"symbol={SYMBOL}")) == 1762
    assert not [n for n in symbol_entries(home) if n.startswith(".")and n != ".lock"]


# --- 4. a write that fails ----------------------------------------------------------------------


class SmallDisk:
    """A real 16 MiB tmpfs (root can mount one; GX Data Docs alone take ~4.3 MiB); where
    mounting is refused, a patched writer
    that fails inside the registry's temp directories with ENOSPC."""

    def __init__(self, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.root, self.monkeypatch = root, monkeypatch
        root.mkdir()
        self.mounted = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(root)],
            capture_output=True, check=False).returncode == 0

    def fill(self, leave: int) -> None:
        """Leave about ``leave`` bytes free (a ballast file), or start failing registry writes."""
        if self.mounted:
            stat = os.statvfs(self.root)
            (self.root / "ballast").write_bytes(b"\0" * max(0, stat.f_bavail * stat.f_frsize
                                                            - leave))
            return
        real = Path.write_text

        def write_text(path: Path, *args, **kwargs):
            if "models" in path.parts and any(p.startswith(".tmp-") for p in path.parts):
                raise OSError(errno.ENOSPC, "No space left on device", str(path))
            return real(path, *args, **kwargs)

        self.monkeypatch.setattr(Path, "write_text", write_text)

    def free(self) -> None:
        """Give the space back."""
        if self.mounted:
            (self.root / "ballast").unlink()
        else:
            self.monkeypatch.undo()


@pytest.fixture
def small_disk(tmp_path, monkeypatch):
    disk = SmallDisk(tmp_path / "disk", monkeypatch)
    yield disk
    if disk.mounted:
        subprocess.run(["umount", "-l", str(disk.root)], check=False)


def test_disk_full_fails_clearly_and_leaves_the_previous_state_readable(tmp_path, small_disk,
                                                                        capsys):
    home, models = small_disk.root / "home", small_disk.root / "home" / "models"
    assert main(run_args(home, write_config(tmp_path / "c1.json", seed=1))) == 0
    assert main(["models", "promote", SYMBOL, "1", "--home", str(home)]) == 0
    before = tree_state(home / "lake") | tree_state(models)
    # what one run writes before registering: its candidate, its backtest folds and the task
    # results (metrics with the per-fold distribution scores are a few tens of KB)
    work_bytes = sum(p.stat().st_size for d in ("work", "cache")
                     for p in (home / d).rglob("*") if p.is_file())
    version_bytes = sum(p.stat().st_size for p in (models / SYMBOL / "1").rglob("*"))
    assert version_bytes > work_bytes + 100_000, "the version needs more than training does"
    # Room to train and evaluate a second candidate, not to register it.
    small_disk.fill(work_bytes + 50_000)
    capsys.readouterr()

    assert main(run_args(home, write_config(tmp_path / "c2.json", seed=2))) == 1
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]  # the CLI's own message, not an uncaught exception
    assert last.startswith("closecast run: error: ") and "No space left on device" in last
    assert "could not write AAL version 2" in last and "nothing was published" in last
    assert tree_state(home / "lake") | tree_state(models) == before
    assert symbol_entries(home) == [".lock", "1", "champion.json"]
    assert main(["models", "show", SYMBOL, "--home", str(home)]) == 0
    assert json.loads(capsys.readouterr().out)["version"] == 1
    assert len(pd.read_parquet(home / "lake" / "prices" / f"symbol={SYMBOL}")) == 1762

    small_disk.free()  # space freed: the same run now goes through
    assert main(run_args(home, tmp_path / "c2.json")) == 0
    assert list_versions(models, SYMBOL) == [1, 2]


# --- 5. damage ----------------------------------------------------------------------------------


def test_damaged_model_is_reported_with_its_path_and_others_keep_working(tmp_path, capsys):
    home, models = tmp_path / "home", tmp_path / "home" / "models"
    for seed in (1, 2):
        assert main(run_args(home, write_config(tmp_path / f"c{seed}.json", seed=seed))) == 0
    bad = models / SYMBOL / "2" / "model.keras"
    bad.write_bytes(bad.read_bytes()[: bad.stat().st_size // 2])  # truncated, not empty
    capsys.readouterr()

    assert main(["models", "show", SYMBOL, "2", "--home", str(home)]) == 1
    err = capsys.readouterr().err
    assert "damaged" in err and "model.keras" in err and str(bad.parent) in err
    assert main(["models", "list", "--home", str(home)]) == 0
    lines = capsys.readouterr().out.splitlines()
    (v1,) = [line for line in lines if line.split()[:2] == [SYMBOL, "1"]]
    (v2,) = [line for line in lines if line.split()[:2] == [SYMBOL, "2"]]
    assert "DAMAGED" in v2 and str(bad.parent) in v2 and "DAMAGED" not in v1
    assert main(["models", "show", SYMBOL, "1", "--home", str(home)]) == 0
    assert json.loads(capsys.readouterr().out)["version"] == 1
    assert main(["models", "promote", SYMBOL, "2", "--home", str(home)]) == 1
    assert read_champion(models, SYMBOL) is None or read_champion(models, SYMBOL)["version"] != 2

    with pytest.raises(RegistryError, match=str(bad.parent)):
        load_version_model(models, SYMBOL, 2)
    model = load_version_model(models, SYMBOL, 1)
    # r, |r|, r^2, GARCH/EWMA sigma, Parkinson, Garman-Klass in; the hybrid's correction out
    assert model.predict(np.zeros((2, 5, 7), dtype="float32"), verbose=0).shape == (2, 3)

    flipped = models / SYMBOL / "1" / "model.keras"  # same size, one byte of bit rot
    shutil.copy2(flipped, tmp_path / "good.keras")
    data = bytearray(flipped.read_bytes())
    data[len(data) // 3] ^= 0xFF
    flipped.write_bytes(bytes(data))
    assert any("model.keras" in p for p in damaged_files(flipped.parent))
    shutil.copy2(tmp_path / "good.keras", flipped)
    assert damaged_files(flipped.parent) == []


# --- 6. determinism -----------------------------------------------------------------------------


def test_same_input_config_and_seed_give_the_same_model_and_metrics(tmp_path):
    from tasks.core.training_config import EvaluationConfig, FeatureConfig, ModelConfig, SplitConfig
    from tasks.data.ingest import read_prices
    from tasks.data.lake import upsert_prices
    from tasks.evaluation.evaluate import evaluate_model
    from tasks.features.datasets import prepare_dataset
    from tasks.forecaster.network import load_model, train_model

    upsert_prices(read_prices(SAMPLE, symbols=[SYMBOL]), tmp_path / "lake")
    features = FeatureConfig(window=5)
    dataset = prepare_dataset(tmp_path / "lake", SYMBOL, None, features, SplitConfig())
    cfg = ModelConfig(units=(4,), epochs=2, batch_size=128, patience=2, seed=7)
    runs = []
    for name in ("a", "b"):
        trained = train_model(dataset.path, SYMBOL, cfg, tmp_path / name)
        evaluation = evaluate_model(trained.model_path, dataset.path, SYMBOL, dataset.scaler,
                                    features, dataset.n_train, tmp_path / name,
                                    EvaluationConfig())
        weights = load_model(trained.model_path).get_weights()
        runs.append((json.loads(Path(trained.history_path).read_text()), evaluation.metrics,
                     weights))
    (hist_a, metrics_a, weights_a), (hist_b, metrics_b, weights_b) = runs
    assert hist_a == hist_b and metrics_a == metrics_b
    assert all(np.array_equal(a, b) for a, b in zip(weights_a, weights_b, strict=True))
    from tasks.forecaster.network import build_lstm

    first = build_lstm(5, 1, units=cfg.units, seed=7).get_weights()
    again = build_lstm(5, 1, units=cfg.units, seed=7).get_weights()
    other = build_lstm(5, 1, units=cfg.units, seed=8).get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other, strict=True)), \
        "the seed matters"
