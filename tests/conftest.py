"""Shared fixtures: a real Prefect engine, real data files, tiny configs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from tasks.core.config import RunConfig  # noqa: E402
from tasks.core.training_config import BacktestConfig, FeatureConfig, ModelConfig, SplitConfig  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


# Real files copied into the repository (provenance and quirks: tests/data/README.md):
# tests read nothing outside the checkout and their temp dirs.
REAL = ROOT / "tests" / "data"
SAMPLE = ROOT / "data" / "sample" / "prices-split-adjusted.csv"
KAGGLE_SUBSET = REAL / "kaggle_nyse_prices-split-adjusted_AAL_ZION.csv"
# Rows of Kaggle's S&P 500 market file (all_stocks_5yr.csv) carrying its quirks, gzipped
MARKET_SUBSET = REAL / "kaggle_sp500_5yr_quirks.csv.gz"


@pytest.fixture(scope="session")
def prefect_harness():
    """One temporary Prefect server and database for the whole session (~12 s to enter)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="session")
def cli_env(prefect_harness) -> dict[str, str]:
    """Environment of `closecast` child processes: this checkout on the path and the harness's
    Prefect API (so that no child starts a temporary server of its own)."""
    from prefect.settings import PREFECT_API_URL

    return {**os.environ, "PYTHONPATH": str(ROOT), "PREFECT_API_URL": PREFECT_API_URL.value()}


def closecast(env: dict[str, str], *args: str) -> tuple[int, str]:
    """Run `python -m flows.cli ARGS` as a real child process; its exit code and output."""
    done = subprocess.run([sys.executable, "-m", "flows.cli", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    return done.returncode, done.stdout + done.stderr


@pytest.fixture
def tiny_config(tmp_path: Path) -> RunConfig:
    """A config that trains in a second or two: one symbol, a small net, two epochs."""
    return RunConfig(
        home=tmp_path / "home",
        input=SAMPLE,
        symbols=("AAL",),
        features=FeatureConfig(window=5),
        split=SplitConfig(),
        model=ModelConfig(units=(4,), epochs=2, batch_size=256, patience=2),
        backtest=BacktestConfig(folds=2, epochs=1),
    )


def tree_state(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under root with its size and mtime, to prove nothing changed."""
    if not root.exists():
        return {}
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*")) if p.is_file()}
