"""Golden files: what users see, recorded at bb25fab (before issue 28's refactor), compared now.

- ``sample_run/``: ``closecast run --json`` on the embedded sample (what `make run` runs) into a
  fresh home: the run's stdout, its --json summary, and for each registered version metrics,
  distribution, promotion, config, scaler, history, manifest, report.md, report.html (each
  embedded PNG as its sha256), the plots' and predictions.parquet's content hashes, the
  version's file list; and each symbol's champion.json.
- ``cli_json/``: on that same home, each command that prints --json without training (models
  list/show/promote, report, status, monitor, predict, gc): the keys and shape of its JSON
  (``*.shape.json``), and where the values are reproducible its whole stdout (``*.txt``).
- ``cli_help/``: ``closecast --help`` and every command's --help, at COLUMNS=100.
- ``version_v1/``: a version directory as bb25fab wrote it (ZION, plots left to be drawn on
  request) with its lake rows; ``predict``, ``models`` and ``report`` must still read it and
  give what bb25fab gave (``version_v1/expected/``).

Everything goes through the ``closecast`` command line (child processes, ``python -m
flows.cli``) and plain file reading, never through internal helpers.

Not compared (replaced by ``<placeholders>`` before comparing): flow run ids, times
(manifest ``created_at``, champion ``promoted_at``), the git commit, the network's hashes
(``model_sha256``, ``candidate_key``: Keras stamps the save time into model.keras), library
versions, the temporary home's path; ``status`` and ``gc`` only by shape (disk sizes).

Floats are compared to a relative 1e-4 (or one unit of their last printed digit), not as
text: on one machine the sample run is reproducible bit for bit (fixed seeds, TF op
determinism; three runs in fresh homes, one with TF's thread pools at 2 threads, wrote identical
files), but another CPU sums in another order: CI's machine wrote the same run with the
network's widths 1e-7 and arch's GARCH fits ~1e-5 apart (see tests/test_runners.py). Integers,
words and every other character are compared exactly. Float arrays (predictions.parquet) are
summarised by first, last, mean, min and max rather than hashed, and each plot (a PNG file, or
one embedded in report.html) by its size in pixels and an 8x8 grey thumbnail to 0.01, so a
changed picture fails and a line drawn a sub-pixel apart does not.

Regenerate (only for a deliberate change of what users see, never to make a refactor pass):

    CLOSECAST_GOLDEN_UPDATE=1 python -m pytest tests/test_golden.py

or ``python tests/test_golden.py``, which does the same. That rewrites sample_run/, cli_json/,
cli_help/ and version_v1/expected/. The version_v1 directory itself is the old format, kept
as it was written; ``python tests/test_golden.py version-v1`` would write it again from the
checkout's code (tests/data/golden/README.md).
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "tests" / "data" / "golden"
UPDATE = os.environ.get("CLOSECAST_GOLDEN_UPDATE") == "1"
V1 = GOLDEN / "version_v1"
V1_SYMBOL = "ZION"  # its range comes from the network (source lstm): predict runs the LSTM

# version files compared as text (JSON as written, byte for byte but the volatile values)
TEXT_FILES = ("metrics.json", "distribution.json", "promotion.json", "config.json",
              "scaler.json", "history.json", "manifest.json", "report.md")
VOLATILE_KEYS = {"flow_run_id": "<flow-run-id>", "created_at": "<time>",
                 "promoted_at": "<time>", "git_commit": "<git-commit>",
                 "model_sha256": "<network-sha256>", "candidate_key": "<candidate-key>"}
PNG_URI = re.compile(r"data:image/png;base64,([A-Za-z0-9+/=]+)")


# --- running the command line ----------------------------------------------------------------

def closecast_out(env: dict[str, str], *args: str) -> str:
    """``python -m flows.cli ARGS`` as a child process (as tests.conftest.closecast, with stdout
    apart from the log on stderr); its stdout, after asserting exit status 0."""
    done = subprocess.run([sys.executable, "-m", "flows.cli", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"closecast {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def last_json(stdout: str):
    """The --json line: the last line of stdout."""
    return json.loads(stdout.rstrip("\n").splitlines()[-1])


# --- normalising -------------------------------------------------------------------------------

def volatile_values(home: Path, flow_run_id: str | None = None) -> dict[str, str]:
    """Every volatile string this home's versions hold (ids, times, hashes, the home's path),
    with its placeholder; read from the manifests and champion.json files."""
    values: dict[str, str] = {}
    for record in [*home.glob("models/*/*/manifest.json"), *home.glob("models/*/champion.json")]:
        data = json.loads(record.read_text())
        for key, placeholder in VOLATILE_KEYS.items():
            if isinstance(data.get(key), str):
                values[data[key]] = placeholder
    if flow_run_id:
        values[flow_run_id] = "<flow-run-id>"
    values[str(home.resolve())] = values[str(home)] = "<home>"
    return values


def normalise(text: str, values: dict[str, str]) -> str:
    """``text`` with each volatile value replaced by its placeholder (longest first), volatile
    JSON keys' values replaced whatever they are (null included), and library versions."""
    for value in sorted(values, key=len, reverse=True):
        text = text.replace(value, values[value])
    for key, placeholder in VOLATILE_KEYS.items():
        text = re.sub(rf'("{key}": )(null|"[^"]*")', rf'\1"{placeholder}"', text)
    return re.sub(r'"libraries": \{[^}]*\}', lambda m: re.sub(r'(": )"[^"]*"', r'\1"<version>"',
                                                               m.group(0)), text)


def png_summary(data: bytes) -> str:
    """A PNG as its size in pixels and an 8x8 thumbnail of its grey levels (0..1, 2 decimals):
    compared to one unit of the last digit, a redrawn picture matches and a changed one does
    not, which a hash of the bytes could not tell apart across machines."""
    import io

    import matplotlib.image
    import numpy as np

    image = matplotlib.image.imread(io.BytesIO(data), format="png")
    grey = image[..., :3].mean(axis=2) if image.ndim == 3 else image
    rows = np.array_split(np.arange(grey.shape[0]), 8)
    columns = np.array_split(np.arange(grey.shape[1]), 8)
    thumb = [grey[np.ix_(r, c)].mean() for r in rows for c in columns]
    return f"png {grey.shape[1]}x{grey.shape[0]} grey " + " ".join(f"{v:.2f}" for v in thumb)


def html_text(html: str, values: dict[str, str]) -> str:
    """report.html with each embedded PNG replaced by its ``png_summary``."""
    import base64

    html = PNG_URI.sub(lambda m: png_summary(base64.b64decode(m.group(1))), html)
    return normalise(html, values)


def frame_summary(path: Path) -> str:
    """A Parquet table as JSON: rows, columns with dtype, first/last, and a float column's mean,
    min and max (compared to a tolerance) or another column's hash of its values."""
    import numpy as np
    import pandas as pd

    frame = pd.read_parquet(path)
    columns = {}
    for name in frame.columns:
        values = frame[name].to_numpy()
        column = {"dtype": str(values.dtype)}
        if values.dtype.kind == "f" and len(values):
            column |= {stat: repr(float(getattr(np, stat)(values)))
                       for stat in ("nanmean", "nanmin", "nanmax")}
        else:
            column["sha256"] = hashlib.sha256(np.ascontiguousarray(values).tobytes()).hexdigest()
        columns[str(name)] = column | {"first": str(values[0]) if len(values) else None,
                                       "last": str(values[-1]) if len(values) else None}
    return json.dumps({"rows": len(frame), "columns": columns}, indent=2) + "\n"


def version_texts(version: Path, values: dict[str, str]) -> dict[str, str]:
    """The golden texts of one version directory, by file name."""
    texts = {name: normalise((version / name).read_text(), values)
             for name in TEXT_FILES if (version / name).is_file()}
    texts["report.html"] = html_text((version / "report.html").read_text(), values)
    texts["predictions.json"] = frame_summary(version / "predictions.parquet")
    plots = {p.name: png_summary(p.read_bytes()) for p in sorted((version / "plots").glob("*"))}
    texts["plots.json"] = json.dumps(plots, indent=2) + "\n"
    files = sorted(p.relative_to(version).as_posix() for p in version.rglob("*") if p.is_file())
    texts["files.json"] = json.dumps(files, indent=2) + "\n"
    return texts


def shape(value):
    """The keys and types of a JSON value: a list's shape is its items' distinct shapes."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list):
        shapes: list = []
        for item in value:
            if shape(item) not in shapes:
                shapes.append(shape(item))
        return shapes
    return {type(None): "null", bool: "bool", int: "int", float: "float",
            str: "str"}[type(value)]


def dumped(value) -> str:
    return json.dumps(value, indent=2) + "\n"


# --- comparing ---------------------------------------------------------------------------------

FLOAT = re.compile(r"-?\d+\.\d+(?:[eE][-+]?\d+)?")
RELATIVE = 1e-4


def last_digit(number: str) -> float:
    """The value of one unit in ``number``'s last printed digit ("43.02" -> 0.01)."""
    mantissa, _, exponent = number.lower().partition("e")
    return 10.0 ** (int(exponent or 0) - len(mantissa.partition(".")[2]))


def same(golden: str, now: str) -> bool:
    """Whether two texts are the same but for floats within ``RELATIVE`` (or one unit of the
    last printed digit) of each other; everything else, integers included, exactly."""
    if FLOAT.split(golden) != FLOAT.split(now):
        return False
    for a, b in zip(FLOAT.findall(golden), FLOAT.findall(now), strict=True):
        x, y = float(a), float(b)
        allowed = max(RELATIVE * max(abs(x), abs(y)), last_digit(a), last_digit(b))
        if abs(x - y) > allowed * 1.000001:  # a hair over: "0.96" - "0.95" is not 0.01 in binary
            return False
    return True


def differences(relative: str, golden: str, now: str) -> str:
    """The lines of two texts that are not ``same``, as a unified diff (at most 40 lines)."""
    old, new = golden.splitlines(), now.splitlines()
    if len(old) == len(new):  # show only the lines beyond the tolerance
        pairs = [(a, b) for a, b in zip(old, new, strict=True) if not same(a, b)]
        old, new = [a for a, _ in pairs], [b for _, b in pairs]
    diff = list(difflib.unified_diff(old, new, f"golden/{relative}", f"now/{relative}",
                                     lineterm="", n=0 if len(old) != len(golden.splitlines())
                                     else 1))
    return "\n".join(diff[:40] + (["..."] if len(diff) > 40 else []))


def compare(root: Path, produced: dict[str, str]) -> None:
    """Assert that ``produced`` (relative path -> text) is the golden files under ``root``:
    same files, ``same`` texts; every difference is listed. With CLOSECAST_GOLDEN_UPDATE=1,
    write them instead."""
    if UPDATE:
        shutil.rmtree(root, ignore_errors=True)
        for relative, text in produced.items():
            (root / relative).parent.mkdir(parents=True, exist_ok=True)
            (root / relative).write_text(text)
        return
    assert root.is_dir(), f"{root}: no golden files (see this module's docstring)"
    golden = {p.relative_to(root).as_posix(): p.read_text()
              for p in sorted(root.rglob("*")) if p.is_file()}
    problems = []
    for relative in sorted(golden.keys() | produced.keys()):
        if relative not in produced:
            problems.append(f"{relative}: a golden file, not produced now")
        elif relative not in golden:
            problems.append(f"{relative}: produced now, no golden file")
        elif not same(golden[relative], produced[relative]):
            problems.append(differences(relative, golden[relative], produced[relative]))
    assert not problems, f"{len(problems)} difference(s) from {root}:\n" + "\n".join(problems)


def test_the_comparison_tolerates_rounding_and_nothing_else():
    """Another CPU's last digits pass; a changed word, integer, decision or picture does not."""
    assert same('"crps": 0.45952026489353515, DM -1.38', '"crps": 0.4595202651, DM -1.39')
    assert same('{"close": 43.020757}', '{"close": 43.020756}')
    assert same("png 800x400 grey 0.95 0.12", "png 800x400 grey 0.96 0.12")
    assert not same('"crps": 0.4595', '"crps": 0.4601')
    assert not same('"hits": 16', '"hits": 17')
    assert not same('"source": "garch"', '"source": "lstm"')
    assert not same("png 800x400 grey 0.95 0.12", "png 800x400 grey 0.95 0.20")
    assert not same("1.0 and 2.0", "1.0 and 2.0 and 3.0")
    assert last_digit("43.02") == pytest.approx(0.01)
    assert last_digit("1.5e-05") == pytest.approx(1e-6)


# --- the CLI's help: fast ----------------------------------------------------------------------

def help_text(capsys, *argv: str) -> str:
    """What ``closecast ARGV --help`` prints (the command line's own ``main``, in-process)."""
    from flows.cli import main

    with pytest.raises(SystemExit) as info:
        main([*argv, "--help"])
    assert info.value.code == 0
    return capsys.readouterr().out


def test_every_help_text_is_unchanged(monkeypatch, capsys):
    """``closecast --help`` and the --help of each command it lists. argparse wraps at the
    terminal's width less 2: fixed at 100 columns here."""
    monkeypatch.setenv("COLUMNS", "100")
    monkeypatch.setenv("LINES", "50")
    top = help_text(capsys)
    commands = re.findall(r"^    (\S+)  ", top, flags=re.MULTILINE)  # the COMMAND list
    assert "run" in commands and "predict" in commands, top
    compare(GOLDEN / "cli_help", {"closecast.txt": top, **{
        f"{name}.txt": help_text(capsys, name) for name in commands}})


# --- the sample run: slow ----------------------------------------------------------------------

JSON_COMMANDS = {  # file name -> arguments (after --home HOME --json), in this order
    "models_list": ["models", "list"],
    "models_show": ["models", "show", "ZION"],
    "report": ["report", "ZION"],
    "status": ["status"],
    "status_symbol": ["status", "--symbol", "ZION"],
    "monitor": ["monitor"],
    "predict": ["predict", "--symbol", "ZION", "--horizon", "3"],
    "models_promote": ["models", "promote", "ZION", "1"],
    "gc_dry_run": ["gc", "--dry-run"],
    "gc": ["gc"],
}
# whose values depend on more than the run (disk sizes, what the Prefect server holds): shape only
SHAPE_ONLY = {"status", "status_symbol", "gc_dry_run", "gc"}


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory, cli_env) -> dict:
    """`closecast run --json` on the embedded sample into a fresh home (~1 min), its outputs
    read at once, then each --json command on that home, in JSON_COMMANDS' order."""
    home = tmp_path_factory.mktemp("golden") / "home"
    stdout = closecast_out(cli_env, "run", "--home", str(home), "--json")
    summary = last_json(stdout)
    values = volatile_values(home, summary["flow_run_id"])
    produced = {"run_stdout.txt": normalise(stdout, values)}
    for model in summary["models"]:
        version = Path(model["path"])
        assert version.parent.parent == home / "models"
        prefix = f"models/{version.parent.name}/{version.name}"
        produced |= {f"{prefix}/{name}": text
                     for name, text in version_texts(version, values).items()}
        champion = version.parent / "champion.json"
        if champion.is_file():
            produced[f"models/{version.parent.name}/champion.json"] = normalise(
                champion.read_text(), values)
    commands = {name: closecast_out(cli_env, *args, "--home", str(home), "--json")
                for name, args in JSON_COMMANDS.items()}
    return {"home": home, "values": values, "produced": produced, "commands": commands}


@pytest.mark.slow
def test_the_sample_run_is_unchanged(sample_run):
    """The version files, champions, stdout and --json summary of `closecast run`."""
    compare(GOLDEN / "sample_run", sample_run["produced"])


@pytest.mark.slow
def test_every_json_output_keeps_its_shape_and_values(sample_run):
    values = volatile_values(sample_run["home"])  # champion.json moved on: promoted_at
    values.update(sample_run["values"])
    produced = {}
    for name, stdout in sample_run["commands"].items():
        produced[f"{name}.shape.json"] = dumped(shape(last_json(stdout)))
        if name not in SHAPE_ONLY:
            produced[f"{name}.txt"] = normalise(stdout, values)
    for name in ("status", "status_symbol"):
        status = last_json(sample_run["commands"][name])
        # the Prefect server's deployments depend on what other tests registered: left out
        produced[f"{name}.shape.json"] = dumped(shape({**status, "prefect": {
            **status["prefect"], "deployments": "<depends on the Prefect server>"}}))
    compare(GOLDEN / "cli_json", produced)


# --- a version written at bb25fab: slow --------------------------------------------------------

@pytest.mark.slow
def test_a_version_written_before_the_refactor_still_loads_and_predicts(tmp_path, cli_env):
    """version_v1/home: ZION's version 1 and champion.json as bb25fab wrote them (plots left
    to be drawn on request), with the lake rows they read. predict, models and report read it
    and give exactly what bb25fab gave, forecast numbers included."""
    home = tmp_path / "home"
    shutil.copytree(V1 / "home", home)
    values = volatile_values(home)
    produced = {}
    for name, args in {"predict": ["predict", "--symbol", V1_SYMBOL, "--horizon", "3"],
                       "models_list": ["models", "list"],
                       "models_show": ["models", "show", V1_SYMBOL],
                       "report": ["report", V1_SYMBOL]}.items():
        produced[f"{name}.txt"] = normalise(
            closecast_out(cli_env, *args, "--home", str(home), "--json"), values)
    forecast = last_json(produced["predict.txt"])["forecast"]
    assert len(forecast) == 3 and all(row["lower_80"] is not None for row in forecast)
    forecast_file = home / "predictions" / V1_SYMBOL / f"{V1_SYMBOL}-v1-2016-12-30-h3.csv"
    produced["predict.csv"] = forecast_file.read_text()
    assert last_json(produced["report.txt"])["drawn_now"] is True
    version = home / "models" / V1_SYMBOL / "1"
    produced["report.md"] = normalise((version / "report.md").read_text(), values)
    produced["report.html"] = html_text((version / "report.html").read_text(), values)
    compare(V1 / "expected", produced)


# --- regenerating ------------------------------------------------------------------------------

def write_version_fixture() -> None:
    """Write version_v1/home again from this checkout: `closecast run` on the sample with plots
    on request, then ZION's version 1, its champion.json and its lake partition copied."""
    import tempfile

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "on_request.json"
        config.write_text(json.dumps({"report": {"plots": "on_request"}}))
        home = Path(tmp) / "home"
        closecast_out(env, "run", "--home", str(home), "--config", str(config))
        target = V1 / "home"
        shutil.rmtree(target, ignore_errors=True)
        for relative in (f"models/{V1_SYMBOL}/1", f"models/{V1_SYMBOL}/champion.json",
                         f"lake/prices/symbol={V1_SYMBOL}"):
            source = home / relative
            (target / relative).parent.mkdir(parents=True, exist_ok=True)
            copy = shutil.copytree if source.is_dir() else shutil.copy2
            copy(source, target / relative)


if __name__ == "__main__":
    if sys.argv[1:] == ["version-v1"]:
        sys.path.insert(0, str(ROOT))
        write_version_fixture()
        sys.exit(0)
    os.environ["CLOSECAST_GOLDEN_UPDATE"] = "1"
    os.chdir(ROOT)
    sys.path.insert(0, str(ROOT))  # tests/conftest.py imports the checkout's packages
    sys.exit(pytest.main(["-q", str(Path(__file__).relative_to(ROOT)), *sys.argv[1:]]))
