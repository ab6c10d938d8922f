"""The training flow: ingest -> validate -> store -> features -> train -> evaluate -> register."""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger

from flows.schedule import with_scheduled_as_of
from tasks.artifacts import publish_artifacts_task
from tasks.config import RunConfig
from tasks.evaluate import evaluate_task
from tasks.features import prepare_dataset_task
from tasks.ingest import ingest_task
from tasks.lake import store_prices_task
from tasks.layout import Layout
from tasks.model import train_task
from tasks.plots import plots_task
from tasks.publish import register_task
from tasks.registry import RegisteredVersion
from tasks.sources import fetch_yahoo_task, require_live_request
from tasks.validation import limits_for, validate_task


def _stored_in(cache: Path, *tasks):
    """The same tasks with their results kept under the home, beside the files they name."""
    return [t.with_options(result_storage=cache) for t in tasks]


@flow(name="closecast-train")
def train_flow(config: RunConfig = RunConfig()) -> list[RegisteredVersion]:
    """Train, evaluate and register one model per symbol of the input."""
    log = get_run_logger()
    config = with_scheduled_as_of(config)  # a deployment's run: as of its scheduled date
    log.info("as of %s", config.as_of or "the latest row")
    layout = Layout(Path(config.home))
    ingest, fetch, validate, store, prepare, train, evaluate, plot, register, publish = _stored_in(
        layout.cache, ingest_task, fetch_yahoo_task, validate_task, store_prices_task,
        prepare_dataset_task, train_task, evaluate_task, plots_task, register_task,
        publish_artifacts_task)
    if config.format == "yahoo":
        start = require_live_request(config.symbols, config.start)
        staged = fetch(config.symbols, start, config.as_of, str(layout.staging))
    else:
        staged = ingest(str(config.input_path), config.format, config.symbols, str(layout.staging))
    limits = limits_for(config.validation, config.features, config.split)
    validated = validate(staged, str(layout.validation), limits, config.validation.on_invalid,
                         str(layout.lake), config.as_of)
    partitions = store(staged, validated.kept_path, str(layout.lake))
    results = []
    for i, partition in enumerate(partitions, 1):
        log.info("symbol %d/%d: %s", i, len(partitions), partition.symbol)
        dataset = prepare(partition, config.as_of, config.features, config.split, str(layout.lake))
        trained = train(dataset, config.model, str(layout.work))
        evaluation = evaluate(trained, dataset, config.features.target)
        plots = plot(evaluation, trained)
        results.append(register(str(layout.home), dataset, config.features, config.split,
                                config.model, trained, evaluation, plots))
    publish(results)
    return results
