"""End to end: a real Prefect server, `closecast serve`, runs via the client, `prefect deploy`."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from flows.deployments import PREFECT_FILE
from tests.conftest import SAMPLE
from tests.prefect_server import ROOT, prefect_server, process_env, running

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

DEPLOYMENT = "closecast-train/weekly-retrain"
DAILY = "closecast-daily/daily"
ARTIFACT_KEYS = {"training-summary", "aal-report", "aal-report-html"}
MONITOR_KEYS = {"monitor-scores", "monitor-summary"}
TINY = {"symbols": ["AAL"], "features": {"window": 5},
        "model": {"units": [4], "epochs": 1, "batch_size": 256, "patience": 1}}


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> str:
    """One real `prefect server start` for this module, stopped at the end whatever happens."""
    with prefect_server(tmp_path_factory.mktemp("prefect-server")) as url:
        yield url


def tiny_prefect_file(target: Path, home: Path) -> Path:
    """deployments/prefect.yaml with the training config shrunk to seconds, home in tmp."""
    document = yaml.safe_load(PREFECT_FILE.read_text())
    for deployment in document["deployments"]:  # weekly-retrain and daily share the config
        deployment["parameters"]["config"] = {**deployment["parameters"]["config"], **TINY,
                                              "home": str(home), "input": str(SAMPLE)}
    target.write_text(yaml.safe_dump(document))
    return target


def api(url: str, call):
    """Run ``await call(client)`` against the given API."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    async def go():
        async with get_client() as client:
            return await call(client)

    with temporary_settings({PREFECT_API_URL: url}):
        return asyncio.run(go())


def wait_for(what: str, probe, timeout: float, every: float = 1.0):
    """Call probe until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(every)
    raise TimeoutError(f"{what}: nothing after {timeout} s")


async def _deployment_or_none(client, name: str):
    from prefect.exceptions import ObjectNotFound

    try:
        return await client.read_deployment_by_name(name)
    except ObjectNotFound:
        return None


async def _artifact_keys(client, flow_run_id) -> set[str]:
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    artifacts = await client.read_artifacts(
        artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])))
    return {a.key for a in artifacts if a.key}


def run_scheduled(url: str, name: str, scheduled: datetime):
    """Start a run of a served deployment as if its schedule had created it; wait for the end."""
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: url}):
        flow_run = run_deployment(name, scheduled_time=scheduled, timeout=0)

    def final_state():
        run = api(url, lambda c: c.read_flow_run(flow_run.id))
        return run.state if run.state.is_final() else None

    return flow_run, wait_for("flow run to finish", final_state, timeout=240, every=2)


async def _latest_artifacts(client, flow_run_id) -> dict:
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    artifacts = await client.read_artifacts(
        artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])))
    return {a.key: a.data for a in artifacts if a.key}


def test_served_deployments_retrain_then_forecast_and_score_day_by_day(server, tmp_path):
    """weekly-retrain as of 2016-10-31 (the champion), then `daily` on Nov 1 and Nov 2: the
    ledger gets one forecast a day, the second day scores the first, the API has the monitor."""
    from flows.models import promote
    from tasks.reporting.images import relative_images
    from tasks.serving.ledger import read_ledger

    home = tmp_path / "home"
    prefect_file = tiny_prefect_file(tmp_path / "prefect.yaml", home)
    env = process_env(tmp_path / "serve-home", PREFECT_API_URL=server)
    serve = [sys.executable, "-m", "flows.cli", "serve", "--prefect-file", str(prefect_file)]
    with running(serve, env, tmp_path / "serve.log"):
        deployment, daily = (wait_for(f"served {name}", lambda n=name: api(
            server, lambda c: _deployment_or_none(c, n)), timeout=120)
            for name in (DEPLOYMENT, DAILY))
        schedule = deployment.schedules[0].schedule
        assert (schedule.cron, schedule.timezone) == ("0 8 * * 6", "America/New_York")
        assert (daily.schedules[0].schedule.cron, daily.schedules[0].schedule.timezone) == (
            "30 18 * * 1-5", "America/New_York")
        assert "config" in deployment.parameter_openapi_schema["properties"]  # typed UI form
        assert {"config", "policy"} <= set(daily.parameter_openapi_schema["properties"])
        # A run scheduled for Mon 31 Oct 2016, 18:30 New York: as_of defaults to that date.
        log = tmp_path / "serve.log"
        train_run, state = run_scheduled(server, DEPLOYMENT, datetime(2016, 10, 31, 22, 30,
                                                                      tzinfo=UTC))
        assert state.is_completed(), f"{state}\n{log.read_text()[-4000:]}"
        assert ARTIFACT_KEYS <= api(server, lambda c: _artifact_keys(c, train_run.id))
        manifest = json.loads((home / "models" / "AAL" / "1" / "manifest.json").read_text())
        assert manifest["as_of"] == "2016-10-31" and manifest["flow_run_id"] == str(train_run.id)
        promote(home / "models", "AAL", 1)  # a 1-epoch model may not pass the gate by itself
        days = []
        for day in (1, 2):  # Tue and Wed 18:30 New York
            run, state = run_scheduled(server, DAILY, datetime(2016, 11, day, 22, 30, tzinfo=UTC))
            assert state.is_completed(), f"{state}\n{log.read_text()[-4000:]}"
            days.append(api(server, lambda c, r=run: _latest_artifacts(c, r.id)))
    ledger = read_ledger(home / "lake", "AAL")
    assert [d.isoformat()[:10] for d in ledger["as_of"]] == ["2016-11-01", "2016-11-02"]
    assert list(ledger["version"]) == [1, 1] and ledger["scored_at"].notna().tolist() == [
        True, False]
    assert all(MONITOR_KEYS <= set(d) for d in days)
    table = json.loads(days[1]["monitor-scores"])
    assert table[0]["symbol"] == "AAL" and table[0]["scored"] == 1 and table[0]["champion"] == 1
    assert relative_images(days[1]["monitor-summary"]) == []
    assert "as of 2016-11-02" in days[1]["monitor-summary"]


def test_prefect_yaml_deploys_to_the_process_work_pool(server, tmp_path):
    env = process_env(tmp_path / "cli-home", PREFECT_API_URL=server, PWD=str(ROOT))
    prefect = [sys.executable, "-m", "prefect", "--no-prompt"]
    for command in (["work-pool", "create", "closecast-pool", "--type", "process"],
                    ["deploy", "--prefect-file", str(PREFECT_FILE), "--all"]):
        done = subprocess.run(prefect + command, cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=180)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    deployment = api(server, lambda c: c.read_deployment_by_name(DEPLOYMENT))
    assert deployment.work_pool_name == "closecast-pool"
    assert deployment.entrypoint == "flows/training.py:train_flow"
    schedule = deployment.schedules[0].schedule
    assert (schedule.cron, schedule.timezone) == ("0 8 * * 6", "America/New_York")
    assert deployment.parameters["config"]["model"]["epochs"] == 30
    step = deployment.pull_steps[0]["prefect.deployments.steps.set_working_directory"]
    assert step["directory"] == str(ROOT)
    daily = api(server, lambda c: c.read_deployment_by_name(DAILY))
    assert daily.entrypoint == "flows/daily.py:daily_flow"
    assert daily.work_pool_name == "closecast-pool"
    assert daily.parameters["policy"]["max_rmse_ratio"] == 1.10
    assert daily.parameters["config"] == deployment.parameters["config"]
