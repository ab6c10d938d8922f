"""Deployment runs are confined to allowed roots, and closecast works against a Prefect server
that requires basic authentication (real `prefect server start`, `closecast serve`, the API)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

from tests.conftest import SAMPLE
from tests.prefect_server import prefect_server, process_env, running
from tests.test_service import DEPLOYMENT, TINY, tiny_prefect_file, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

DAILY = "closecast-daily/daily"


def call_api(url: str, call, auth: str | None = None):
    """``await call(client)`` against a server, with its basic-auth string if it needs one."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_AUTH_STRING, PREFECT_API_URL, temporary_settings

    async def go():
        async with get_client() as client:
            return await call(client)

    settings = {PREFECT_API_URL: url} | ({PREFECT_API_AUTH_STRING: auth} if auth else {})
    with temporary_settings(settings):
        return asyncio.run(go())


def start_run(url: str, name: str, parameters: dict | None = None, auth: str | None = None):
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_AUTH_STRING, PREFECT_API_URL, temporary_settings

    settings = {PREFECT_API_URL: url} | ({PREFECT_API_AUTH_STRING: auth} if auth else {})
    with temporary_settings(settings):
        return run_deployment(name, parameters=parameters or {}, timeout=0)


def final_state(url: str, flow_run_id, auth: str | None = None):
    def probe():
        run = call_api(url, lambda c: c.read_flow_run(flow_run_id), auth)
        return run.state if run.state.is_final() else None

    return wait_for("flow run to finish", probe, timeout=300, every=2)


async def _deployment(client, name: str):
    from prefect.exceptions import ObjectNotFound

    try:
        return await client.read_deployment_by_name(name)
    except ObjectNotFound:
        return None


def serve_and_wait(url: str, prefect_file: Path, workdir: Path, auth: str | None = None):
    """`closecast serve` in a child process (a context manager), once both deployments exist."""
    extra = {"PREFECT_API_AUTH_STRING": auth} if auth else {}
    env = process_env(workdir / "serve-home", PREFECT_API_URL=url, **extra)
    serve = [sys.executable, "-m", "flows.cli", "serve", "--prefect-file", str(prefect_file)]
    process = running(serve, env, workdir / "serve.log")
    process.__enter__()
    try:
        for name in (DEPLOYMENT, DAILY):
            wait_for(name, lambda n=name: call_api(url, lambda c: _deployment(c, n), auth), 120)
    except BaseException:
        process.__exit__(None, None, None)
        raise
    return process


def test_deployment_runs_may_not_leave_the_allowed_roots(tmp_path):
    home, outside = tmp_path / "home", tmp_path / "outside"
    prefect_file = tiny_prefect_file(tmp_path / "prefect.yaml", home)
    tiny = {**TINY, "input": str(SAMPLE)}
    with prefect_server(tmp_path / "server") as url:
        served = serve_and_wait(url, prefect_file, tmp_path)
        try:
            cases = {
                "home outside": (DEPLOYMENT, {"config": {**tiny, "home": str(outside)}},
                                 "outside the roots"),
                "input outside": (DEPLOYMENT, {"config": {**tiny, "home": str(home),
                                                          "input": "/etc/passwd"}},
                                  "outside the roots"),
                "symbol parameter": (DEPLOYMENT, {"config": {**tiny, "home": str(home),
                                                             "symbols": ["../../x"]}},
                                     "valid symbol"),
                "daily home outside": (DAILY, {"config": {**tiny, "home": str(outside)}},
                                       "outside the roots"),
                "daily symbol": (DAILY, {"config": {**tiny, "home": str(home),
                                                    "symbols": ["../../x"]}}, "valid symbol"),
            }
            runs = {case: start_run(url, name, params) for case, (name, params, _) in
                    cases.items()}
            for case, run in runs.items():
                state = final_state(url, run.id)
                assert state.is_failed(), (case, state)
                assert cases[case][2] in (state.message or ""), (case, state.message)
        finally:
            served.__exit__(None, None, None)
    assert not outside.exists()
    assert not (home / "lake").exists() and not (home / "models").exists()


def test_closecast_runs_and_serves_against_a_server_with_basic_auth(tmp_path):
    auth = f"closecast:{uuid.uuid4().hex}"
    home = tmp_path / "home"
    config = tmp_path / "tiny.yaml"
    config.write_text(json.dumps({**TINY, "input": str(SAMPLE), "backtest": {"folds": 0}}))
    with prefect_server(tmp_path / "server", PREFECT_SERVER_API_AUTH_STRING=auth) as url:
        refused = urllib.request.Request(f"{url}/flows/filter", data=b"{}", method="POST",
                                         headers={"Content-Type": "application/json"})
        with pytest.raises(urllib.error.HTTPError) as error:
            urllib.request.urlopen(refused, timeout=10)
        assert error.value.code == 401

        env = process_env(tmp_path / "cli-home", PREFECT_API_URL=url,
                          PREFECT_API_AUTH_STRING=auth)
        done = subprocess.run([sys.executable, "-m", "flows.cli", "run", "--config", str(config),
                               "--home", str(home / "cli"), "--json"], env=env,
                              capture_output=True, text=True, timeout=400)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        flow_run_id = json.loads(done.stdout.strip().splitlines()[-1])["flow_run_id"]
        run = call_api(url, lambda c: c.read_flow_run(flow_run_id), auth)
        assert run.state.is_completed()

        prefect_file = tiny_prefect_file(tmp_path / "prefect.yaml", home / "served")
        served = serve_and_wait(url, prefect_file, tmp_path, auth)
        try:
            run = start_run(url, DEPLOYMENT, auth=auth)
            state = final_state(url, run.id, auth)
            assert state.is_completed(), state
        finally:
            served.__exit__(None, None, None)
    assert (home / "served" / "models" / "AAL" / "1" / "model.keras").exists()
