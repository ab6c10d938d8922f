"""Kaggle's S&P 500 file as it comes (tests/data/kaggle_sp500_5yr_quirks.csv.gz: rows of the real
market file, each line unchanged): its symbol column, bad print, empty OHL rows, gaps, short and
young listings are read, said, stored and trained as issue 29 asks; nothing stored is lost."""

from __future__ import annotations

import gzip
import logging

import numpy as np
import pandas as pd
import pytest

from tasks.core.config import RunConfig
from tasks.core.errors import DataValidationError, ShortHistory
from tasks.core.training_config import (
    BacktestConfig,
    FeatureConfig,
    SplitConfig,
    split_sizes,
    training_span,
)
from tasks.data.columns import detect_format
from tasks.data.ingest import read_prices
from tasks.data.kaggle import detect_bad_prints, detect_splits, price_warnings
from tasks.data.price_suite import limits_for
from tasks.data.validation import validate_prices
from tasks.features.feature_table import build_feature_frame, sample_count
from tests.conftest import MARKET_SUBSET, REAL, tree_state

LIMITS = limits_for(RunConfig().validation, FeatureConfig(), SplitConfig())
QUARANTINED = [("AOS", "2014-05-19"), ("DHR", "2014-11-06"), ("DHR", "2016-01-12"),
               ("LNT", "2016-05-19")]


@pytest.fixture(scope="module")
def market() -> pd.DataFrame:
    return read_prices(MARKET_SUBSET)


def _symbol(market: pd.DataFrame, symbol: str, as_of: str | None = None) -> pd.DataFrame:
    """One symbol's rows, without the rows validation quarantines, as the lake holds them."""
    rows = market[market["symbol"] == symbol]
    bad = [pd.Timestamp(d) for s, d in QUARANTINED if s == symbol]
    rows = rows[~rows["date"].isin(bad)]
    if as_of:
        rows = rows[rows["date"] <= pd.Timestamp(as_of)]
    rows = rows.reset_index(drop=True)
    rows.attrs["source"] = symbol
    return rows


# --- reading -----------------------------------------------------------------------------------

def test_the_market_file_reads_by_its_name_column(market):
    assert detect_format(MARKET_SUBSET) == "kaggle"
    assert market.groupby("symbol").size().to_dict() == {
        "AAL": 277, "AOS": 252, "APTV": 44, "DHR": 345, "DWDP": 109, "ES": 306, "LNT": 252}
    empty = market[(market["symbol"] == "DHR") & (market["date"] == "2016-01-12")].iloc[0]
    assert empty[["open", "high", "low"]].isna().all() and empty["close"] == 88.55
    assert empty["volume"] == 0


def test_the_plain_csv_reads_as_the_gzipped_one(tmp_path, market):
    plain = tmp_path / "all_stocks_5yr.csv"
    plain.write_bytes(gzip.decompress(MARKET_SUBSET.read_bytes()))
    assert plain.read_text().startswith("date,open,high,low,close,volume,Name\n")
    pd.testing.assert_frame_equal(read_prices(plain), market)


def test_a_symbol_column_under_another_name_is_refused_naming_it(tmp_path):
    from tasks.core.errors import InputError

    text = gzip.decompress(MARKET_SUBSET.read_bytes()).decode()
    path = tmp_path / "stocks.csv"
    path.write_text(text.replace(",Name\n", ",Stock\n", 1))
    for options in ({}, {"fmt": "yahoo-csv"}, {"symbols": ["AAL"]}):
        with pytest.raises(InputError) as info:
            read_prices(path, **options)
        message = str(info.value)
        assert "rule 'symbol column': column 'Stock' holds 7 different symbols (AAL, AOS, " \
               "APTV, DHR, DWDP and 2 more): the rows carry several symbols" in message
        assert "rename that column to symbol (accepted names, any case: symbol, ticker, " \
               "ticker symbol, name)" in message
    with pytest.raises(InputError, match="column 'Name' holds 7 different symbols"):
        read_prices(MARKET_SUBSET, "yahoo-csv")  # told it is one symbol's: refused all the same


# --- bad prints and splits ---------------------------------------------------------------------

def test_a_one_day_move_that_reverts_is_a_bad_print_not_a_split(market):
    (row,) = detect_bad_prints(market).itertuples()
    assert (row.symbol, row.date, row.close, row.before, row.after) == (
        "LNT", pd.Timestamp("2016-05-19"), 17.87, 35.35, 35.91)
    assert detect_splits(market).empty
    (warning,) = price_warnings(market, MARKET_SUBSET)
    assert "LNT 2016-05-19 close 17.87 between 35.35 and 35.91" in warning
    assert "bad prints" in warning and "prices-split-adjusted.csv" not in warning


def _split_lnt(market: pd.DataFrame) -> pd.DataFrame:
    """LNT's real rows with a 2:1 split on 2016-06-01, as an unadjusted file would have it."""
    lnt = _symbol(market, "LNT")
    after = lnt["date"] >= "2016-06-01"
    lnt.loc[after, ["open", "high", "low", "close"]] /= 2
    return lnt


@pytest.mark.parametrize(("header", "named"), [
    ("date,symbol,open,close,low,high,volume", True),  # Kaggle NYSE's prices.csv
    ("date,open,high,low,close,volume,Name", False),  # Kaggle's S&P 500 file: adjusted
])
def test_split_advice_names_the_adjusted_kaggle_file_only_for_its_header(tmp_path, market,
                                                                        header, named):
    lnt = _split_lnt(market)
    lnt = lnt.assign(date=lnt["date"].dt.strftime("%Y-%m-%d"), Name=lnt["symbol"])
    path = tmp_path / "prices.csv"
    lnt[header.split(",")].to_csv(path, index=False)
    frame = read_prices(path)
    assert detect_splits(frame)[["symbol", "date"]].values.tolist() == [
        ["LNT", pd.Timestamp("2016-06-01")]]
    (split,) = [w for w in price_warnings(frame, path) if "look like stock splits" in w]
    assert "LNT 2016-05-31..2016-06-01 (2:1 split)" in split
    assert ("prices-split-adjusted.csv" in split) == named


def test_kaggles_unadjusted_prices_name_the_adjusted_file():
    path = REAL / "kaggle_nyse_prices_unadjusted_airlines.csv"
    frame = read_prices(path)
    found = detect_splits(frame)
    assert found[["symbol", "date"]].values.tolist() == [
        ["ALK", pd.Timestamp("2012-03-19")], ["ALK", pd.Timestamp("2014-07-10")]]
    assert detect_bad_prints(frame).empty
    assert "use prices-split-adjusted.csv" in price_warnings(frame, path)[-1]


def test_a_move_whose_open_did_not_move_with_it_is_no_split(market):
    """AMD 2016-04-22 in the full file: open +22%, close +52% (earnings), a 1.5 ratio."""
    aal = _symbol(market, "AAL")
    day = 100
    before = aal.loc[day - 1, "close"]
    aal.loc[day:, ["open", "high", "low", "close"]] *= 1.5 * before / aal.loc[day, "close"]
    assert len(detect_splits(aal)) == 1  # the whole day re-priced by 1.5: a 1:1.5 split
    aal.loc[day, "open"] = before * 1.22
    assert detect_splits(aal).empty


# --- validation --------------------------------------------------------------------------------

def test_fail_names_the_rules_and_how_many_rows_drop_would_quarantine(tmp_path, market):
    with pytest.raises(DataValidationError) as info:
        validate_prices(market, "market.csv.gz", tmp_path, LIMITS)
    lines = str(info.value).splitlines()
    assert lines[0] == "market.csv.gz: 7 validation rule(s) failed, nothing was stored"
    assert lines[-1] == (
        "--on-invalid drop would quarantine 4 of the 1,585 rows (to validation/quarantine/, "
        "each with the rules it broke) and store the other 1,581; the default, --on-invalid "
        "fail, stores nothing")
    assert not any("gap" in line or "history" in line for line in lines)


def test_gaps_and_a_short_history_are_notes_and_drop_quarantines_bad_rows_only(tmp_path,
                                                                              market):
    report = validate_prices(market, "market.csv.gz", tmp_path, LIMITS, "drop",
                             kept_target=tmp_path / "kept.parquet")
    assert report.notes == (
        "2 gap(s) longer than 10 business days, kept: DHR 2015-03-06..2015-03-23 (11 business "
        "days), ES 2015-03-06..2015-03-23 (11 business days); no training, validation or test "
        "window spans one",
        "1 symbol(s) with less history than a model needs (77 days), kept: APTV (44 days); "
        "training leaves them out until they have it")
    quarantined = pd.read_parquet(report.quarantine_path)
    assert [(s, str(d.date())) for s, d in zip(quarantined["symbol"], quarantined["date"],
                                               strict=True)] == QUARANTINED
    kept = pd.read_parquet(report.kept_path)
    assert kept.groupby("symbol").size().to_dict() == {
        "AAL": 277, "AOS": 251, "APTV": 44, "DHR": 343, "DWDP": 109, "ES": 306, "LNT": 251}


# --- features: gaps, short histories, young listings ------------------------------------------

def test_no_window_spans_a_gap_and_the_rows_around_it_are_kept(market):
    prices = _symbol(market, "DHR")
    frame, _ = build_feature_frame(prices, FeatureConfig(), SplitConfig())
    sizes = split_sizes(sample_count(prices, FeatureConfig()), SplitConfig())
    assert len(frame) == sum(sizes) and training_span(frame["split"].to_numpy()) == sizes[0]
    gap = frame[frame["split"].str.endswith("-gap")]
    assert set(gap["split"]) == {"train-gap"} and len(gap) == 21  # window 20 + the target
    assert gap["date"].iloc[0] == pd.Timestamp("2015-03-23")  # the first day after the gap
    dates = prices["date"].to_numpy().astype("datetime64[D]")
    step = np.concatenate([[0], np.busday_count(dates[:-1], dates[1:])])
    day = {d: i for i, d in enumerate(prices["date"])}
    for row in frame.itertuples():
        t = day[row.date]
        spans = step[t - 20:t + 1].max() > 10
        assert spans == row.split.endswith("-gap"), row
    wide = FeatureConfig(max_gap_business_days=11)
    frame, _ = build_feature_frame(prices, wide, SplitConfig())
    assert not frame["split"].str.endswith("-gap").any()


def test_a_gap_limit_is_one_setting_validation_sets_for_the_features():
    from tasks.core.config import load_config

    config = RunConfig.model_validate({"validation": {"max_gap_business_days": 15}})
    assert config.features.max_gap_business_days == 15
    assert RunConfig().features.fingerprint() == FeatureConfig().fingerprint()
    assert "max_gap_business_days" not in FeatureConfig().model_dump()  # saved versions as-is
    assert RunConfig.model_validate(config.model_dump(mode="json")) == config
    with pytest.raises(Exception, match="follows validation.max_gap_business_days"):
        load_config(None, features={"max_gap_business_days": 3})


def test_a_symbol_too_short_for_a_model_is_left_out_with_one_line(tmp_path, market, caplog):
    from tasks.data.lake import upsert_prices
    from tasks.features.datasets import (
        DatasetRef,
        LeftOut,
        prepare_or_leave_out,
        without_left_out,
    )

    lake = tmp_path / "lake"
    upsert_prices(pd.concat([_symbol(market, "APTV"), _symbol(market, "DWDP")]), lake)
    prepared = [prepare_or_leave_out(lake, s, None, FeatureConfig(), SplitConfig())
                for s in ("APTV", "DWDP")]
    assert prepared[0] == LeftOut("APTV", "44 days give 17 training windows of 20 lags; need "
                                          "at least 40")
    log = logging.getLogger("test-left-out")
    with caplog.at_level(logging.INFO, logger="test-left-out"):
        ready = without_left_out(prepared, log)
    assert [d.symbol for d in ready] == ["DWDP"] and isinstance(ready[0], DatasetRef)
    (line,) = [r.getMessage() for r in caplog.records if r.name == "test-left-out"]
    assert line == ("1 symbol(s) left out of training, too little history (their prices are "
                    "in the lake): APTV: 44 days give 17 training windows of 20 lags; need at "
                    "least 40")


@pytest.mark.parametrize(("as_of", "short"), [("2018-02-06", [1]), ("2018-02-07", [])])
def test_a_young_listing_one_window_short_of_a_fold_is_left_out_of_that_fold(market, as_of,
                                                                             short):
    """DWDP as of 2018-02-06 (108 days): the oldest of 3 folds gets 39 training windows of 20
    lags, one short of 40, which aborted the whole 388-symbol run; a day later it has 40."""
    from tasks.evaluation.backtest import _fold_frames
    from tasks.market.global_model import fold_rows

    prices = _symbol(market, "DWDP", as_of)
    backtest = BacktestConfig(folds=3)
    build_feature_frame(prices, FeatureConfig(), SplitConfig())  # the model itself: enough
    folds = list(_fold_frames(prices, FeatureConfig(), SplitConfig(), backtest))
    assert [j + 1 for j, f in enumerate(folds) if isinstance(f, ShortHistory)] == short
    if short:
        assert folds[0].detail == "82 days give 39 training windows of 20 lags; need at least 40"
        with pytest.raises(ShortHistory):
            fold_rows(prices, "DWDP", FeatureConfig(), SplitConfig(), 3, 0)
    else:
        assert folds[0].n_train == 40


# --- the flow: nothing stored is lost ----------------------------------------------------------

TINY = """\
model: {units: [4], epochs: 1, batch_size: 256, patience: 1}
backtest: {folds: 3, epochs: 1}
"""


def _run(capsys, caplog, home, config, *args: str) -> tuple[int, str]:
    """``closecast run`` on the market rows: its exit code, and its log and console text."""
    from flows.cli import main

    caplog.clear()
    code = main(["run", "--input", str(MARKET_SUBSET), "--home", str(home), "--config",
                 str(config), *args])
    return code, caplog.text + capsys.readouterr().err


def _unchanged(before: dict, after: dict) -> bool:
    """Every file of ``before`` is still there, with its size and mtime."""
    changed = [name for name, state in before.items() if after.get(name) != state]
    assert not changed, changed
    return True


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_harness")
def test_a_market_run_stores_everything_it_can_and_loses_nothing(tmp_path, capsys, caplog):
    """On the market file's rows: a young listing one window short of a fold (per-symbol and
    global), a gap, a short history, a bad print, empty OHL rows: the runs pass with drop,
    fail with fail, and no stored file (lake, versions, champions) is changed or lost."""
    import json

    home, config = tmp_path / "home", tmp_path / "tiny.yaml"
    config.write_text(TINY)
    # 1. two clean symbols, per-symbol models: DWDP's oldest fold is one window short
    code, err = _run(capsys, caplog, home, config, "--symbols", "AAL,DWDP", "--as-of", "2018-02-06")
    assert code == 0, err
    assert "DWDP: backtest fold(s) 1 of 3 left out, too little history: 82 days give 39 " \
           "training windows of 20 lags; need at least 40" in err
    folds = json.loads((home / "models" / "DWDP" / "1" / "metrics.json").read_text())
    assert [f["fold"] for f in folds["backtest"]["folds"]] == [2, 3]
    stored = {part: tree_state(home / part) for part in ("lake", "models")}

    # 2. the whole file, --on-invalid fail: nothing stored, nothing changed
    code, err = _run(capsys, caplog, home, config, "--as-of", "2018-02-06")
    assert code == 1
    assert "7 validation rule(s) failed, nothing was stored" in err
    assert "--on-invalid drop would quarantine 4 of the 1,585 rows" in err
    assert all(tree_state(home / part) == state for part, state in stored.items())

    # 3. the whole file, --on-invalid drop, one global model: the bad rows are quarantined,
    # the gaps kept, APTV stored and left out, DWDP's oldest global fold left out
    code, err = _run(capsys, caplog, home, config, "--as-of", "2018-02-06", "--on-invalid", "drop")
    assert code == 0, err
    assert "1 symbol(s) left out of training, too little history (their prices are in the " \
           "lake): APTV: 43 days give 16 training windows of 20 lags; need at least 40" in err
    assert "global model fold 1/3: 1 symbol(s) left out, too little history in this fold: " \
           "DWDP" in err
    assert "2 gap(s) longer than 10 business days, kept: DHR 2015-03-06..2015-03-23" in err
    lake = {s: len(pd.read_parquet(home / "lake" / "prices" / f"symbol={s}"))
            for s in ("AAL", "APTV", "DHR", "DWDP", "ES", "LNT")}
    assert lake == {"AAL": 277, "APTV": 44, "DHR": 343, "DWDP": 109, "ES": 306, "LNT": 251}
    assert not (home / "models" / "APTV").exists()
    for symbol in ("AOS", "DHR", "ES", "LNT"):
        assert (home / "models" / symbol / "1" / "manifest.json").exists(), symbol
    dhr = json.loads((home / "models" / "DHR" / "1" / "metrics.json").read_text())
    assert dhr["n_train"] == 205  # 226 training windows less the 21 that span the gap
    # every file of the lake (prices, features) as it was; a store's stamp (its cache key's
    # record, named by the source's sha256) is rewritten by each store of the same file
    assert _unchanged({k: v for k, v in stored["lake"].items() if not k.startswith("_stamps")},
                      tree_state(home / "lake"))
    assert _unchanged({k: v for k, v in stored["models"].items()
                       if not k.endswith("champion.json")}, tree_state(home / "models"))
    for symbol in ("AAL", "DWDP"):  # the champion moves only by promotion, to a kept version
        champion = json.loads((home / "models" / symbol / "champion.json").read_text())
        assert (home / "models" / symbol / str(champion["version"]) / "manifest.json").exists()
