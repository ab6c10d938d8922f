"""The CLI's own surface: --version, `models list` status and reasons, --json, a quiet log."""

from __future__ import annotations

import json
import re
import shutil
from importlib.metadata import version

import pytest

from flows.cli import main
from tests.conftest import ROOT, SAMPLE, closecast, tree_state


def test_version(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"closecast {version('closecast')}"


def test_console_options_before_or_after_the_command():
    from flows.cli import build_parser

    parser = build_parser()
    assert parser.parse_args(["--debug", "models", "list"]).debug is True
    assert parser.parse_args(["models", "list", "--verbose"]).verbose is True
    args = parser.parse_args(["models", "list"])
    assert (args.debug, args.verbose) == (False, False)


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_harness")
def test_models_list_says_champion_not_promoted_why_or_damaged(tmp_path, capsys):
    from flows.training import train_flow
    from tasks.core.config import RunConfig
    from tasks.core.training_config import FeatureConfig, ModelConfig

    home = tmp_path / "home"
    train_flow(RunConfig(home=home, input=SAMPLE, symbols=("AAL",),
                         features=FeatureConfig(window=5),
                         model=ModelConfig(units=(4,), epochs=1, batch_size=256, patience=1)))
    models = home / "models" / "AAL"
    decision = json.loads((models / "1" / "promotion.json").read_text())
    assert set(decision) == {"promoted", "reason"} and decision["reason"]
    # v2: promoted by hand; v3: an older version without promotion.json; v4: damaged.
    for n in (2, 3, 4):
        shutil.copytree(models / "1", models / str(n))
    (models / "3" / "promotion.json").unlink()
    (models / "4" / "model.keras").write_bytes(b"PK\x03\x04 truncated")
    (models / "champion.json").unlink(missing_ok=True)
    assert main(["models", "promote", "AAL", "2", "--home", str(home)]) == 0
    capsys.readouterr()

    assert main(["models", "list", "--home", str(home)]) == 0
    lines = capsys.readouterr().out.splitlines()[1:]
    rows = [line for line in lines if line.startswith("AAL")]
    status = {int(line.split()[1]): line.split("  ")[-1].strip() for line in rows}
    # each readable version is followed by who made its forecast (the damaged one too: its
    # metrics.json is intact)
    forecasts = [line.strip() for line in lines if not line.startswith("AAL")]
    assert len(forecasts) == 4 and len(set(forecasts)) == 1, lines
    assert re.match(r"point = (naive|lstm) \(x\d\.\d{3}\); range: (lstm|garch|ewma|constant), "
                    r"CRPS x\d\.\d{3} vs constant, x\d\.\d{3} vs GARCH-t; 80% held \d+% of test "
                    r"days$", forecasts[0]), forecasts[0]
    assert status[2] == "champion"
    assert status[4].startswith("DAMAGED (model.keras")
    if decision["promoted"]:
        assert status[1] == status[3] == "superseded: was champion; now version 2"
    else:
        reason = decision["reason"].removeprefix("not promoted:").strip()
        assert status[1].startswith("not promoted: ") and reason[:30] in status[1]
        assert status[3] == status[1]  # read back from report.md

    assert main(["models", "list", "--home", str(home), "--json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert [r["version"] for r in records] == [1, 2, 3, 4]
    assert {r["forecast"] for r in records} == {forecasts[0]}
    assert records[0]["source"] in {"lstm", "garch", "ewma", "constant"}
    assert [r["status"] for r in records][1:] == ["champion", records[0]["status"], "damaged"]
    assert records[0]["reason"] == decision["reason"]
    assert main(["models", "show", "AAL", "1", "--home", str(home), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["status"] == records[0]["status"] and shown["metrics"]["rmse"] > 0
    assert main(["models", "promote", "AAL", "1", "--home", str(home), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["champion"] == 1
    assert main(["models", "show", "AAL", "--home", str(home), "--json"]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and json.loads(out)["version"] == 1  # the champion, one line


@pytest.mark.slow
def test_run_log_is_short_without_epochs_unless_verbose(tmp_path, cli_env):
    """One screen by default: per-symbol lines and the summary; epochs only at --verbose."""
    tiny = {"features": {"window": 5}, "backtest": {"folds": 2, "epochs": 1},
            "model": {"units": [4], "epochs": 3, "batch_size": 64, "patience": 3}}
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(tiny))
    home = str(tmp_path / "home")
    code, log = closecast(cli_env, "run", "--home", home, "--config", str(config))
    assert code == 0, log
    assert "epoch 1/3" not in log and not re.search(r"Task run .*Finished in state Completed", log)
    for noise in ("retracing", "absl", "oneDNN", "Traceback"):
        assert noise not in log, log
    assert "AAL v1" in log and "ZION v1" in log and "report:" in log
    assert len(log.splitlines()) <= 40, log
    tiny.update(backtest={"folds": 0}, model={**tiny["model"], "seed": 7})  # train again
    config.write_text(json.dumps(tiny))
    code, log = closecast(cli_env, "run", "--home", home, "--config", str(config), "--verbose",
                          "--symbols", "AAL")
    assert code == 0 and "AAL epoch 1/3" in log, log


def _commands():
    from flows.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")  # argparse's sub-commands
    return parser, sub.choices


def test_every_option_of_every_command_has_help_and_each_command_ends_with_examples():
    parser, commands = _commands()
    assert set(commands) == {"run", "validate", "backfill", "serve", "predict", "monitor",
                             "models", "gc", "report", "status"}
    for name, command in [("closecast", parser), *commands.items()]:
        undocumented = [a.option_strings or [a.dest] for a in command._actions
                        if a.dest != "command" and not a.help]
        assert undocumented == [], f"{name}: options without help: {undocumented}"
        text = command.format_help().rstrip()
        examples = text[text.rindex("examples:"):].splitlines()[1:]
        assert 1 <= len([e for e in examples if e.startswith("  closecast")]) <= 2, name
        assert command.format_help().rstrip().splitlines()[-1].strip().startswith(
            "closecast"), name


def test_every_example_parses():
    parser, commands = _commands()
    for name, command in commands.items():
        text = command.format_help()
        for line in text[text.rindex("examples:"):].splitlines()[1:]:
            argv = line.split()[1:]
            assert parser.parse_args(argv).command == name, line


def test_predict_output_format_with_format_as_its_alias(capsys):
    parser, commands = _commands()
    for flag in ("--output-format", "--format"):
        args = parser.parse_args(["predict", "--symbol", "AAL", flag, "parquet"])
        assert args.output_format == "parquet"
    assert parser.parse_args(["predict", "--symbol", "AAL"]).output_format == "csv"
    text = " ".join(commands["predict"].format_help().split())
    assert "--output-format {csv,parquet}, --format {csv,parquet}" in text
    assert "--format is an older alias" in text


def test_models_list_json_is_json_even_with_no_models(tmp_path, capsys):
    assert main(["models", "list", "--home", str(tmp_path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []
    assert main(["models", "list", "--home", str(tmp_path)]) == 0
    assert capsys.readouterr().out.startswith("no models under ")


EXIT_CHILD = """
import atexit, logging, sys
from pathlib import Path
import flows.cli

def main():  # stands in for the real main(): what it leaves for the process's end
    atexit.register(lambda: Path(sys.argv[1]).write_text("exit handler ran"))
    logging.getLogger("closecast").warning("logged at the end")
    print("printed, unflushed", end="")
    if sys.argv[2] == "raise":
        raise RuntimeError("a bug")
    return int(sys.argv[2])

flows.cli.main = main
flows.cli.run()
"""


@pytest.mark.parametrize(("outcome", "code"), [("0", 0), ("3", 3), ("raise", 1)])
def test_the_process_ends_after_its_exit_handlers_with_the_status_of_main(tmp_path, outcome,
                                                                         code):
    """``run()`` (the console script) skips only the interpreter's teardown: every exit handler
    runs, stdout and the log are flushed, main()'s status is the exit status; an error that
    escapes main() exits the normal way, traceback included."""
    import os
    import subprocess
    import sys

    marker = tmp_path / "marker"
    done = subprocess.run([sys.executable, "-c", EXIT_CHILD, str(marker), outcome], cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == code
    assert done.stdout == "printed, unflushed"
    assert "logged at the end" in done.stderr
    assert marker.read_text() == "exit handler ran"
    assert ("RuntimeError: a bug" in done.stderr) == (outcome == "raise")


@pytest.mark.slow
@pytest.mark.parametrize("command", [["run", "--input", str(SAMPLE)], ["predict", "--symbol",
                                                                         "AAL"]])
def test_a_stopped_prefect_server_is_one_clear_error_and_nothing_is_written(tmp_path, command):
    """PREFECT_API_URL naming a server that is not running (a reboot after `make run`): exit 1,
    one line naming the URL and how to start a server, no traceback, nothing written."""
    import os

    from tests.prefect_server import free_port

    url = f"http://127.0.0.1:{free_port()}/api"
    home = tmp_path / "home"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PREFECT_API_URL": url}
    code, output = closecast(env, *command, "--home", str(home))
    assert code == 1
    assert f"closecast {command[0]}: error: {url} (PREFECT_API_URL): the Prefect API does not " \
           "answer" in output
    assert "prefect server start --background" in output
    assert "Traceback" not in output
    assert tree_state(home) == {}
