"""Live Yahoo behind a PriceSource: a fake downloader stands in for yfinance (no network)."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

import tasks.data.sources as sources
from tasks.data.columns import PRICE_COLUMNS
from tasks.data.sources import SourceError, YahooSource, stage_download


def yahoo_frame(days: int = 120, symbol: str = "MSFT", multi: bool = True) -> pd.DataFrame:
    """What yfinance.download returns: a Date index, (Price, Ticker) columns in recent versions."""
    dates = pd.bdate_range("2020-01-02", periods=days, name="Date")
    close = 100 * np.exp(np.cumsum(np.random.default_rng(0).normal(0, 0.01, days)))
    frame = pd.DataFrame({"Adj Close": close * 0.98, "Close": close, "High": close * 1.01,
                          "Low": close * 0.99, "Open": close, "Volume": 1e6}, index=dates)
    if multi:
        frame.columns = pd.MultiIndex.from_product([frame.columns, [symbol]],
                                                   names=["Price", "Ticker"])
    return frame


class FakeDownloader:
    """Answers like yfinance.download, failing the first ``failures`` calls with ``error``."""

    def __init__(self, failures: int = 0, error: Exception | None = None,
                 known: tuple[str, ...] = ("MSFT",)) -> None:
        self.failures, self.error, self.known, self.calls = failures, error, known, []

    def __call__(self, **kwargs) -> pd.DataFrame:
        self.calls.append(kwargs)
        if len(self.calls) <= self.failures:
            raise self.error
        if kwargs["tickers"] not in self.known:
            return pd.DataFrame()  # what yfinance returns for an unknown symbol
        return yahoo_frame(symbol=kwargs["tickers"])


def test_yahoo_source_normalises_and_includes_the_end_day():
    fake = FakeDownloader()
    frame = YahooSource(download=fake).fetch("MSFT", date(2020, 1, 2), date(2020, 3, 31))
    assert list(frame.columns) == PRICE_COLUMNS and len(frame) == 120
    assert set(frame["symbol"]) == {"MSFT"} and frame["date"].is_monotonic_increasing
    assert fake.calls[0]["start"] == "2020-01-02" and fake.calls[0]["end"] == "2020-04-01"
    assert fake.calls[0]["auto_adjust"] is False


def test_flat_columns_also_read():
    fake = lambda **kw: yahoo_frame(multi=False)  # noqa: E731 - older yfinance shape
    assert len(YahooSource(download=fake).fetch("MSFT", date(2020, 1, 2), None)) == 120


def test_unknown_symbol_is_a_permanent_error():
    with pytest.raises(SourceError, match="no prices for 'NOPE'.*not retried"):
        YahooSource(download=FakeDownloader()).fetch("NOPE", date(2020, 1, 2), None)


def test_stage_download_names_rows_by_content(tmp_path):
    source = YahooSource(download=FakeDownloader())
    first = stage_download(source, ["MSFT"], date(2020, 1, 2), None, tmp_path)
    again = stage_download(source, ["MSFT"], date(2020, 1, 2), None, tmp_path)
    assert first == again and first.rows == 120 and first.symbols == ("MSFT",)
    assert len(pd.read_parquet(first.path)) == 120


def test_retry_condition_retries_transient_not_permanent():
    from prefect.states import Failed

    from tasks.core.caching import IO_RETRIES, is_transient

    assert is_transient(None, None, Failed(data=ConnectionError("reset")))
    assert is_transient(None, None, Failed(data=TimeoutError("slow")))
    assert not is_transient(None, None, Failed(data=SourceError("unknown symbol")))
    assert IO_RETRIES["retries"] >= 2 and IO_RETRIES["retry_jitter_factor"] > 0
    delays = IO_RETRIES["retry_delay_seconds"](3)
    assert delays == sorted(delays) and delays[1] > delays[0]  # exponential backoff


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_harness")
def test_task_retries_a_connection_error_with_backoff(tmp_path, monkeypatch):
    from prefect import flow

    fake = FakeDownloader(failures=2, error=ConnectionError("connection reset by peer"))
    monkeypatch.setattr(sources, "DOWNLOADER", fake)

    @flow
    def fetch() -> object:
        return sources.fetch_yahoo_task(("MSFT",), date(2020, 1, 2), None, str(tmp_path))

    staged = fetch()
    assert len(fake.calls) == 3 and staged.rows == 120


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_harness")
def test_task_does_not_retry_an_unknown_symbol(tmp_path, monkeypatch):
    from prefect import flow

    fake = FakeDownloader()
    monkeypatch.setattr(sources, "DOWNLOADER", fake)

    @flow
    def fetch() -> object:
        return sources.fetch_yahoo_task(("NOPE",), date(2020, 1, 2), None, str(tmp_path))

    with pytest.raises(SourceError, match="NOPE"):
        fetch()
    assert len(fake.calls) == 1


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_harness")
def test_cli_live_yahoo_run_and_missing_arguments(tmp_path, monkeypatch, capsys):
    from flows.cli import main

    fake = FakeDownloader()
    monkeypatch.setattr(sources, "DOWNLOADER", fake)
    home = tmp_path / "home"
    assert main(["run", "--format", "yahoo", "--symbols", "MSFT", "--home", str(home)]) == 1
    assert "--start" in capsys.readouterr().err and fake.calls == []
    tiny = tmp_path / "tiny.yaml"
    tiny.write_text("features: {window: 5}\nmodel: {units: [4], batch_size: 256}\n")
    code = main(["run", "--format", "yahoo", "--symbols", "MSFT", "--start", "2020-01-02",
                 "--config", str(tiny), "--epochs", "1", "--home", str(home), "--json"])
    assert code == 0, capsys.readouterr().err
    assert len(fake.calls) == 1
    assert (home / "lake" / "prices" / "symbol=MSFT" / "part.parquet").exists()
    assert (home / "models" / "MSFT" / "1" / "metrics.json").exists()
