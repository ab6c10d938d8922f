"""The training flow: ingest -> validate -> store, then per symbol (fanned out with ``.map``):
features -> train -> evaluate -> backtest -> plot -> register; artifacts last."""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger, unmapped
from prefect.futures import PrefectFuture

from flows.prices import store_new_prices, stored_in
from flows.runners import configure_tensorflow_threads, limit_blas_threads, task_runner_for
from flows.schedule import confine_deployment_run, with_scheduled_as_of
from tasks.artifacts import publish_artifacts_task
from tasks.backtest import backtest_task
from tasks.config import RunConfig
from tasks.evaluate import evaluate_task
from tasks.features import prepare_dataset_task
from tasks.global_model import global_backtest_task, train_global_fold_task, train_global_task
from tasks.layout import Layout
from tasks.model import train_task
from tasks.plots import plots_task
from tasks.publish import register_task
from tasks.registry import RegisteredVersion


@flow(name="closecast-train")
def train_flow(config: RunConfig = RunConfig()) -> list[RegisteredVersion]:  # noqa: B008 (frozen)
    """Train, evaluate and register one model per symbol (plus a global one if configured)."""
    log = get_run_logger()
    config = with_scheduled_as_of(config)  # a deployment's run: as of its scheduled date
    confine_deployment_run(config.home, (config.input_path,) if config.format != "yahoo" else ())
    configure_tensorflow_threads(config.runner)  # before any worker thread starts TF
    limit_blas_threads(config.runner)
    layout = Layout(Path(config.home))
    prepare, train, backtest, train_global, train_fold, global_backtest, evaluate, plot, \
        register, publish = stored_in(
            layout.cache, prepare_dataset_task, train_task, backtest_task, train_global_task,
            train_global_fold_task, global_backtest_task, evaluate_task, plots_task,
            register_task, publish_artifacts_task)
    partitions = store_new_prices(config, layout)
    per_symbol, pooled = config.global_model.uses(len(partitions))
    log.info("as of %s: training %d symbol(s) with %s: %s", config.as_of or "the latest row",
             len(partitions), " and ".join(
                 name for name, used in (("per-symbol models", per_symbol),
                                         ("one global model", pooled)) if used),
             ", ".join(p.symbol for p in partitions))
    lake, work = str(layout.lake), str(layout.work)
    features, split, model, folds = config.features, config.split, config.model, config.backtest
    datasets = prepare.map(partitions, config.as_of, unmapped(features), unmapped(split), lake)
    candidates, trained, backtests = [], [], []
    if per_symbol:
        candidates += datasets
        trained += train.map(datasets, unmapped(model), work)
        backtests += backtest.map(datasets, lake, unmapped(features), unmapped(split),
                                  unmapped(model), unmapped(folds), work)
    if pooled:
        shared = train_global.submit(datasets, lake, features, model, config.global_model, work)
        fold_models = [train_fold.submit(j, datasets, lake, features, split, model, folds,
                                         config.global_model, work) for j in range(folds.folds)]
        candidates += datasets
        trained += [shared] * len(datasets)
        backtests += global_backtest.map(datasets, lake, unmapped(features), unmapped(split),
                                         unmapped(model), unmapped(folds), unmapped(fold_models),
                                         work)
    evaluations = evaluate.map(trained, candidates, unmapped(features), model.shrink,
                               model.gate_z)
    plots = plot.map(evaluations, trained, backtests)
    registered = register.map(str(layout.home), candidates, unmapped(features), unmapped(split),
                              unmapped(model), trained, evaluations, plots, backtests)
    raise_first_failure(datasets, trained, backtests, evaluations, plots)
    results = [future.result() for future in registered]
    publish(results)
    return results


def raise_first_failure(*stages: list) -> None:
    """Raise the error of the earliest failed per-symbol task, not a later task's "upstream
    task run did not reach a 'COMPLETED' state"."""
    for stage in stages:
        for future in stage:
            if not isinstance(future, PrefectFuture):
                continue
            future.wait()
            if future.state.is_failed():
                future.result()  # raises the task's own exception


def flow_for(config: RunConfig):
    """``train_flow`` on the task runner the config asks for (threads, or a Dask cluster)."""
    return train_flow.with_options(task_runner=task_runner_for(config.runner))
