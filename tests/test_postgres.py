"""The Prefect server on PostgreSQL (Debian's package): health, and a closecast run stored there."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.conftest import SAMPLE
from tests.prefect_server import ROOT, free_port, prefect_server, process_env

pytestmark = [pytest.mark.slow, pytest.mark.timeout(400)]

SCRIPT = ROOT / "scripts" / "start_postgres.sh"
TINY = {"input": str(SAMPLE), "symbols": ["AAL"], "features": {"window": 5},
        "model": {"units": [4], "epochs": 1, "batch_size": 256, "patience": 1}}


def _postgres_installed() -> bool:
    return subprocess.run(["bash", "-c", "ls /usr/lib/postgresql/*/bin/pg_ctl || command -v "
                           "pg_ctl"], capture_output=True).returncode == 0


@pytest.fixture(scope="module")
def postgres_url():
    """A throwaway PostgreSQL cluster (scripts/start_postgres.sh), stopped and removed after."""
    if not _postgres_installed():
        if os.environ.get("CLOSECAST_REQUIRE_POSTGRES") or os.environ.get("CI"):
            pytest.fail("CI or CLOSECAST_REQUIRE_POSTGRES is set but PostgreSQL is not installed")
        pytest.skip("PostgreSQL not installed: run `scripts/start_postgres.sh install` "
                    "(.ci/run does, and then requires this test)")
    # not under pytest's tmp: the postgres user must be able to reach the directory
    workdir = Path(tempfile.mkdtemp(prefix="closecast-pg-"))
    started = subprocess.run([str(SCRIPT), "start", str(workdir), str(free_port())],
                             capture_output=True, text=True, timeout=120)
    try:
        assert started.returncode == 0, started.stderr
        yield started.stdout.strip().splitlines()[-1]
    finally:
        subprocess.run([str(SCRIPT), "stop", str(workdir)], capture_output=True, timeout=60)
        shutil.rmtree(workdir, ignore_errors=True)


async def _flow_run_state(database_url: str, flow_run_id: str) -> str | None:
    import asyncpg

    dsn = database_url.replace("postgresql+asyncpg://", "postgresql://")
    connection = await asyncpg.connect(dsn)
    try:
        return await connection.fetchval("SELECT state_type FROM flow_run WHERE id = $1::uuid",
                                         flow_run_id)
    finally:
        await connection.close()


def test_prefect_server_runs_on_postgres(postgres_url, tmp_path):
    config = tmp_path / "config.json"
    config.write_text(json.dumps(TINY))
    with prefect_server(tmp_path, database_url=postgres_url) as api_url:
        env = process_env(tmp_path / "client-home", PREFECT_API_URL=api_url)
        done = subprocess.run([sys.executable, "-m", "flows.cli", "run", "--config", str(config),
                               "--home", str(tmp_path / "home"), "--json"], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
    flow_run_id = json.loads(done.stdout.strip().splitlines()[-1])["flow_run_id"]
    # the run is in PostgreSQL itself, not in some SQLite file
    assert asyncio.run(_flow_run_state(postgres_url, flow_run_id)) == "COMPLETED"
