"""Inputs as they come: a close-only file validates and trains; OHLC rules apply where present."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from tasks.core.errors import DataValidationError, InputError
from tasks.core.training_config import FeatureConfig, SplitConfig
from tasks.data.ingest import read_prices
from tasks.data.validation import validate_prices
from tests.conftest import SAMPLE

TINY = """\
features: {window: 5}
model: {units: [4], epochs: 1, batch_size: 256, patience: 1}
backtest: {folds: 0}
"""


def _close_only(path: Path, symbol: str = "AAL", volume: bool = True) -> Path:
    """The sample's real AAL rows as a Kaggle prices.csv with only date,symbol,close[,volume]."""
    frame = read_prices(SAMPLE, symbols=[symbol])
    columns = ["date", "symbol", "close"] + (["volume"] if volume else [])
    frame.assign(date=frame["date"].dt.strftime("%Y-%m-%d"))[columns].to_csv(path, index=False)
    return path


def test_close_only_file_validates(tmp_path):
    frame = read_prices(_close_only(tmp_path / "prices.csv", volume=False))
    assert frame[["open", "high", "low", "volume"]].isna().all().all()
    report = validate_prices(frame, "prices.csv", tmp_path)
    assert report.success and report.rows == 1762
    assert not any(r.name.startswith("not null: high") for r in report.rules)


def test_ohlc_rules_still_apply_where_the_columns_exist(tmp_path):
    frame = read_prices(SAMPLE, symbols=["AAL"])
    broken = frame.copy()
    broken.loc[100, "high"] = broken.loc[100, "low"] / 2
    with pytest.raises(DataValidationError, match="low <= high"):
        validate_prices(broken, "broken.csv", tmp_path)
    some_missing = frame.copy()
    some_missing.loc[100, "high"] = float("nan")
    with pytest.raises(DataValidationError, match="not null: high"):
        validate_prices(some_missing, "holes.csv", tmp_path)


def test_schema_rule_still_refuses_a_wrong_layout(tmp_path):
    frame = read_prices(SAMPLE, symbols=["AAL"])
    with pytest.raises(DataValidationError, match="schema: columns are exactly"):
        validate_prices(frame.assign(adj_close=1.0), "extra.csv", tmp_path)
    with pytest.raises(DataValidationError, match="schema: columns are exactly"):
        validate_prices(frame.drop(columns="volume"), "fewer.csv", tmp_path)


def test_ohlcv_features_say_the_columns_are_missing(tmp_path):
    from tasks.features.feature_table import build_feature_frame

    prices = read_prices(_close_only(tmp_path / "prices.csv"))
    prices.attrs["source"] = "AAL (prices.csv)"
    with pytest.raises(InputError, match=r"AAL \(prices.csv\): rule 'OHLCV columns.*no open, "
                                         r"high, low"):
        build_feature_frame(prices, FeatureConfig(window=5, ohlcv=True), SplitConfig())
    frame, _ = build_feature_frame(prices, FeatureConfig(window=5), SplitConfig())
    assert len(frame) > 1000


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_harness")
def test_close_only_file_trains_through_the_cli(tmp_path, capsys):
    from flows.cli import main

    data = _close_only(tmp_path / "prices.csv")
    config = tmp_path / "tiny.yaml"
    config.write_text(TINY)
    home = tmp_path / "home"
    code = main(["run", "--input", str(data), "--home", str(home), "--epochs", "1",
                 "--config", str(config), "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    summary = json.loads(out.strip().splitlines()[-1])
    (model,) = summary["models"]
    assert model["symbol"] == "AAL" and model["version"] == 1
    assert (home / "models" / "AAL" / "1" / "model.keras").exists()
    stored = pd.read_parquet(home / "lake" / "prices" / "symbol=AAL")
    assert len(stored) == 1762 and stored["open"].isna().all()

    config.write_text("features: {window: 5, ohlcv: true}\n"
                      "model: {units: [4], epochs: 1, batch_size: 256, patience: 1}\n"
                      "backtest: {folds: 0}\n")
    code = main(["run", "--input", str(data), "--home", str(home), "--config", str(config)])
    err = capsys.readouterr().err
    assert code == 1
    assert "closecast run: error: AAL" in err and "rule 'OHLCV columns" in err, err
