"""Ingest: every real file reads correctly; bad files fail with file, rule and rows."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tasks.core.errors import InputError
from tasks.data.columns import PRICE_COLUMNS, detect_format
from tasks.data.ingest import read_prices, stage_prices
from tests.conftest import KAGGLE_SUBSET, REAL, SAMPLE


def test_kaggle_subset_with_us_dates_and_crlf():
    frame = read_prices(KAGGLE_SUBSET)
    assert detect_format(KAGGLE_SUBSET) == "kaggle"
    assert list(frame.columns) == PRICE_COLUMNS
    assert len(frame) == 3524
    assert frame.groupby("symbol").size().to_dict() == {"AAL": 1762, "ZION": 1762}
    first = frame.iloc[0]
    assert (first["symbol"], first["date"]) == ("AAL", pd.Timestamp("2010-01-04"))
    assert (first["open"], first["close"], first["low"], first["high"], first["volume"]) == \
        (4.84, 4.77, 4.66, 4.94, 9837300.0)
    zion = frame[frame["symbol"] == "ZION"].iloc[-1]
    assert zion["date"] == pd.Timestamp("2016-12-30") and zion["close"] == pytest.approx(43.040001)


def test_embedded_sample_equals_the_real_subset():
    pd.testing.assert_frame_equal(read_prices(SAMPLE), read_prices(KAGGLE_SUBSET))


def test_yahoo_amzn_without_final_newline():
    frame = read_prices(REAL / "AMZN.csv")
    assert detect_format(REAL / "AMZN.csv") == "yahoo-csv"
    assert len(frame) == 5935 and set(frame["symbol"]) == {"AMZN"}
    assert frame["date"].is_monotonic_increasing
    assert frame["date"].iloc[-1] == pd.Timestamp("2020-12-11")


def test_yahoo_wen_null_rows_dropped_and_zero_opens_missing(caplog):
    frame = read_prices(REAL / "WEN.csv")
    assert len(frame) == 10240 - 2  # SOURCES.md: 10,240 rows, two all-null
    assert not frame["date"].isin(pd.to_datetime(["1985-01-29", "1985-06-12"])).any()
    assert frame["open"].isna().sum() == 2910
    assert (frame["open"].dropna() > 0).all()
    assert "null" in caplog.text and "Open=0" in caplog.text


def test_yahoo_symbol_from_any_file_name(tmp_path):
    target = tmp_path / "^GSPC.csv"
    shutil.copy(REAL / "AMZN.csv", target)
    assert set(read_prices(target)["symbol"]) == {"^GSPC"}
    assert set(read_prices(target, symbols=["amzn"])["symbol"]) == {"AMZN"}


def test_symbols_filter_and_unknown_symbol():
    assert set(read_prices(SAMPLE, symbols=["ZION"])["symbol"]) == {"ZION"}
    with pytest.raises(InputError, match="no rows for \\['MSFT'\\]"):
        read_prices(SAMPLE, symbols=["MSFT"])


def _write(tmp_path: Path, name: str, text: str | bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


GOOD = "date,symbol,open,close,low,high,volume\n2016-01-04,AAA,10,11,9,12,100\n"


@pytest.mark.parametrize(("name", "content", "rule", "shown"), [
    ("empty.csv", "", "not empty", None),
    ("header.csv", "date,symbol,open,close,low,high,volume\n", "has rows", None),
    ("garbage.csv", b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe binary", "UTF-8 text", None),
    ("nocol.csv", "date,symbol,open,low,high,volume\n2016-01-04,AAA,1,1,1,1\n",
     "required columns", "close"),
    ("nodate.csv", "Day,Close\n2016-01-04,1\n", "known header", "Day,Close"),
    ("quoted.csv", 'date,symbol,close\n2016-01-04,AAA,"1\n', "readable CSV", None),
    ("text.csv", GOOD + "2016-01-05,AAA,10,eleven,9,12,100\n", "numeric columns", "eleven"),
    ("dates.csv", GOOD + "yesterday,AAA,10,11,9,12,100\n", "dates parse", "yesterday"),
    ("junk.csv", GOOD + "-- exported by tool v2 --\n", "dates parse", "exported"),
    ("unknown.csv", "a,b,c\n1,2,3\n", "known header", "a,b,c"),
    ("unknown-names.csv", "a,b,c\n1,2,3\n", "accepted names", "close/last"),
])
def test_bad_files_name_file_rule_and_rows(tmp_path, name, content, rule, shown):
    path = _write(tmp_path, name, content)
    with pytest.raises(InputError) as info:
        read_prices(path)
    message = str(info.value)
    assert name in message and rule in message
    if shown:
        assert shown in message


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        read_prices(tmp_path / "nope.csv")


def test_text_error_gives_line_numbers(tmp_path):
    path = _write(tmp_path, "t.csv", GOOD + GOOD.splitlines()[1].replace("11", "x1") + "\n")
    with pytest.raises(InputError) as info:
        read_prices(path)
    assert "3" in str(info.value).splitlines()[-1]  # line 3 of the file


def test_stage_writes_parquet_named_by_content(tmp_path):
    staged = stage_prices(SAMPLE, None, ("AAL",), tmp_path)
    frame = pd.read_parquet(staged.path)
    assert staged.rows == len(frame) == 1762 and staged.symbols == ("AAL",)
    assert staged.source_sha256 in Path(staged.path).name or \
        Path(staged.path).name.startswith(staged.source_sha256[:16])
    assert np.issubdtype(frame["date"].dtype, np.datetime64)


def _kaggle_dir(tmp_path: Path, raw: bool, adjusted: bool, securities: bool) -> Path:
    directory = tmp_path / "nyse"
    directory.mkdir()
    text = SAMPLE.read_text()
    if raw:
        (directory / "prices.csv").write_text(text.replace(",AAL,", ",RAW,"))
    if adjusted:
        (directory / "prices-split-adjusted.csv").write_text(text)
    if securities:
        (directory / "securities.csv").write_text(
            "Ticker symbol,Security,SEC filings,GICS Sector,GICS Sub Industry\r\n"
            "AAL,American Airlines Group,reports,Industrials,Airlines\r\n"
            'ZION,"Zions Bancorp",reports,Financials,Regional Banks\r\n')
    return directory


def test_kaggle_directory_prefers_split_adjusted_and_stages_securities(tmp_path):
    directory = _kaggle_dir(tmp_path, raw=True, adjusted=True, securities=True)
    pd.testing.assert_frame_equal(read_prices(directory), read_prices(SAMPLE))
    staged = stage_prices(directory, None, (), tmp_path / "staging")
    securities = pd.read_parquet(staged.securities_path)
    assert securities.to_dict("records") == [
        {"symbol": "AAL", "name": "American Airlines Group", "sector": "Industrials"},
        {"symbol": "ZION", "name": "Zions Bancorp", "sector": "Financials"}]
    changed = stage_prices(directory, None, (), tmp_path / "staging")
    (directory / "securities.csv").write_text((directory / "securities.csv").read_text()
                                              .replace("Zions Bancorp", "Zions"))
    assert stage_prices(directory, None, (), tmp_path / "s").source_sha256 != \
        changed.source_sha256, "the directory's identity covers securities.csv"


def test_kaggle_directory_with_raw_prices_only_and_empty_directory(tmp_path):
    directory = _kaggle_dir(tmp_path, raw=True, adjusted=False, securities=False)
    assert set(read_prices(directory)["symbol"]) == {"RAW", "ZION"}
    assert stage_prices(directory, None, (), tmp_path / "st").securities_path is None
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="neither prices-split-adjusted.csv nor prices.csv"):
        read_prices(empty)


def test_split_like_moves_are_warned_with_symbol_and_dates(tmp_path, caplog):
    from tasks.data.kaggle import detect_splits

    dates = pd.bdate_range("2014-05-01", periods=40)
    close = np.linspace(600, 650, 40)
    close[dates >= "2014-06-09"] /= 7  # AAPL's 7:1 split, as Kaggle's raw prices.csv has it
    rows = [f"{d.date()},AAPL,{c},{c},{c * 0.99},{c * 1.01},1000"
            for d, c in zip(dates, close, strict=True)]
    rows += [f"{d.date()},FLAT,10,10.1,9.9,10.2,1000" for d in dates]
    path = _write(tmp_path, "prices.csv", "date,symbol,open,close,low,high,volume\n"
                  + "\n".join(rows) + "\n")
    frame = read_prices(path)
    found = detect_splits(frame)
    assert found[["symbol", "date"]].values.tolist() == [["AAPL", pd.Timestamp("2014-06-09")]]
    assert found["ratio"].iloc[0] == pytest.approx(7, rel=0.01)
    assert "AAPL 2014-06-06..2014-06-09 (7:1 split)" in caplog.text
    assert "prices-split-adjusted.csv" in caplog.text
    staged = stage_prices(path, None, (), tmp_path / "staging")
    assert len(staged.warnings) == 1 and "AAPL" in staged.warnings[0]


def test_real_adjusted_files_raise_no_split_warning():
    from tasks.data.kaggle import detect_splits

    for path in (KAGGLE_SUBSET, REAL / "AMZN.csv", REAL / "WEN.csv"):
        assert detect_splits(read_prices(path)).empty, path


# The same two days of AAL in the shapes files come in: aliases, any case, OHLC optional.
ALIAS_FILES = {
    "kaggle close-only": ("prices.csv", "date,symbol,close,volume\n"
                          "2010-01-04,AAL,4.77,9837300.0\n2010-01-05,AAL,5.31,25212000.0\n"),
    "kaggle close-only, no volume": ("p.csv", "date,symbol,close\n2010-01-04,AAL,4.77\n"
                                     "2010-01-05,AAL,5.31\n"),
    "Ticker, Date, any case": ("t.csv", "Ticker,DATE,CLOSE\nAAL,2010-01-04,4.77\n"
                               "aal,2010-01-05,5.31\n"),
    "Name (Kaggle S&P 500)": ("all_stocks_5yr.csv", "date,open,high,low,close,volume,Name\n"
                              "2010-01-04,4.84,4.94,4.66,4.77,9837300,AAL\n"
                              "2010-01-05,4.79,5.37,4.71,5.31,25212000,AAL\n"),
    "Symbol": ("s.csv", "Date,Symbol,Close\n2010-01-04,AAL,4.77\n2010-01-05,AAL,5.31\n"),
    "ticker symbol, lower case": ("s.csv", "date,ticker symbol,close\n2010-01-04,AAL,4.77\n"
                                  "2010-01-05,AAL,5.31\n"),
    "Ticker_Symbol, NAME beside it": ("s.csv", "Date,NAME,Ticker_Symbol,Close\n"
                                      "2010-01-04,American Airlines,AAL,4.77\n"
                                      "2010-01-05,American Airlines,AAL,5.31\n"),
    "yahoo Adj Close only": ("AAL.csv", "Date,Adj Close,Volume\n2010-01-04,4.77,9837300\n"
                             "2010-01-05,5.31,25212000\n"),
    "adj_close": ("AAL.csv", "date,adj_close\n2010-01-04,4.77\n2010-01-05,5.31\n"),
    "nasdaq Close/Last with $": ("AAL.csv", "Date,Close/Last,Volume,Open,High,Low\n"
                                 "01/05/2010,$5.31,25212000,$4.79,$5.37,$4.71\n"
                                 "01/04/2010,$4.77,9837300,$4.84,$4.94,$4.66\n"),
}


@pytest.mark.parametrize("case", list(ALIAS_FILES))
def test_aliases_and_close_only_files(tmp_path, case):
    name, content = ALIAS_FILES[case]
    frame = read_prices(_write(tmp_path, name, content)).sort_values("date")
    assert list(frame.columns) == PRICE_COLUMNS and set(frame["symbol"]) == {"AAL"}
    assert frame["close"].tolist() == [4.77, 5.31]
    assert list(frame["date"]) == list(pd.to_datetime(["2010-01-04", "2010-01-05"]))
    has_ohlc = "Open" in content or ",open," in content
    assert frame[["open", "high", "low"]].notna().all().all() == has_ohlc
    assert frame[["open", "high", "low"]].isna().all().all() == (not has_ohlc)


def test_close_wins_over_adj_close(tmp_path):
    path = _write(tmp_path, "X.csv", "Date,Close,Adj Close\n2016-01-04,10,9\n")
    assert read_prices(path)["close"].tolist() == [10.0]


def test_parse_failure_is_bad_input_not_an_io_fault(tmp_path):
    from tasks.core.caching import is_transient
    from tasks.data.ingest import stage_prices

    path = _write(tmp_path, "q.csv", 'date,symbol,close\n2016-01-04,AAA,"1\n')
    with pytest.raises(InputError, match="q.csv: rule 'readable CSV'") as info:
        stage_prices(path, None, (), tmp_path / "staging")

    class Failed:
        def __init__(self, error: BaseException) -> None:
            self.data = error

    assert not is_transient(None, None, Failed(info.value))
    assert not is_transient(None, None, Failed(KeyError("close")))
    assert is_transient(None, None, Failed(OSError(5, "Input/output error")))
    assert is_transient(None, None, Failed(TimeoutError("read timed out")))


# Gzipped input: every format reads a .gz exactly as the plain file; a broken one is bad input.
def _gzip(source: Path, target: Path) -> Path:
    import gzip

    target.write_bytes(gzip.compress(source.read_bytes(), mtime=0))
    return target


def _close_only_csv(path: Path) -> Path:
    frame = read_prices(SAMPLE, symbols=["AAL"])
    frame.assign(date=frame["date"].dt.strftime("%Y-%m-%d"))[["date", "symbol", "close"]] \
        .to_csv(path, index=False)
    return path


GZIP_CASES = {
    "kaggle (CRLF, M/D/YYYY)": (lambda tmp: KAGGLE_SUBSET, "prices-split-adjusted.csv.gz",
                                "kaggle"),
    "kaggle raw prices.csv": (lambda tmp: REAL / "kaggle_nyse_prices_unadjusted_airlines.csv",
                              "prices.csv.gz", "kaggle"),
    "yahoo-csv (no final newline)": (lambda tmp: REAL / "AMZN.csv", "AMZN.csv.gz", "yahoo-csv"),
    "yahoo-csv with null rows": (lambda tmp: REAL / "WEN.csv", "WEN.csv.gz", "yahoo-csv"),
    "close-only": (lambda tmp: _close_only_csv(tmp / "close.csv"), "close.csv.gz", "kaggle"),
    "kaggle S&P 500 (Name column)": (lambda tmp: _plain_market(tmp / "all_stocks_5yr.csv"),
                                     "all_stocks_5yr.csv.gz", "kaggle"),
}


def _plain_market(path: Path) -> Path:
    import gzip

    from tests.conftest import MARKET_SUBSET

    path.write_bytes(gzip.decompress(MARKET_SUBSET.read_bytes()))
    return path


@pytest.mark.parametrize("case", list(GZIP_CASES))
def test_gzipped_file_reads_as_the_plain_file(tmp_path, case):
    plain_of, name, fmt = GZIP_CASES[case]
    plain = plain_of(tmp_path)
    packed = _gzip(plain, tmp_path / name)
    assert detect_format(packed) == fmt
    pd.testing.assert_frame_equal(read_prices(packed), read_prices(plain))
    pd.testing.assert_frame_equal(read_prices(packed, fmt), read_prices(plain, fmt))


def test_yahoo_symbol_of_a_gzipped_file_is_its_name_without_csv_gz(tmp_path):
    packed = _gzip(REAL / "AMZN.csv", tmp_path / "BRK.B.csv.gz")
    assert set(read_prices(packed)["symbol"]) == {"BRK.B"}
    upper = _gzip(REAL / "AMZN.csv", tmp_path / "^GSPC.CSV.GZ")
    assert set(read_prices(upper)["symbol"]) == {"^GSPC"}
    assert set(read_prices(packed, symbols=["amzn"])["symbol"]) == {"AMZN"}


def test_gzip_is_told_by_its_bytes_not_its_name(tmp_path):
    packed = _gzip(REAL / "AMZN.csv", tmp_path / "AMZN.csv")  # gzipped, named like plain text
    pd.testing.assert_frame_equal(read_prices(packed), read_prices(REAL / "AMZN.csv"))
    plain = tmp_path / "WEN.csv.gz"  # plain text under a .gz name
    shutil.copy(REAL / "WEN.csv", plain)
    pd.testing.assert_frame_equal(read_prices(plain), read_prices(REAL / "WEN.csv"))


def test_kaggle_directory_of_gzipped_files(tmp_path):
    directory = _kaggle_dir(tmp_path, raw=False, adjusted=True, securities=True)
    expected = stage_prices(directory, None, (), tmp_path / "plain")
    for name in ("prices-split-adjusted.csv", "securities.csv"):
        _gzip(directory / name, directory / f"{name}.gz")
        (directory / name).unlink()
    pd.testing.assert_frame_equal(read_prices(directory), read_prices(SAMPLE))
    staged = stage_prices(directory, None, (), tmp_path / "gz")
    pd.testing.assert_frame_equal(pd.read_parquet(staged.securities_path),
                                  pd.read_parquet(expected.securities_path))
    assert staged.source_sha256 != expected.source_sha256, "keyed on the compressed bytes"


def test_staging_keys_a_gzipped_file_on_its_compressed_bytes(tmp_path):
    import hashlib

    packed = _gzip(SAMPLE, tmp_path / "prices.csv.gz")
    staged = stage_prices(packed, None, ("AAL",), tmp_path / "staging")
    assert staged.source_sha256 == hashlib.sha256(packed.read_bytes()).hexdigest()
    assert staged.rows == 1762
    assert stage_prices(packed, None, ("AAL",), tmp_path / "again").path.endswith(
        Path(staged.path).name), "same bytes, same staged name"


@pytest.mark.parametrize("cut", ["half", "header only", "first bytes", "corrupt"])
def test_broken_gzip_names_file_and_rule(tmp_path, cut):
    from tasks.core.caching import is_transient

    data = _gzip(REAL / "AMZN.csv", tmp_path / "whole.gz").read_bytes()
    broken = {"half": data[: len(data) // 2], "header only": data[:10], "first bytes": data[:3],
              "corrupt": data[:1000] + bytes(50) + data[1050:]}[cut]
    path = _write(tmp_path, "AMZN.csv.gz", broken)
    with pytest.raises(InputError) as info:
        stage_prices(path, None, (), tmp_path / "staging")
    message = str(info.value)
    assert "AMZN.csv.gz" in message and "rule 'readable gzip'" in message
    assert "truncated or corrupt" in message

    class Failed:
        data = info.value

    assert not is_transient(None, None, Failed()), "a broken .gz is never retried"


def test_validate_command_reads_gzip_and_refuses_a_truncated_one(tmp_path, capsys):
    from flows.cli import main

    packed = _gzip(REAL / "WEN.csv", tmp_path / "WEN.csv.gz")
    assert main(["validate", "--input", str(packed), "--home", str(tmp_path / "home")]) == 0
    out = capsys.readouterr().out
    assert f"{packed}: OK — 10238 rows passed" in out
    truncated = _write(tmp_path, "cut.csv.gz", packed.read_bytes()[:5000])
    assert main(["validate", "--input", str(truncated), "--home", str(tmp_path / "h2")]) == 1
    err = capsys.readouterr().err
    assert "cut.csv.gz" in err and "readable gzip" in err and "Traceback" not in err


def test_cells_that_are_not_plain_numbers_are_normalised_or_named(tmp_path):
    """Plain numbers parse as they are; spaces, "$12.50" and the missing markers go through
    the normalisation; any other text is an error naming its line."""
    header = "date,symbol,open,close,low,high,volume\n"
    rows = ["2016-01-04,AAL,1.5,1.5,1.4,1.6,100", "2016-01-05,AAL, 1.6 ,$1.70,1.5,1.8,null",
            "2016-01-06,AAL,,1.8,1.7,1.9,NA", "2016-01-07,AAL,1.8,1.9,1.7,2.0,1e3"]
    good = tmp_path / "good.csv"
    good.write_text(header + "\n".join(rows) + "\n")
    frame = read_prices(good)
    assert frame["open"].tolist()[:2] == [1.5, 1.6] and np.isnan(frame["open"].iloc[2])
    assert frame["close"].tolist() == [1.5, 1.7, 1.8, 1.9]
    assert frame["volume"].iloc[0] == 100 and frame["volume"].iloc[1:3].isna().all()
    assert frame["volume"].iloc[3] == 1000.0
    bad = tmp_path / "bad.csv"
    bad.write_text(header + "\n".join([*rows, "2016-01-08,AAL,1.9,abc,1.8,2.1,100"]) + "\n")
    with pytest.raises(InputError, match="numeric columns are numbers") as error:
        read_prices(bad)
    assert "abc" in str(error.value) and "6" in str(error.value)


@pytest.mark.parametrize("name", sorted(p.name for p in REAL.glob("*.csv")))
def test_plain_numbers_read_as_the_text_path_reads_them(name):
    """The fast read (numbers parsed by the CSV reader) gives the strict text path's values,
    bit for bit, on every real file in tests/data."""
    from tasks.data.parsing import _read_csv, _text_numbers

    path = REAL / name
    fmt = detect_format(path)
    fast = _read_csv(path, fmt, plain_numbers=True)
    _, strict = _text_numbers(path, fmt, _read_csv(path, fmt))
    if fast is None:  # a file with a cell that is not a plain number takes the text path
        assert fmt == "yahoo-csv"
        return
    numeric = list(strict.columns)
    pd.testing.assert_frame_equal(fast[numeric], strict, check_exact=True)
