"""Expected failures through the real `closecast` process: exit 1, one ERROR line, a closing
`closecast <command>: error: <file>: ...` line, and no Python traceback anywhere."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from tests.conftest import ROOT, closecast
from tests.test_bad_input import CASES

pytestmark = [pytest.mark.slow]


def assert_one_clean_error(code: int, output: str, command: str, where: str) -> None:
    assert code == 1, output
    assert "Traceback" not in output, output
    errors = [line for line in output.splitlines() if re.search(r"\| ERROR +\|", line)]
    assert len(errors) == 1, output
    closing = [line for line in output.splitlines()
               if line.startswith(f"closecast {command}: error: ")]
    assert len(closing) == 1 and closing[0].startswith(
        f"closecast {command}: error: {where}: "), output


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_through_the_cli_has_no_traceback(case, cli_env, tmp_path):
    content, rule, _ = CASES[case]
    bad = tmp_path / "bad-prices.csv"
    if content is not None:
        bad.write_bytes(content if isinstance(content, bytes) else content.encode())
    code, output = closecast(cli_env, "run", "--input", str(bad), "--home",
                             str(tmp_path / "home"), "--epochs", "1")
    assert_one_clean_error(code, output, "run", str(bad))
    assert rule in output


def test_no_champion_and_debug_brings_the_traceback_back(cli_env, tmp_path):
    home = tmp_path / "empty"
    code, output = closecast(cli_env, "predict", "--symbol", "ZZZ", "--home", str(home))
    assert_one_clean_error(code, output, "predict", str(home / "models" / "ZZZ"))
    assert "ZZZ has no champion" in output
    code, output = closecast(cli_env, "--debug", "predict", "--symbol", "ZZZ",
                             "--home", str(home))
    assert code == 1 and "Traceback" in output and "RegistryError" in output, output


def test_by_hand_with_a_temporary_server_is_as_clean(tmp_path):
    """As a user runs it by hand: no Prefect API, nothing set in the environment, so the command
    starts Prefect's temporary server on a new database (whose telemetry heartbeat logged
    "database is locked" tracebacks until the CLI switched it off)."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PREFECT_API_URL", "PREFECT_SERVER_ANALYTICS_ENABLED")}
    env |= {"PYTHONPATH": str(ROOT), "PREFECT_HOME": str(tmp_path / "prefect")}
    home = tmp_path / "empty"
    code, output = closecast(env, "predict", "--symbol", "ZZZ", "--home", str(home))
    assert "Starting temporary server" in output, output
    assert_one_clean_error(code, output, "predict", str(home / "models" / "ZZZ"))


def test_bad_config_is_a_clean_error(cli_env, tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text("model: {units: [4], epochs: zero}\n")
    code, output = closecast(cli_env, "run", "--config", str(config), "--home",
                             str(tmp_path / "home"))
    assert_one_clean_error(code, output, "run", str(config))
    assert "model.epochs" in output


# The real CLI in a child whose Yahoo downloader always fails as a network fault would.
SOURCE_DOWN = """
import sys
import tasks.data.sources as sources
def down(**kwargs):
    raise ConnectionError("connection reset by peer")
sources.DOWNLOADER = down
from flows.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_a_source_that_stays_down(cli_env, tmp_path):
    script = tmp_path / "source_down.py"
    script.write_text(SOURCE_DOWN)
    done = subprocess.run([sys.executable, str(script), "run", "--format", "yahoo", "--symbols",
                           "MSFT", "--start", "2020-01-02", "--home", str(tmp_path / "home")],
                          cwd=ROOT, env=cli_env, capture_output=True, text=True, timeout=600)
    output = done.stdout + done.stderr
    assert "Retry 2/2" in output, output  # an I/O fault is retried
    assert_one_clean_error(done.returncode, output, "run", "yahoo:MSFT")
    assert "connection reset by peer" in output
