"""Every class of bad input, through the real CLI and flow: exit 1, a clear message, and the
lake and models of a home that already holds a trained version left exactly as they were."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from flows.cli import main
from flows.training import train_flow
from tests.conftest import SAMPLE, tree_state

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]

HEADER = "date,symbol,open,close,low,high,volume\n"
# AAL's real rows from the embedded sample: enough history for the default window.
AAL = [line + "\n" for line in SAMPLE.read_text().splitlines()[1:] if ",AAL," in line][:300]


def _with(row: int, line: str) -> str:
    """The AAL rows with one line replaced."""
    rows = list(AAL)
    rows[row] = line
    return HEADER + "".join(rows)


DATE = AAL[100].split(",")[0]
CASES = {
    # name: (file content or None for a missing file, rule named in the error, text shown)
    "missing file": (None, "no such file", None),
    "empty file": ("", "not empty", None),
    "header only": (HEADER, "has rows", None),
    "binary garbage": (b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe\x00binary", "UTF-8 text", None),
    "missing column": (HEADER.replace(",close", "") + "2016-01-04,AAL,1,1,1,1\n",
                       "required columns", "close"),
    "renamed column": (HEADER.replace("close", "Close_Price") + "".join(AAL),
                       "required columns", "close"),
    "text in a number": (_with(100, f"{DATE},AAL,4.8,abc,4.6,4.9,100\n"), "numeric columns",
                         "abc"),
    "NaN price": (_with(100, f"{DATE},AAL,4.8,NaN,4.6,4.9,100\n"), "not null: close", DATE),
    "inf price": (_with(100, f"{DATE},AAL,4.8,inf,4.6,4.9,100\n"),
                  "close is a finite price > 0", DATE),
    "zero price": (_with(100, f"{DATE},AAL,0,4.7,4.6,4.9,100\n"),
                   "open is a finite price > 0", DATE),
    "negative price": (_with(100, f"{DATE},AAL,4.8,-4.7,-4.9,4.9,100\n"),
                       "close is a finite price > 0", DATE),
    "high below low": (_with(100, f"{DATE},AAL,4.8,4.7,4.9,4.6,100\n"), "low <= high", DATE),
    "negative volume": (_with(100, f"{DATE},AAL,4.8,4.7,4.6,4.9,-100\n"),
                        "volume is finite and >= 0", DATE),
    "duplicate rows": (HEADER + "".join(AAL) + AAL[100], "unique (symbol, date)", DATE),
    "unparseable date": (_with(100, "13/45/2012,AAL,4.8,4.7,4.6,4.9,100\n"), "dates parse",
                         "13/45/2012"),
    "junk at the end": (HEADER + "".join(AAL) + "\n-- exported by SomeTool v2 --\n",
                        "dates parse", "exported"),
}


@pytest.fixture(scope="module")
def trained_home(tmp_path_factory, request) -> Path:
    """A home holding one trained, registered AAL version (trained once for the module)."""
    from tasks.core.config import RunConfig
    from tasks.core.training_config import FeatureConfig, ModelConfig

    home = tmp_path_factory.mktemp("trained") / "home"
    config = RunConfig(home=home, input=SAMPLE, symbols=("AAL",),
                       features=FeatureConfig(window=5),
                       model=ModelConfig(units=(4,), epochs=1, batch_size=256, patience=1))
    train_flow(config)
    assert (home / "models" / "AAL" / "1" / "model.keras").exists()
    return home


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_exits_1_names_the_rule_and_changes_nothing(case, trained_home, tmp_path,
                                                              capsys):
    content, rule, shown = CASES[case]
    home = tmp_path / "home"
    shutil.copytree(trained_home, home)
    before = tree_state(home / "lake") | tree_state(home / "models")
    bad = tmp_path / "bad-prices.csv"
    if content is not None:
        bad.write_bytes(content if isinstance(content, bytes) else content.encode())
    code = main(["run", "--input", str(bad), "--home", str(home), "--epochs", "1"])
    err = capsys.readouterr().err
    assert code == 1, err
    assert "bad-prices.csv" in err and rule in err, err
    if shown:
        assert shown in err, err
    assert tree_state(home / "lake") | tree_state(home / "models") == before


def test_too_little_history_is_not_bad_input_it_is_stored_and_left_out(trained_home, tmp_path,
                                                                      caplog):
    """A young listing's rows are valid: stored, left out of training with one line, exit 0."""
    import pandas as pd

    home = tmp_path / "home"
    shutil.copytree(trained_home, home)
    models = tree_state(home / "models")
    young = tmp_path / "young.csv"
    young.write_text(HEADER + "".join(r.replace(",AAL,", ",NEWCO,") for r in AAL[:40]))
    assert main(["run", "--input", str(young), "--home", str(home), "--epochs", "1"]) == 0
    assert len(pd.read_parquet(home / "lake" / "prices" / "symbol=NEWCO")) == 40
    assert "1 symbol(s) left out of training, too little history (their prices are in the " \
           "lake): NEWCO: 40 days give 13 training windows of 20 lags; need at least 40" \
           in caplog.text
    assert tree_state(home / "models") == models


def test_drop_quarantines_bad_rows_and_stores_the_rest(trained_home, tmp_path, capsys):
    import pandas as pd

    home = tmp_path / "home"
    shutil.copytree(trained_home, home)
    content = HEADER + "".join(r.replace(",AAL,", ",NEWCO,") for r in AAL)
    bad_line = AAL[100].replace(",AAL,", ",NEWCO,").split(",")
    bad_line[4], bad_line[5] = "9.9", "1.0"  # low above high
    content = content.replace(AAL[100].replace(",AAL,", ",NEWCO,"), ",".join(bad_line))
    bad = tmp_path / "bad-prices.csv"
    bad.write_text(content)
    code = main(["run", "--input", str(bad), "--home", str(home), "--epochs", "1",
                 "--on-invalid", "drop", "--json"])
    assert code == 0, capsys.readouterr().err
    quarantined = pd.read_parquet(home / "validation" / "quarantine" / "bad-prices.csv.parquet")
    assert len(quarantined) == 1 and quarantined["date"].iloc[0] == pd.Timestamp(DATE)
    assert "low <= high" in quarantined["rules"].iloc[0]
    stored = pd.read_parquet(home / "lake" / "prices" / "symbol=NEWCO" / "part.parquet")
    assert len(stored) == len(AAL) - 1 and pd.Timestamp(DATE) not in set(stored["date"])
    assert (home / "models" / "NEWCO" / "1" / "model.keras").exists()
    docs = home / "validation" / "gx" / "uncommitted" / "data_docs" / "local_site" / "index.html"
    assert docs.exists()
    links = _artifacts("validation-data-docs")
    assert links and docs.resolve().as_uri() in links[0].data
    (summary,) = _artifacts("validation-summary")[:1]
    assert "low <= high" in summary.data and "quarantined 1 row(s)" in summary.data


def _artifacts(key: str) -> list:
    """The latest artifacts with a key, newest first, read from the Prefect API."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.client.schemas.sorting import ArtifactSort

    with get_client(sync_client=True) as client:
        return client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(
            any_=[key])), sort=ArtifactSort.CREATED_DESC)
