"""The training flow: ingest -> validate -> store, then per symbol (fanned out with ``.map``):
features -> train -> evaluate -> backtest -> plot -> register; artifacts last."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from prefect import flow, get_run_logger, unmapped
from prefect.futures import PrefectFuture

from flows.prices import store_new_prices, stored_in
from flows.progress import Stage, chunks_stage, symbols_stage, watch
from flows.runners import size_thread_pools, task_runner_for
from flows.schedule import confine_deployment_run, ends_with_gc, with_scheduled_as_of
from tasks.core.config import RunConfig
from tasks.core.layout import Layout
from tasks.core.locks import home_shared
from tasks.core.logs import named_few
from tasks.data.lake import PartitionRef
from tasks.evaluation.backtest import backtest_task, newest_fold_is_final, train_backtest_folds_task
from tasks.evaluation.candidate import candidate_task
from tasks.evaluation.evaluate import evaluate_task
from tasks.features.datasets import (
    market_state_task,
    prepare_dataset_task,
    prepare_datasets_task,
    without_left_out,
)
from tasks.forecaster.heads import head_named
from tasks.forecaster.network import train_task
from tasks.housekeeping.retention import gc_task
from tasks.market.global_model import (
    chunks,
    evaluate_global_task,
    gate_global_task,
    score_global_task,
    train_global_fold_task,
    train_global_task,
)
from tasks.registry.artifacts import publish_artifacts_task
from tasks.registry.publish import Recipe, register_task
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
    """The training flow's work, under the home lock: prices in, datasets, candidates from
    per-symbol networks and/or one global network, one register step, artifacts."""
    size_thread_pools(config.runner)  # before any worker starts TF
    started = time.monotonic()
    partitions = store_new_prices(config, layout)
    per_symbol, pooled = config.global_model.uses(len(partitions))
    draw = config.report.draws(len(partitions))  # else on request: `closecast report`
    if not pooled and len(partitions) < config.runner.max_workers:
        # Fewer symbols than workers: fewer trainings at once, each may use more cores (TF is
        # not imported yet; worker processes already started keep what they were given).
        size_thread_pools(config.runner, tasks=len(partitions))
    say_plan(config, partitions, per_symbol, pooled)
    datasets = prepare_datasets(config, layout, partitions, chunked=not per_symbol)
    if not datasets:  # every symbol left out (too little history): stored, nothing to train
        return []
    pending = [*([per_symbol_candidates(config, layout, datasets, draw)] if per_symbol else []),
               *([global_candidates(config, layout, datasets, draw)] if pooled else [])]
    register, publish = stored_in(layout.cache, register_task, publish_artifacts_task)
    recipe = Recipe(config.features, config.split, config.model, config.evaluation)
    to_register = [c for p in pending for c in p.chunks]
    done = register.map(str(layout.home), to_register, unmapped(recipe))
    watch([*(stage for p in pending for stage in p.progress),
           Stage("registered", list(done), [n for p in pending for n in p.sizes])],
          started, len(datasets))
    raise_first_failure(*(stage for p in pending for stage in p.stages), done)
    results = [version for chunk in done for version in chunk.result()]
    publish(results, str(layout.home))
    return results


def say_plan(config: RunConfig, partitions: list[PartitionRef], per_symbol: bool,
             pooled: bool) -> None:
    """One log line: the as-of, how many symbols (the first few named), which networks."""
    networks = " and ".join(name for name, used in (("per-symbol models", per_symbol),
                                                    ("one global model", pooled)) if used)
    glob = config.global_model
    if glob.mode == "auto" and not pooled:  # say why a small run serves per-symbol ranges
        networks += (f" (fewer than {glob.auto_min_symbols} symbols: too few for a market "
                     "network; each symbol's own validation days decide its range)")
    get_run_logger().info("as of %s: training %d symbol(s) with %s: %s",
                          config.as_of or "the latest row", len(partitions), networks,
                          named_few([p.symbol for p in partitions]))


def prepare_datasets(config: RunConfig, layout: Layout, partitions: list[PartitionRef],
                     chunked: bool) -> list:
    """Each symbol's feature table: a task run per symbol, or (``chunked``: a market-sized
    run) per chunk of symbols, not a task run per symbol and step. A symbol with too little
    history is left out, named in one log line."""
    prepare, prepare_chunk = stored_in(layout.cache, prepare_dataset_task, prepare_datasets_task)
    market = (market_state_task(config.as_of, str(layout.lake)) if config.features.market
              else None)
    args = (config.as_of, unmapped(config.features), unmapped(config.split), str(layout.lake),
            unmapped(market))
    if not chunked:
        prepared = prepare.map(partitions, *args)
        raise_first_failure(prepared)
        return without_left_out([p.result() for p in prepared], get_run_logger())
    prepared = prepare_chunk.map(chunks(partitions, config.runner.max_workers), *args)
    raise_first_failure(prepared)
    return without_left_out([d for chunk in prepared for d in chunk.result()], get_run_logger())


@dataclass(frozen=True)
class Pending:
    """Candidates on their way: chunks to register (lists of candidates, or futures of them),
    and the stages' futures, in pipeline order, whose first failure is the run's error."""

    chunks: list
    sizes: list[int]  # symbols per chunk (a future of a chunk has no len)
    stages: list[list]
    progress: list[Stage]


def per_symbol_candidates(config: RunConfig, layout: Layout, datasets: list,
                          draw: bool) -> Pending:
    """One network per symbol: train, its backtest folds, evaluate, backtest, plot."""
    train, train_folds, evaluate, backtest, plot, assemble = stored_in(
        layout.cache, train_task, train_backtest_folds_task, evaluate_task, backtest_task,
        plots_task, candidate_task)
    lake, work = str(layout.lake), str(layout.work)
    features, split, folds = unmapped(config.features), unmapped(config.split), \
        unmapped(config.backtest)
    model, scoring = unmapped(config.model), unmapped(config.evaluation)
    trained = train.map(datasets, model, work)
    fold_models = train_folds.map(datasets, lake, features, split, model, folds, trained, work)
    evaluations = evaluate.map(trained, datasets, features, scoring)
    backtests = backtest.map(datasets, lake, features, split, folds, fold_models, scoring, work,
                             trained, evaluations)
    plots = plot.map(evaluations, trained, backtests) if draw else [None] * len(datasets)
    candidates = assemble.map(datasets, trained, evaluations, backtests, plots)
    chunked = chunks(list(candidates), config.runner.max_workers)
    return Pending(chunked, [len(chunk) for chunk in chunked],
                   [datasets, trained, fold_models, backtests, evaluations, plots, candidates],
                   [symbols_stage("trained", trained), symbols_stage("scored", backtests)])


def global_candidates(config: RunConfig, layout: Layout, datasets: list, draw: bool) -> Pending:
    """One network for all symbols (and one per backtest fold), gated pooled, each symbol
    evaluated, backtested and plotted in chunks."""
    train_global, train_fold, gate_global, evaluate_global, score_global = stored_in(
        layout.cache, train_global_task, train_global_fold_task, gate_global_task,
        evaluate_global_task, score_global_task)
    lake, work = str(layout.lake), str(layout.work)
    features, split, model, folds = config.features, config.split, config.model, config.backtest
    scoring, glob = config.evaluation, config.global_model
    shared = train_global.submit(datasets, lake, features, model, glob, work)
    trained_folds = folds.folds - newest_fold_is_final(model, folds)
    fold_models = [train_fold.submit(j, datasets, lake, features, split, model, folds, glob,
                                     work) for j in range(trained_folds)]
    fold_models += [shared] * (folds.folds - trained_folds)
    chunked = chunks(list(datasets), config.runner.max_workers)
    # one gate for the network's distribution, on every symbol's validation days
    gate = (gate_global.submit(datasets, features, scoring, shared)
            if head_named(model.head).gives_distribution else None)
    # evaluations need only the final network: they start while fold networks train
    evaluated = evaluate_global.map(chunked, unmapped(features), unmapped(scoring),
                                    unmapped(shared), unmapped(gate))
    scored = score_global.map(chunked, lake, unmapped(features), unmapped(split),
                              unmapped(scoring), unmapped(folds), unmapped(shared),
                              unmapped(fold_models), work, evaluated, draw)
    networks = [shared, *fold_models, *([gate] if gate else [])]
    return Pending(list(scored), [len(chunk) for chunk in chunked],
                   [datasets, networks, evaluated, scored],
                   [chunks_stage("evaluated", evaluated, chunked),
                    chunks_stage("scored", scored, chunked)])


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
