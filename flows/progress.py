"""A training run's progress: symbols trained, scored and registered, with the elapsed time, in
the run's log (the console and the Prefect UI) and in a progress artifact."""

from __future__ import annotations

import time
from dataclasses import dataclass

from prefect import get_run_logger
from prefect.futures import PrefectFuture, as_completed

LINES_PER_STAGE = 10  # at most about this many progress lines per stage, whatever the market


@dataclass(frozen=True)
class Stage:
    """A stage of the run as futures, each covering ``sizes[i]`` symbols."""

    label: str  # past tense: "trained", "scored", "registered"
    futures: list
    sizes: list[int]


def symbols_stage(label: str, futures: list) -> Stage:
    """A stage of one future per symbol."""
    return Stage(label, list(futures), [1] * len(futures))


def chunks_stage(label: str, futures: list, chunks: list[list]) -> Stage:
    """A stage of one future per chunk of symbols."""
    return Stage(label, list(futures), [len(chunk) for chunk in chunks])


def watch(stages: list[Stage], started: float, total: int) -> None:
    """Log each stage's count of symbols done as its futures finish (failed ones count as done:
    the flow raises the first failure after this), and move a progress artifact along."""
    from prefect.artifacts import create_progress_artifact, update_progress_artifact

    log = get_run_logger()
    artifact = create_progress_artifact(0.0, key="training-progress",
                                        description=f"{total} symbol(s) through "
                                        + ", ".join(s.label for s in stages))
    for i, stage in enumerate(stages):
        futures = [f for f in stage.futures if isinstance(f, PrefectFuture)]
        if not futures:
            continue
        size = {id(f): n for f, n in zip(stage.futures, stage.sizes, strict=True)}
        done = said = 0
        for future in as_completed(futures):
            done += size[id(future)]
            if done - said >= max(1, total // LINES_PER_STAGE) or done == sum(stage.sizes):
                said = done
                log.info("%s %d/%d symbol(s) (%.0f s)", stage.label, done, total,
                         time.monotonic() - started)
                update_progress_artifact(artifact, 100 * (i + done / max(total, 1))
                                         / len(stages))
    update_progress_artifact(artifact, 100.0)
