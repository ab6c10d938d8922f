"""Backfill: trading days only, idempotent, point in time; deployments read from prefect.yaml."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

import pandas as pd
import pytest
from pydantic import ValidationError

from flows.backfill import as_of_dates, run_backfill
from flows.deployments import PREFECT_FILE, load_deployments
from flows.schedule import market_date, with_scheduled_as_of
from tasks.core.config import RunConfig
from tasks.core.operations_config import DegradationPolicy
from tasks.core.training_config import ModelConfig
from tasks.registry.registry import list_versions

# Fri 28 Oct, Mon 31 Oct, Tue 1 Nov, Wed 2 Nov, Fri 4 Nov, Mon 7 Nov 2016 (no weekend rows)
DAYS = [date(2016, 10, 28), date(2016, 10, 31), date(2016, 11, 1), date(2016, 11, 2),
        date(2016, 11, 4), date(2016, 11, 7)]
PRICE = ["open", "close", "low", "high"]


def test_as_of_dates_are_trading_days_at_the_end_of_each_period():
    start, end = date(2016, 10, 29), date(2016, 11, 6)
    assert as_of_dates(DAYS, start, end, "day") == DAYS[1:5]
    assert as_of_dates(DAYS, start, end, "week") == [date(2016, 11, 4)]
    assert as_of_dates(DAYS, date(2016, 10, 1), end, "week") == [date(2016, 10, 28),
                                                                  date(2016, 11, 4)]
    assert as_of_dates(DAYS, date(2016, 10, 1), date(2016, 12, 31), "month") == [
        date(2016, 10, 31), date(2016, 11, 7)]
    assert as_of_dates(DAYS, date(2016, 10, 29), date(2016, 10, 30), "day") == []


def test_prefect_yaml_holds_the_schedules_and_a_valid_training_config():
    specs = {s.name: s for s in load_deployments(PREFECT_FILE)}
    train, daily = specs["weekly-retrain"], specs["daily"]
    assert set(specs) == {"weekly-retrain", "daily"}
    assert train.entrypoint == "flows/training.py:train_flow"
    assert [(s.cron, s.timezone) for s in train.schedules] == [("0 8 * * 6", "America/New_York")]
    config = RunConfig.model_validate(train.flow_parameters()["config"])
    assert config == train.config and config.as_of is None
    assert daily.entrypoint == "flows/daily.py:daily_flow"
    assert [(s.cron, s.timezone) for s in daily.schedules] == [("30 18 * * 1-5",
                                                                "America/New_York")]
    assert daily.config == train.config  # a degraded symbol is retrained the weekly way
    assert DegradationPolicy.model_validate(daily.parameters["policy"]) == DegradationPolicy()


def test_a_bad_config_in_prefect_yaml_is_refused(tmp_path):
    bad = tmp_path / "prefect.yaml"
    bad.write_text(PREFECT_FILE.read_text().replace("epochs: 30", "epochs: 0"))
    with pytest.raises(ValidationError, match="epochs"):
        load_deployments(bad)


def test_as_of_is_the_new_york_date_and_untouched_outside_deployments():
    # 03:00 UTC on Tuesday is still Monday evening in New York.
    assert market_date(datetime(2016, 11, 1, 3, 0, tzinfo=UTC)) == date(2016, 10, 31)
    config = RunConfig()
    assert with_scheduled_as_of(config) is config  # plain `closecast run`: all data
    pinned = RunConfig(as_of=date(2015, 1, 2))
    assert with_scheduled_as_of(pinned) is pinned


def _versions(config: RunConfig) -> list[int]:
    return list_versions(Path(config.home) / "models", "AAL")


def _backfill(config: RunConfig, start: date, end: date, every: str = "month"):
    return run_backfill(config, start, end, every, max_concurrent=1).result()


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_harness")
def test_backfill_is_idempotent_and_a_changed_config_adds_versions(tiny_config):
    config = tiny_config.model_copy(update={"model": ModelConfig(units=(4,), epochs=1,
                                                                 batch_size=256, patience=1)})
    start, end = date(2016, 10, 1), date(2016, 11, 30)
    first = _backfill(config, start, end)
    assert [(r.as_of, r.data_end, r.version, r.new_version) for r in first] == [
        ("2016-10-31", "2016-10-31", 1, True), ("2016-11-30", "2016-11-30", 2, True)]
    again = _backfill(config, start, end)
    assert [(r.version, r.new_version) for r in again] == [(1, False), (2, False)]
    assert _versions(config) == [1, 2]
    changed = config.model_copy(update={"model": config.model.model_copy(update={"epochs": 2})})
    third = _backfill(changed, start, end)
    assert [(r.version, r.new_version) for r in third] == [(3, True), (4, True)]
    assert _versions(config) == [1, 2, 3, 4]


def _shifted(source: Path, target: Path, when) -> Path:
    """A copy of the input where AAL's prices on the selected dates are 10% higher."""
    frame = pd.read_csv(source)
    rows = (frame["symbol"] == "AAL") & when(pd.to_datetime(frame["date"]))
    frame.loc[rows, PRICE] = frame.loc[rows, PRICE] * 1.1
    frame.to_csv(target, index=False)
    return target


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_harness")
def test_a_version_only_sees_data_up_to_its_as_of_date(tiny_config, tmp_path):
    as_of = pd.Timestamp("2016-06-30")
    config = tiny_config.model_copy(update={"model": ModelConfig(units=(4,), epochs=1,
                                                                 batch_size=256, patience=1)})
    day = date(2016, 6, 30)

    def backfill_on(source: Path):
        (row,) = _backfill(config.model_copy(update={"input": source}), day, day, "day")
        version = Path(config.home) / "models" / "AAL" / str(row.version)
        return row, json.loads((version / "manifest.json").read_text()), \
            json.loads((version / "metrics.json").read_text())

    base, manifest, metrics = backfill_on(Path(config.input_path))
    assert manifest["as_of"] == "2016-06-30" and metrics["test_end"] <= "2016-06-30"

    later = _shifted(config.input_path, tmp_path / "later.csv", lambda d: d > as_of)
    row, moved_later, _ = backfill_on(later)
    assert moved_later["data_fingerprint"] == manifest["data_fingerprint"]
    assert (row.version, row.new_version) == (base.version, False)

    earlier = _shifted(later, tmp_path / "earlier.csv", lambda d: d == pd.Timestamp("2016-06-01"))
    row, moved_earlier, _ = backfill_on(earlier)
    assert moved_earlier["data_fingerprint"] != manifest["data_fingerprint"]
    assert row.new_version and row.version == base.version + 1
