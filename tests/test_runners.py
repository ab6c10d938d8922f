"""Task runners: threads by default, a Dask cluster when an address is configured."""

from __future__ import annotations

import pytest
from prefect import flow, task
from prefect.task_runners import ThreadPoolTaskRunner

from flows.runners import task_runner_for
from tasks.config import RunnerConfig


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
