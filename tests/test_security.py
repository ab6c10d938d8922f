"""Untrusted symbols and paths: one ticker rule everywhere a symbol enters, one confined-path
helper for every path built from data, and nothing ever written outside the home."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pandas as pd
import pytest

from flows.cli import main
from tasks.core.config import RunConfig, load_config
from tasks.core.errors import InputError
from tasks.core.markdown import code_block, escape
from tasks.core.paths import UnsafePathError, allowed_roots, confined, within
from tasks.core.symbols import is_valid_symbol, normalize_symbol, normalize_symbols
from tasks.core.version_files import Manifest, Metrics
from tasks.reporting.report import render_html, render_markdown
from tests.conftest import SAMPLE, tree_state

VALID = ["AAL", "BRK.B", "BRK-B", "^GSPC", "ZION", "0700", "A"]
HOSTILE = {
    "parent dirs": "../../../../tmp/x",
    "absolute": "/tmp/x",
    "separator": "A/B",
    "backslash": "A\\B",
    "dot-dot": "..",
    "dot": ".",
    "NUL": "A\x00B",
    "very long": "A" * 300,
    "Cyrillic A look-alike": "\u0410AL",
    "fullwidth look-alike": "\uff21\uff21\uff2c",
    "dotless i folds to I": "a\u0131l",
    "terminal escape": "A\x1b[31mB",
    "space": "A B",
    "empty": "",
}


@pytest.mark.parametrize("symbol", VALID)
def test_real_tickers_are_valid(symbol):
    assert normalize_symbol(symbol.lower() if symbol[0] != "^" else symbol) == symbol.upper()
    assert is_valid_symbol(symbol)


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_symbols_are_refused_with_the_rule(case):
    with pytest.raises(InputError) as error:
        normalize_symbol(HOSTILE[case], "--symbols")
    assert "valid symbol" in str(error.value) and "--symbols" in str(error.value)
    assert "\x00" not in str(error.value) and "\x1b" not in str(error.value)


def test_run_config_checks_symbols_from_every_entry_point():
    assert RunConfig(symbols=["aal", "brk.b", "AAL"]).symbols == ("AAL", "BRK.B")
    assert normalize_symbols("aal, zion") == ("AAL", "ZION")
    with pytest.raises(InputError, match="valid config"):
        load_config(None, symbols=("../x",))
    with pytest.raises(ValueError, match="valid symbol"):  # a deployment's parameters
        RunConfig.model_validate({"symbols": ["/tmp/x"]})


@pytest.mark.parametrize("part", ["..", ".", "", "a/b", "/etc", "a\x00b", "x" * 256, "a\\b"])
def test_confined_refuses_anything_but_a_plain_name(tmp_path, part):
    with pytest.raises(UnsafePathError):
        confined(tmp_path, "lake", part)


def test_confined_refuses_a_symlink_out_of_the_root(tmp_path):
    root, outside = tmp_path / "home", tmp_path / "elsewhere"
    root.mkdir()
    outside.mkdir()
    (root / "link").symlink_to(outside)
    with pytest.raises(UnsafePathError, match="outside"):
        confined(root, "link", "file.parquet")
    assert confined(root, "models", "AAL", "1") == root / "models" / "AAL" / "1"


def test_allowed_roots_default_and_override(tmp_path, monkeypatch):
    monkeypatch.delenv("CLOSECAST_ALLOWED_ROOTS", raising=False)
    monkeypatch.delenv("CLOSECAST_HOME", raising=False)
    roots = allowed_roots([tmp_path / "declared"])
    assert within(SAMPLE, roots) and within(tmp_path / "declared" / "lake", roots)
    assert not within(tmp_path / "other", roots) and not within(Path("/etc/passwd"), roots)
    monkeypatch.setenv("CLOSECAST_ALLOWED_ROOTS", os.pathsep.join([str(tmp_path / "a"), "/srv"]))
    assert allowed_roots([tmp_path / "declared"]) == [tmp_path / "a", Path("/srv")]


def test_markdown_escapes_untrusted_text():
    assert escape("x | <img src=x onerror=alert(1)> [a](b)") == (
        "x \\| &lt;img src=x onerror=alert\\(1\\)&gt; \\[a\\]\\(b\\)")
    block = code_block("name```\n<script>alert(1)</script>")
    fence = block.splitlines()[0]
    assert fence == "````" and block.endswith("\n````")


def test_report_html_escapes_data_derived_strings(tmp_path):
    metrics = Metrics(rmse=1.0, naive_rmse=1.0, mae=1.0, naive_mae=1.0, mape=1.0,
                      naive_mape=1.0, rmse_vs_naive=1.0, directional_accuracy=0.5,
                      n_train=10, n_test=5, test_start="2016-01-04", test_end="2016-01-08")
    manifest = Manifest(symbol="X", as_of="<b>2016</b>", features={}, split={}, model={},
                        data_fingerprint="<script>alert(1)</script>", flow_run_id="x")
    markdown = render_markdown("<script>alert(1)</script>", "1", metrics,
                               "not promoted: <img src=x onerror=alert(1)>", manifest)
    page = render_html(markdown.replace("![", "[no image]("), tmp_path)
    assert "<script>" not in page and "<img src=x" not in page and "<b>2016" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


# --- through the CLI: nothing appears outside a temp home -------------------------------------

HEADER = "date,symbol,open,close,low,high,volume\n"
AAL = [line + "\n" for line in SAMPLE.read_text().splitlines()[1:] if ",AAL," in line][:300]
TINY = ("features: {window: 5}\nmodel: {units: [4], epochs: 1, batch_size: 256, patience: 1}\n"
        "backtest: {folds: 0}\n")


def _hostile_file(path: Path, marker: str) -> list[str]:
    """AAL's real rows plus rows whose symbols would escape the home if used as paths."""
    symbols = ["A\x00B", f"../../{marker}", f"/tmp/{marker}", f"{marker}/x", "Z" * 300,
               "\u0410AL", f"..\\{marker}"]
    rows = [f"{AAL[i].split(',')[0]},{s},4.8,4.7,4.6,4.9,100\n"
            for s in symbols for i in range(3)]
    path.write_text(HEADER + "".join(AAL) + "".join(rows))
    return symbols


def _outside(tmp_path: Path, home: Path) -> dict:
    """Every file under tmp_path but outside the home (plus the would-be absolute targets)."""
    return {k: v for k, v in tree_state(tmp_path).items()
            if not (tmp_path / k).is_relative_to(home)}


@pytest.fixture
def marker() -> str:
    name = f"cc-escape-{uuid.uuid4().hex[:8]}"
    yield name
    for leftover in (Path("/tmp") / name, Path("/TMP") / name.upper()):
        assert not leftover.exists(), f"{leftover} was written outside the home"


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_harness")
def test_hostile_symbols_in_a_file_fail_validation_and_write_nothing(tmp_path, marker, capsys):
    home = tmp_path / "home"
    bad = tmp_path / "prices.csv"
    _hostile_file(bad, marker)
    before = _outside(tmp_path, home)
    code = main(["run", "--input", str(bad), "--home", str(home), "--epochs", "1"])
    err = capsys.readouterr().err
    assert code == 1, err
    assert "prices.csv" in err and "rule 'valid symbol" in err and marker.upper() in err
    assert "21 row(s)" in err and "A\\x00B" in err and "\x00" not in err  # escaped, never raw
    assert _outside(tmp_path, home) == before
    assert not (home / "lake" / "prices").exists() and not (home / "models").exists()


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_harness")
def test_hostile_symbols_are_quarantined_under_drop(tmp_path, marker, capsys):
    home = tmp_path / "home"
    bad, config = tmp_path / "prices.csv", tmp_path / "tiny.yaml"
    symbols = _hostile_file(bad, marker)
    config.write_text(TINY)
    before = _outside(tmp_path, home)
    code = main(["run", "--input", str(bad), "--config", str(config), "--home", str(home),
                 "--on-invalid", "drop"])
    assert code == 0, capsys.readouterr().err
    quarantined = pd.read_parquet(home / "validation" / "quarantine" / "prices.csv.parquet")
    assert len(quarantined) == 3 * len(symbols)
    assert quarantined["rules"].str.contains("valid symbol").all()
    assert sorted(p.name for p in (home / "lake" / "prices").iterdir()) == ["symbol=AAL"]
    assert sorted(p.name for p in (home / "models").iterdir()) == ["AAL"]
    assert _outside(tmp_path, home) == before


@pytest.mark.parametrize("argv", [
    ["run", "--symbols", "AAL,../../x"],
    ["run", "--symbols", "/tmp/x"],
    ["predict", "--symbol", "../../x"],
    ["predict", "--symbol", "A\x00B"],
    ["models", "show", "../x"],
    ["models", "promote", "/tmp/x", "1"],
    ["models", "list", "\u0410AL"],
])
def test_hostile_symbol_flags_exit_1_before_touching_anything(argv, tmp_path, capsys):
    home = tmp_path / "home"
    code = main([*argv, "--home", str(home)])
    err = capsys.readouterr().err
    assert code == 1 and "error:" in err and "valid symbol" in err, err
    assert "Traceback" not in err
    assert tree_state(tmp_path) == {}


@pytest.mark.parametrize("name", ["my prices.csv", "\u0410APL.csv", ".hidden.csv", "A$B.csv"])
def test_yahoo_symbol_from_a_file_name_must_be_a_ticker(tmp_path, name, capsys):
    yahoo = tmp_path / name
    yahoo.write_text("Date,Open,High,Low,Close,Adj Close,Volume\n"
                     "2016-01-04,1,1,1,1,1,100\n")
    code = main(["validate", "--input", str(yahoo), "--home", str(tmp_path / "home")])
    err = capsys.readouterr().err
    assert code == 1 and "valid symbol" in err and "--symbols" in err, err


def test_reports_rendered_in_many_threads_at_once_all_render(tmp_path):
    """mdurl fills its encode table lazily and registers it before it is full; register threads
    rendering their first reports together raised IndexError. Rendering is serialised: twelve
    threads, each starting from an empty table, all give the same page."""
    import sys
    import threading

    import mdurl._encode

    from tasks.reporting.report import render_html

    text = ("# Report\n\n[link](https://example.org/a b?c=d&e=%zz)\n\n"
            "| a | b |\n|---|---|\n| 1 | 2 |\n")
    pages, errors = [], []

    def render() -> None:
        try:
            pages.append(render_html(text, tmp_path))
        except Exception as error:  # noqa: BLE001 - collected, asserted below
            errors.append(error)

    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads every few bytecodes: the race shows at once
    try:
        for _ in range(5):
            mdurl._encode.encode_cache.clear()
            threads = [threading.Thread(target=render) for _ in range(12)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
    finally:
        sys.setswitchinterval(switch)
    assert errors == [] and len(pages) == 60 and len(set(pages)) == 1
