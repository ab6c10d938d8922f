"""The data half every flow starts with: ingest (or download), validate, store in the lake."""

from __future__ import annotations

from pathlib import Path

from tasks.core import results
from tasks.core.config import RunConfig
from tasks.core.layout import Layout
from tasks.data.ingest import StagedPrices, ingest_task
from tasks.data.lake import PartitionRef, store_prices_task
from tasks.data.price_suite import limits_for
from tasks.data.sources import fetch_yahoo_task, require_live_request
from tasks.data.validation import validate_task


def stored_in(cache: Path, *tasks):
    """The same tasks with their results kept under the home, beside the files they name; each
    record is written atomically (``tasks.core.results``)."""
    return [results.stored_in(cache, t) for t in tasks]


def staged_input(config: RunConfig, layout: Layout) -> StagedPrices:
    """The run's input file parsed into staging (the ``ingest`` task, cached on its bytes)."""
    (ingest,) = stored_in(layout.cache, ingest_task)
    return ingest(str(config.input_path), config.format, config.symbols, str(layout.staging))


def store_new_prices(config: RunConfig, layout: Layout) -> list[PartitionRef]:
    """Ingest the input (or download it), validate it and upsert it into the lake; the task
    results are kept under the home, beside the files they name."""
    fetch, validate, store = stored_in(
        layout.cache, fetch_yahoo_task, validate_task, store_prices_task)
    if config.format == "yahoo":
        start = require_live_request(config.symbols, config.start)
        staged = fetch(config.symbols, start, config.as_of, str(layout.staging))
    else:
        staged = staged_input(config, layout)
    limits = limits_for(config.validation, config.features, config.split)
    validated = validate(staged, str(layout.validation), limits, config.validation.on_invalid,
                         str(layout.lake), config.as_of)
    return store(staged, validated.kept_path, str(layout.lake))
