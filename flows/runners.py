"""Task runners: a thread pool by default, ``prefect_dask.DaskTaskRunner`` for a Dask cluster."""

from __future__ import annotations

import logging
import os
import sys

from prefect.task_runners import ProcessPoolTaskRunner, TaskRunner, ThreadPoolTaskRunner

from tasks.core.errors import ClosecastError
from tasks.core.operations_config import RunnerConfig

TF_THREAD_VARIABLES = ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")
BLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def task_runner_for(runner: RunnerConfig) -> TaskRunner:
    """Threads or processes (max_workers), or a DaskTaskRunner when an address is configured."""
    if runner.dask_address is None and runner.kind == "processes":
        return ProcessPoolTaskRunner(max_workers=runner.max_workers)
    if runner.dask_address is None:
        return ThreadPoolTaskRunner(max_workers=runner.max_workers)
    try:
        from prefect_dask import DaskTaskRunner
    except ImportError as error:
        raise ClosecastError("runner.dask_address is set but prefect-dask is not installed: "
                             "pip install 'closecast[dask]'") from error
    return DaskTaskRunner(address=runner.dask_address)


def tf_threads_for(runner: RunnerConfig, cores: int | None = None,
                   tasks: int | None = None) -> int:
    """TF threads per op pool: the configured number, else the cores shared among the workers
    that can be busy at once (``max_workers``, or fewer when a run has fewer ``tasks``, e.g. one
    symbol's trainings, which run one after another: one training then gets every core)."""
    if runner.tf_threads is not None:
        return runner.tf_threads
    busy = min(runner.max_workers, tasks) if tasks else runner.max_workers
    return max(1, (cores or os.cpu_count() or 1) // busy)


def size_thread_pools(runner: RunnerConfig, tasks: int | None = None) -> None:
    """TensorFlow's and BLAS's threads for ``tasks`` busy workers at most (see
    ``tf_threads_for``), before any worker starts TF."""
    configure_tensorflow_threads(runner, tasks)
    limit_blas_threads(runner, tasks)


def configure_tensorflow_threads(runner: RunnerConfig, tasks: int | None = None) -> int | None:
    """Size TF's intra-/inter-op pools for the thread-pool fan-out (``tasks``: at most that
    many workers busy at once, see ``tf_threads_for``); the number set, or None.

    Every worker thread of the pool trains in this one process, so TF's pools are shared: with
    TF's default (all cores each) two workers on two cores oversubscribe them and spin against
    each other; cores // workers threads each keeps one busy thread per core. Before TF is
    imported the standard TF_NUM_*_THREADS variables are set (a fully cached run then never
    pays TF's import); after, ``tf.config.threading``, which TF refuses once its runtime
    started - then its pools stay as they are. A user's own TF_NUM_* variables win.
    """
    threads = tf_threads_for(runner, tasks=tasks)
    if runner.dask_address is not None or threads == 0:
        return None
    log = logging.getLogger(__name__)
    if "tensorflow" not in sys.modules:
        return threads if _set_unless_users(TF_THREAD_VARIABLES, threads) else None
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:
        log.debug("TensorFlow already initialised: its thread pools stay as they are")
        return None
    return threads


def limit_blas_threads(runner: RunnerConfig, tasks: int | None = None) -> int | None:
    """Give NumPy/SciPy's BLAS the same share of the cores as TensorFlow (one thread per worker
    on two cores); the number set, or None.

    The per-symbol work is many small solves (the linear baseline, GARCH fits): with BLAS's
    default of all cores in every worker they spin against each other (measured: the linear
    baseline's least squares took 150 ms on two busy cores, 5 ms on one thread). Worker
    processes started later inherit the variables; this process is limited through
    threadpoolctl (scikit-learn's dependency). A user's own variables win.
    """
    threads = tf_threads_for(runner, tasks=tasks)
    if runner.dask_address is not None or threads == 0 or not _set_unless_users(
            BLAS_THREAD_VARIABLES, threads):
        return None
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=threads, user_api="blas")
    return threads


_SET_HERE: dict[str, str] = {}  # the thread variables this process set, and to what


def _set_unless_users(names: tuple[str, ...], threads: int) -> bool:
    """Set every variable of ``names`` to ``threads``, unless one holds a value this process
    did not set (a user's own: it wins); whether they were set."""
    if any(name in os.environ and os.environ[name] != _SET_HERE.get(name) for name in names):
        return False
    for name in names:
        os.environ[name] = _SET_HERE[name] = str(threads)
    return True
