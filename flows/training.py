"""The training flow: ingest -> validate -> store, then per symbol (fanned out with ``.map``):
features -> train -> evaluate -> backtest -> plot -> register; artifacts last."""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger, unmapped
from prefect.futures import PrefectFuture

from flows.prices import store_new_prices, stored_in
from flows.runners import size_thread_pools, task_runner_for
from flows.schedule import confine_deployment_run, ends_with_gc, with_scheduled_as_of
from tasks.core.config import RunConfig
from tasks.core.layout import Layout
from tasks.core.locks import home_shared
from tasks.evaluation.backtest import backtest_task, newest_fold_is_final, train_backtest_folds_task
from tasks.evaluation.evaluate import evaluate_task
from tasks.features.windows import prepare_dataset_task, prepare_datasets_task
from tasks.market.global_model import (
    chunks,
    evaluate_global_task,
    gate_global_task,
    score_global_task,
    train_global_fold_task,
    train_global_task,
)
from tasks.model.lstm import train_task
from tasks.operations.retention import gc_task
from tasks.registry.artifacts import publish_artifacts_task
from tasks.registry.publish import register_chunk_task, register_task
from tasks.registry.registry import RegisteredVersion
from tasks.reporting.plots import plots_task


@flow(name="closecast-train")
def train_flow(config: RunConfig = RunConfig()) -> list[RegisteredVersion]:  # noqa: B008 (frozen)
    """Train, evaluate and register one model per symbol (plus a global one if configured)."""
    config = with_scheduled_as_of(config)  # a deployment's run: as of its scheduled date
    confine_deployment_run(config.home, (config.input_path,) if config.format != "yahoo" else ())
    layout = Layout(Path(config.home))
    with home_shared(layout.home_lock):  # gc removes nothing while a run uses the home
        results = train_symbols(config, layout)
    if ends_with_gc(config):
        gc_task(str(layout.home), config.retention)
    return results


def train_symbols(config: RunConfig, layout: Layout) -> list[RegisteredVersion]:
    """The training flow's work, under the home lock."""
    log = get_run_logger()
    size_thread_pools(config.runner)  # before any worker starts TF
    prepare, prepare_chunk, train, train_folds, backtest, train_global, train_fold, \
        gate_global, evaluate_global, score_global, evaluate, plot, register, register_chunk, \
        publish = stored_in(layout.cache, prepare_dataset_task, prepare_datasets_task,
                            train_task, train_backtest_folds_task, backtest_task,
                            train_global_task, train_global_fold_task, gate_global_task,
                            evaluate_global_task, score_global_task, evaluate_task, plots_task,
                            register_task, register_chunk_task, publish_artifacts_task)
    partitions = store_new_prices(config, layout)
    per_symbol, pooled = config.global_model.uses(len(partitions))
    draw = config.report.draws(len(partitions))  # else on request: `closecast report`
    if not pooled and len(partitions) < config.runner.max_workers:
        # Fewer symbols than workers: fewer trainings at once, each may use more cores (TF is
        # not imported yet; worker processes already started keep what they were given).
        size_thread_pools(config.runner, tasks=len(partitions))
    log.info("as of %s: training %d symbol(s) with %s: %s", config.as_of or "the latest row",
             len(partitions), " and ".join(
                 name for name, used in (("per-symbol models", per_symbol),
                                         ("one global model", pooled)) if used),
             ", ".join(p.symbol for p in partitions))
    lake, work = str(layout.lake), str(layout.work)
    features, split, model, folds = config.features, config.split, config.model, config.backtest
    scoring = config.evaluation
    if per_symbol:
        datasets = prepare.map(partitions, config.as_of, unmapped(features), unmapped(split),
                               lake)
    else:  # a market-sized run: chunks of symbols, not a task run per symbol and step
        prepared = prepare_chunk.map(chunks(partitions, config.runner.max_workers),
                                     config.as_of, unmapped(features), unmapped(split), lake)
        raise_first_failure(prepared)
        datasets = [d for chunk in prepared for d in chunk.result()]
    candidates, trained, backtests, evaluations, plots = [], [], [], [], []
    if per_symbol:
        own = train.map(datasets, unmapped(model), work)
        own_folds = train_folds.map(datasets, lake, unmapped(features), unmapped(split),
                                    unmapped(model), unmapped(folds), own, work)
        own_evaluations = evaluate.map(own, datasets, unmapped(features), unmapped(scoring))
        own_backtests = backtest.map(datasets, lake, unmapped(features), unmapped(split),
                                     unmapped(folds), own_folds, unmapped(scoring), work, own,
                                     own_evaluations)
        candidates += datasets
        trained += own
        backtests += own_backtests
        evaluations += own_evaluations
        plots += (plot.map(own_evaluations, own, own_backtests) if draw
                  else [None] * len(own_evaluations))
    if pooled:
        shared = train_global.submit(datasets, lake, features, model, config.global_model, work)
        trained_folds = folds.folds - newest_fold_is_final(model, folds)
        fold_models = [train_fold.submit(j, datasets, lake, features, split, model, folds,
                                         config.global_model, work)
                       for j in range(trained_folds)] + [shared] * (folds.folds - trained_folds)
        chunked = chunks(list(datasets), config.runner.max_workers)
        # one gate for the network's distribution, on every symbol's validation days
        gate = (gate_global.submit(datasets, features, scoring, shared)
                if model.head != "point" else None)
        # evaluations need only the final network: they start while fold networks train
        evaluated = evaluate_global.map(chunked, unmapped(features), unmapped(scoring),
                                        unmapped(shared), unmapped(gate))
        scored = score_global.map(chunked, lake, unmapped(features), unmapped(split),
                                  unmapped(scoring), unmapped(folds), unmapped(shared),
                                  unmapped(fold_models), work, evaluated, draw)
        raise_first_failure(datasets, [shared, *fold_models, *([gate] if gate else [])], evaluated,
                            scored)
        if not per_symbol:
            done = register_chunk.map(str(layout.home), scored, unmapped(features),
                                      unmapped(split), unmapped(model), unmapped(scoring),
                                      unmapped(shared))
            raise_first_failure(done)
            results = [r for chunk in done for r in chunk.result()]
            publish(results)
            return results
        for s in (s for chunk in scored for s in chunk.result()):
            candidates.append(s.dataset)
            trained.append(shared)
            backtests.append(s.backtest)
            evaluations.append(s.evaluation)
            plots.append(s.plots_dir)
    registered = register.map(str(layout.home), candidates, unmapped(features), unmapped(split),
                              unmapped(model), unmapped(scoring), trained, evaluations, plots,
                              backtests)
    raise_first_failure(datasets, trained, own_folds if per_symbol else [], backtests,
                        evaluations, plots)
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
