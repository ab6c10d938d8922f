"""Validation: a real GX suite passes real data and names rules and rows on bad data."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from tasks.errors import DataValidationError
from tasks.ingest import read_prices
from tasks.validation import validate_prices
from tests.conftest import KAGGLE_SUBSET, REAL


@pytest.fixture(scope="module")
def prices() -> pd.DataFrame:
    return read_prices(KAGGLE_SUBSET, symbols=["AAL"]).head(40)


@pytest.mark.parametrize("name", ["AMZN.csv", "WEN.csv", KAGGLE_SUBSET.name])
def test_real_files_pass(tmp_path, name):
    report = validate_prices(read_prices(REAL / name), name, tmp_path)
    assert report.success and report.failures == ()
    result = json.loads((tmp_path / f"{name}.result.json").read_text())
    assert result["success"] is True and len(result["results"]) == report.evaluated >= 15


def _broken(prices: pd.DataFrame, row: int, **values) -> pd.DataFrame:
    frame = prices.copy()
    for column, value in values.items():
        frame.loc[row, column] = value
    return frame


@pytest.mark.parametrize(("change", "rule"), [
    ({"high": 1.0}, "low <= high"),
    ({"close": 99.0}, "close <= high"),
    ({"low": 50.0}, "low <= open"),
    ({"open": 60.0}, "open <= high"),
    ({"close": -1.0}, "close is a finite price > 0"),
    ({"open": 0.0}, "open is a finite price > 0"),
    ({"close": np.inf}, "close is a finite price > 0"),
    ({"close": np.nan}, "not null: close"),
    ({"volume": -5.0}, "volume is finite and >= 0"),
])
def test_each_rule_names_itself_and_the_row(tmp_path, prices, change, rule):
    frame = _broken(prices, 7, **change)
    with pytest.raises(DataValidationError) as info:
        validate_prices(frame, "bad.csv", tmp_path)
    message = str(info.value)
    assert "bad.csv" in message and f"rule '{rule}'" in message
    assert "2010-01-13" in message  # the date of row 7: the offending row is shown


def test_duplicates_fail(tmp_path, prices):
    frame = pd.concat([prices, prices.iloc[[3]]], ignore_index=True)
    with pytest.raises(DataValidationError, match=r"unique \(symbol, date\)' broken by 2 row"):
        validate_prices(frame, "dup.csv", tmp_path)
