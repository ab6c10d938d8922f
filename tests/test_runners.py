"""Task runners: threads by default, a Dask cluster when an address is configured."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from prefect import flow, task
from prefect.task_runners import ThreadPoolTaskRunner

from flows.runners import task_runner_for
from tasks.core.operations_config import RunnerConfig
from tests.conftest import ROOT


@task
def _square(x: int) -> int:
    return x * x


@flow
def _squares(n: int) -> list[int]:
    return [f.result() for f in _square.map(range(n))]


def test_default_is_a_bounded_thread_pool():
    runner = task_runner_for(RunnerConfig(max_workers=3))
    assert isinstance(runner, ThreadPoolTaskRunner) and runner._max_workers == 3


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_harness")
def test_dask_address_runs_mapped_tasks_on_the_cluster():
    from distributed import LocalCluster
    from prefect_dask import DaskTaskRunner

    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                      dashboard_address=None) as cluster:
        runner = task_runner_for(RunnerConfig(dask_address=cluster.scheduler_address))
        assert isinstance(runner, DaskTaskRunner)
        assert _squares.with_options(task_runner=runner)(4) == [0, 1, 4, 9]


def test_tf_threads_share_the_cores_among_workers():
    from flows.runners import tf_threads_for
    from tasks.core.operations_config import RunnerConfig

    assert tf_threads_for(RunnerConfig(max_workers=2), cores=2) == 1
    assert tf_threads_for(RunnerConfig(max_workers=1), cores=2) == 2
    assert tf_threads_for(RunnerConfig(max_workers=4), cores=2) == 1
    assert tf_threads_for(RunnerConfig(max_workers=2, tf_threads=3), cores=2) == 3
    # one symbol's trainings run one after another: that one training gets both cores
    assert tf_threads_for(RunnerConfig(max_workers=2), cores=2, tasks=1) == 2
    assert tf_threads_for(RunnerConfig(max_workers=2), cores=2, tasks=5) == 1
    assert tf_threads_for(RunnerConfig(max_workers=2, tf_threads=1), cores=2, tasks=1) == 1


TF_THREADS_CHILD = """
import os, sys, json
from flows.runners import configure_tensorflow_threads
from tasks.core.config import RunnerConfig
runner = RunnerConfig.model_validate_json(sys.argv[1])
set_to = configure_tensorflow_threads(runner)
print(json.dumps([set_to, os.environ.get("TF_NUM_INTRAOP_THREADS"),
                  os.environ.get("TF_NUM_INTEROP_THREADS"), "tensorflow" in sys.modules]))
"""


@pytest.mark.parametrize(("runner", "env", "expected"), [
    ({"max_workers": 2, "tf_threads": 1}, {}, [1, "1", "1", False]),
    ({"max_workers": 2, "tf_threads": 0}, {}, [None, None, None, False]),
    ({"max_workers": 2, "tf_threads": 1}, {"TF_NUM_INTRAOP_THREADS": "2"},
     [None, "2", None, False]),
])
def test_tf_thread_pools_are_sized_before_tensorflow_starts(runner, env, expected):
    """Before TF is imported the standard variables are set (without importing TF); a user's win."""
    import json

    child_env = {k: v for k, v in os.environ.items() if not k.startswith("TF_NUM_")}
    child_env.update({"PYTHONPATH": str(ROOT), **env})
    done = subprocess.run([sys.executable, "-c", TF_THREADS_CHILD, json.dumps(runner)], cwd=ROOT,
                          env=child_env, capture_output=True, text=True, check=True)
    assert json.loads(done.stdout.strip().splitlines()[-1]) == expected


RAISE_CHILD = """
import os, json
from flows.runners import configure_tensorflow_threads, limit_blas_threads
from tasks.core.config import RunnerConfig
runner = RunnerConfig(max_workers=2)
seen = [configure_tensorflow_threads(runner), limit_blas_threads(runner)]
seen += [configure_tensorflow_threads(runner, tasks=1), limit_blas_threads(runner, tasks=1)]
print(json.dumps(seen + [os.environ.get(n) for n in
                         ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS")]))
"""


CORES = os.cpu_count() or 1
SHARE = max(1, CORES // 2)


@pytest.mark.parametrize(("env", "expected"), [
    # one symbol on two workers: first half the cores each, then all of them
    ({}, [SHARE, SHARE, CORES, CORES, str(CORES), str(CORES), str(CORES)]),
    ({"OMP_NUM_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1"},  # a user's own: never changed
     [None, None, None, None, None, "1", "1"]),
])
def test_thread_pools_grow_for_fewer_symbols_than_workers(env, expected):
    """Set at the flow's start for max_workers; raised when fewer trainings can run at once,
    but only the values this process set, never a user's."""
    import json
    import subprocess
    import sys

    from flows.runners import BLAS_THREAD_VARIABLES, TF_THREAD_VARIABLES
    from tests.conftest import ROOT

    child_env = {k: v for k, v in os.environ.items()
                 if k not in TF_THREAD_VARIABLES + BLAS_THREAD_VARIABLES}
    child_env.update({"PYTHONPATH": str(ROOT), **env})
    done = subprocess.run([sys.executable, "-c", RAISE_CHILD], cwd=ROOT, env=child_env,
                          capture_output=True, text=True, check=True)
    assert json.loads(done.stdout.strip().splitlines()[-1]) == expected


def test_processes_kind_is_a_process_pool():
    from prefect.task_runners import ProcessPoolTaskRunner

    runner = task_runner_for(RunnerConfig(kind="processes", max_workers=2))
    assert isinstance(runner, ProcessPoolTaskRunner) and runner._max_workers == 2


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_harness")
def test_process_pool_trains_the_same_models_as_threads(tiny_config, tmp_path):
    from flows.training import flow_for

    def metrics(kind: str) -> list[dict]:
        config = tiny_config.model_copy(update={
            "home": tmp_path / kind, "symbols": ("AAL", "ZION"),
            "runner": RunnerConfig(kind=kind, max_workers=2)})
        return [(r.symbol, r.version, r.metrics.rmse, r.metrics.unshrunk_rmse_vs_naive)
                for r in flow_for(config)(config)]

    in_processes = metrics("processes")
    assert [m[:2] for m in in_processes] == [("AAL", 1), ("ZION", 1)]
    assert in_processes == metrics("threads")  # seeded and deterministic, wherever it runs


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.usefixtures("prefect_harness")
def test_flow_on_a_two_process_dask_cluster_matches_a_local_run(tiny_config, tmp_path):
    """A real dask.distributed cluster (scheduler + 2 worker processes): the per-symbol training,
    backtest and registration run on the workers and give the versions a local run gives."""
    from distributed import Client, LocalCluster

    from flows.training import flow_for

    def versions(runner: RunnerConfig, home: str) -> list[tuple]:
        config = tiny_config.model_copy(update={
            "home": tmp_path / home, "symbols": ("AAL", "ZION"), "runner": runner})
        return [(r.symbol, r.version, r.promoted, r.metrics.rmse,
                 r.metrics.unshrunk_rmse_vs_naive,
                 [{k: v for k, v in f.items() if k != "distribution"}
                  for f in r.metrics.backtest_folds],
                 _numbers({"version": r.metrics.to_dict()["distribution"],
                           "folds": [f["distribution"] for f in r.metrics.backtest_folds]}))
                for r in flow_for(config)(config)]

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        on_dask = versions(RunnerConfig(dask_address=cluster.scheduler_address), "dask")
        ran = client.run_on_scheduler(
            lambda dask_scheduler: sorted(dask_scheduler.task_prefixes))
        on_workers = client.run(lambda: "tasks.forecaster.network" in __import__("sys").modules)
    assert [v[:2] for v in on_dask] == [("AAL", 1), ("ZION", 1)]
    assert any(name.startswith("train") for name in ran), ran
    assert any(on_workers.values()), on_workers  # the Keras work happened in worker processes
    local = versions(RunnerConfig(), "local")
    # The same versions, decisions and fold rows; their numbers to 1e-5: the network's first
    # call in a process runs eagerly, later ones through one traced function
    # (``forecaster._forward``), and a single-threaded worker's LAPACK fit of the linear
    # baseline sums in another order: the last bits differ (up to 6e-7 relative seen).
    for on, off in zip(on_dask, local, strict=True):
        assert on[:3] == off[:3]
        assert on[3:5] == pytest.approx(off[3:5], rel=1e-5)
        for fold_on, fold_off in zip(on[5], off[5], strict=True):
            numbers = {k for k, v in fold_on.items() if isinstance(v, float)}
            assert {k: v for k, v in fold_on.items() if k not in numbers} == \
                {k: v for k, v in fold_off.items() if k not in numbers}
            assert [fold_on[k] for k in sorted(numbers)] == \
                pytest.approx([fold_off[k] for k in sorted(numbers)], rel=1e-5)
    for (*_, dask_scores), (*_, local_scores) in zip(on_dask, local, strict=True):
        # arch's GARCH optimiser sums in another order in a single-threaded worker process:
        # the same fit to the optimiser's tolerance (~1e-5 relative here), not bit for bit.
        assert dask_scores.keys() == local_scores.keys()
        # A Diebold-Mariano statistic of two forecasts that coincide to rounding (a hybrid that
        # kept GARCH-t against GARCH-t) is a ratio of rounding noise: left out of the numbers.
        stable = [k for k in dask_scores
                  if not any(p.startswith("dm") or p.endswith("_dm") for p in k.split("."))]
        assert {k: dask_scores[k] for k in stable} == \
            pytest.approx({k: local_scores[k] for k in stable}, rel=1e-4, abs=1e-9)


def _numbers(tree: object, prefix: str = "") -> dict[str, float]:
    """A nested metrics tree as {"a.b.c": number}, for a tolerant comparison."""
    if isinstance(tree, dict):
        return {k: v for key, sub in tree.items()
                for k, v in _numbers(sub, f"{prefix}{key}.").items()}
    if isinstance(tree, list):
        return {k: v for i, sub in enumerate(tree)
                for k, v in _numbers(sub, f"{prefix}{i}.").items()}
    if isinstance(tree, int | float) and not isinstance(tree, bool):
        return {prefix.rstrip("."): float(tree)}
    return {}


def test_a_failed_start_of_the_temporary_server_leaves_no_server_running(monkeypatch):
    """On a busy machine the health check of the temporary server can time out after its
    process is up; the start-up then stops that process (left running, it outlived the
    command and held its stdout open) and leaves the server to Prefect's client."""
    import httpx

    from flows.startup import TemporaryServer

    started = []
    spawn = TemporaryServer._spawn

    def recorded(self):
        url = spawn(self)
        started.append(self.process)
        return url

    def busy(self, url, *args, **kwargs):
        raise httpx.ReadTimeout("timed out", request=httpx.Request("GET", url))

    monkeypatch.setattr(TemporaryServer, "_spawn", recorded)
    monkeypatch.setattr(httpx.Client, "get", busy)
    server = TemporaryServer()
    assert server.start(timeout_s=2) is None
    assert len(started) == 1 and started[0].poll() is not None  # stopped, not left running
    assert server.process is None


def test_the_temporary_server_answers_the_command_and_stops_at_its_end(tmp_path):
    """A flow command with no PREFECT_API_URL: the server started beside its imports records
    the command's flow run, no UI link is printed (its UI is off), and it is gone when the
    command ends; Prefect's server modules are never imported into the command's process."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PREFECT_HOME": str(tmp_path / "prefect")}
    env.pop("PREFECT_API_URL", None)
    (tmp_path / "prefect").mkdir()
    probe = ("import sys; from flows.cli import main\n"
             "code = main(['predict', '--symbol', 'NOPE', '--home', sys.argv[1]])\n"
             "print('SERVER MODULES', any(m.startswith('prefect.server') for m in sys.modules))\n"
             "import prefect.settings as ps; print('API', ps.PREFECT_API_URL.value())\n"
             "from prefect.client.orchestration import get_client\n"
             "with get_client(sync_client=True) as client:\n"
             "    print('RUNS', [r.state_name for r in client.read_flow_runs()])\n")
    out = subprocess.run([sys.executable, "-c", probe, str(tmp_path / "home")], env=env,
                         capture_output=True, text=True, timeout=300)
    assert "SERVER MODULES False" in out.stdout, out.stdout + out.stderr
    url = out.stdout.split("API ")[1].split()[0]
    assert url.startswith("http://127.0.0.1:8") and url.endswith("/api")
    assert "RUNS ['Failed']" in out.stdout  # predict's run (no champion: it fails) was recorded
    assert "View at" not in out.stdout + out.stderr
    import httpx

    with pytest.raises(httpx.ConnectError):  # stopped at the command's end
        httpx.get(f"{url}/health", timeout=5)
