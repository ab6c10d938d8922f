"""The daily flow and its replay on a real Prefect engine: a champion trained as of an earlier
date forecasts later days point in time, the ledger fills idempotently, a degraded ledger
starts a retrain, and no artifact references an image by a relative path."""

from __future__ import annotations

import json
import shutil
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from flows.daily import daily_flow, replay_flow
from flows.models import promote
from flows.training import train_flow
from tasks.core.config import RunConfig
from tasks.core.operations_config import DegradationPolicy
from tasks.core.training_config import BacktestConfig, FeatureConfig, ModelConfig
from tasks.data.lake import read_partition
from tasks.reporting.images import relative_images
from tasks.serving.ledger import IssuedForecast, append_forecasts, read_ledger
from tests.conftest import SAMPLE

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]

TRAINED_AS_OF = date(2016, 10, 31)


def tiny(home: Path) -> RunConfig:
    return RunConfig(home=home, input=SAMPLE, symbols=("AAL",), features=FeatureConfig(window=5),
                     model=ModelConfig(units=(4,), epochs=1, batch_size=256, patience=1),
                     backtest=BacktestConfig(folds=0))


@pytest.fixture(scope="module")
def champion_home(tmp_path_factory, prefect_harness) -> Path:
    """A home whose AAL champion was trained as of 2016-10-31 (promoted by hand if need be)."""
    home = tmp_path_factory.mktemp("daily") / "home"
    (result,) = train_flow(tiny(home).model_copy(update={"as_of": TRAINED_AS_OF}))
    if not result.promoted:
        promote(home / "models", "AAL", result.version)
    return home


@pytest.fixture
def home(champion_home, tmp_path) -> Path:
    copy = tmp_path / "home"
    shutil.copytree(champion_home, copy)
    return copy


def test_replay_builds_the_ledger_point_in_time_and_idempotently(home):
    from tasks.forecaster.paths import forecast_recursive
    from tasks.serving.predict import load_champion

    config = tiny(home)
    days = replay_flow(config, date(2016, 11, 1), date(2016, 11, 4))
    assert [d.as_of for d in days] == ["2016-11-01", "2016-11-02", "2016-11-03", "2016-11-04"]
    assert [(d.issued, d.added, d.scored) for d in days] == [(1, 1, 0)] + [(1, 1, 1)] * 3
    ledger = read_ledger(home / "lake", "AAL")
    assert len(ledger) == 4 and ledger["scored_at"].notna().sum() == 3
    assert list(ledger["target_date"].dt.date) == [date(2016, 11, d) for d in (2, 3, 4, 7)]
    # no look-ahead: the forecast for as-of D is the champion's on the lake rows <= D only
    champion = load_champion(home / "models", "AAL")
    prices = read_partition(home / "lake", "AAL", date(2016, 11, 2))
    expected = forecast_recursive(champion.forecaster, prices, 1)["close"].iloc[0]
    assert ledger["forecast"].iloc[1] == pytest.approx(expected)
    assert ledger["base_close"].iloc[1] == prices["close"].iloc[-1]
    scored = ledger.dropna(subset=["actual"])
    closes = read_partition(home / "lake", "AAL").set_index("date")["close"]
    assert list(scored["actual"]) == list(closes.loc[scored["actual_date"]])
    # a second replay adds nothing and rewrites nothing
    again = replay_flow(config, date(2016, 11, 1), date(2016, 11, 4))
    assert sum(d.issued for d in again) == 4 and sum(d.added + d.scored for d in again) == 0
    pd.testing.assert_frame_equal(read_ledger(home / "lake", "AAL"), ledger)
    assert days[-1].monitor[0].scored == 3 and days[-1].monitor[0].champion == champion.version


def test_no_forecast_from_a_champion_trained_after_the_date(home):
    """Replaying days the champion was trained on would be in-sample: nothing is issued."""
    day = daily_flow(tiny(home).model_copy(update={"as_of": date(2016, 10, 20)}))
    assert day.issued == 0 and read_ledger(home / "lake", "AAL").empty


def test_a_degraded_ledger_starts_a_retrain_subflow(home):
    lake = home / "lake"
    prices = read_partition(lake, "AAL", TRAINED_AS_OF).tail(11).reset_index(drop=True)
    champion = json.loads((home / "models" / "AAL" / "champion.json").read_text())["version"]
    nan = float("nan")
    bad = [IssuedForecast("AAL", d.date(), (d + pd.offsets.BDay(1)).date(), 1, champion,
                          d.date(), c, c * 1.10, nan, nan, nan, nan, nan, nan, nan, 0.02)
           for d, c in zip(prices["date"].iloc[:10], prices["close"].iloc[:10], strict=True)]
    assert append_forecasts(lake, bad) == 10
    policy = DegradationPolicy(window=10, min_scored=8, cooldown_days=0)
    day = daily_flow(tiny(home).model_copy(update={"as_of": date(2016, 11, 1)}), policy)
    assert day.scored == 10 and "AAL" in day.retrained
    assert "RMSE / naive" in day.retrained["AAL"] and "RMSE / naive" in day.monitor[0].degraded
    manifest = json.loads((home / "models" / "AAL" / "2" / "manifest.json").read_text())
    assert manifest["as_of"] == "2016-11-01"


def test_no_artifact_references_an_image_by_a_relative_path(home):
    """Report artifacts (training) and monitor artifacts (daily) embed their images."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterType

    replay_flow(tiny(home), date(2016, 11, 1), date(2016, 11, 3))
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(type=ArtifactFilterType(any_=["markdown"])))
    keys = {a.key for a in artifacts}
    assert {"aal-report", "monitor-summary"} <= keys
    for artifact in artifacts:
        assert relative_images(str(artifact.data)) == [], artifact.key
    monitor = [a for a in artifacts if a.key == "monitor-summary"]
    assert any("data:image/png;base64," in str(a.data) for a in monitor)
    assert any("data:image/png;base64," in str(a.data) for a in artifacts if a.key == "aal-report")


def test_cli_replays_daily_and_prints_the_monitor(home, tmp_path, capsys):
    from flows.cli import main

    config = tmp_path / "tiny.json"
    config.write_text(tiny(home).model_dump_json(exclude={"home", "input"}))
    args = ["--config", str(config), "--home", str(home), "--symbols", "AAL", "--json"]
    assert main(["backfill", "--flow", "daily", "--start", "2016-11-01", "--end", "2016-11-03",
                 *args]) == 0
    replay = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert [(d["as_of"], d["added"], d["scored"]) for d in replay["days"]] == [
        ("2016-11-01", 1, 0), ("2016-11-02", 1, 1), ("2016-11-03", 1, 1)]
    assert main(["monitor", "--home", str(home), "--json"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    (row,) = json.loads(out[-1])["symbols"]
    assert row["symbol"] == "AAL" and row["scored"] == 2 and row["issued"] == 3
    assert row["rmse_ratio_20"] is not None and row["crps_ratio_20"] > 0  # quantiles carried
    assert out[0].split()[:3] == ["symbol", "champion", "issued"]
    assert main(["monitor", "--home", str(home), "--symbol", "../x"]) == 1
