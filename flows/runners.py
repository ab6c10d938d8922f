"""Task runners: a thread pool by default, ``prefect_dask.DaskTaskRunner`` for a Dask cluster."""

from __future__ import annotations

from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

from tasks.config import RunnerConfig
from tasks.errors import ClosecastError


def task_runner_for(runner: RunnerConfig) -> TaskRunner:
    """A ThreadPoolTaskRunner(max_workers), or a DaskTaskRunner when an address is configured."""
    if runner.dask_address is None:
        return ThreadPoolTaskRunner(max_workers=runner.max_workers)
    try:
        from prefect_dask import DaskTaskRunner
    except ImportError as error:
        raise ClosecastError("runner.dask_address is set but prefect-dask is not installed: "
                             "pip install 'closecast[dask]'") from error
    return DaskTaskRunner(address=runner.dask_address)
