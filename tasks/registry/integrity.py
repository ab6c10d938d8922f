"""Whether a version is intact (files, JSON, Keras archive), and loading an intact one's network."""

from __future__ import annotations

import functools
import json
import zipfile
from pathlib import Path

from tasks.core.errors import RegistryError
from tasks.core.hashing import file_sha256, file_state
from tasks.core.version_files import MANIFEST_FILE, METRICS_FILE
from tasks.registry.networks import MODEL_FILE, MODEL_REF, model_file
from tasks.registry.records import Fallback
from tasks.registry.registry import version_path

JSON_FILES = ("scaler.json", "config.json", MANIFEST_FILE, METRICS_FILE)
KERAS_MEMBERS = ("config.json", "model.weights.h5")
VERSION_FILES = ("scaler.json", "config.json", MANIFEST_FILE, METRICS_FILE,
                 "report.md", "report.html")
# plots/ is drawn at registration or on request (``reports.complete_report``); where it is,
# it is whole (renamed in complete)
PLOT_FILES = ("plots/forecast.png", "plots/loss.png", "plots/residuals.png")


def _json_problem(path: Path) -> str | None:
    try:
        json.loads(path.read_text())
    except (OSError, ValueError) as error:
        return f"{path.name} (unreadable JSON: {error.__class__.__name__})"
    return None


def _keras_problem(path: Path) -> str | None:
    """A model.keras is a zip archive: truncation loses its directory, bit rot fails a CRC."""
    try:
        with zipfile.ZipFile(path) as archive:
            missing = [m for m in KERAS_MEMBERS if m not in archive.namelist()]
            bad = archive.testzip()
    except (OSError, zipfile.BadZipFile, EOFError) as error:
        return f"{path.name} (not a complete Keras archive: {error})"
    if missing:
        return f"{path.name} (Keras archive lacks {', '.join(missing)})"
    if bad is not None:
        return f"{path.name} (corrupt member {bad})"
    return None


def _model_problems(path: Path) -> list[str]:
    """A missing, truncated or corrupt network; for a shared one also a content-hash mismatch."""
    if not (path / MODEL_REF).is_file():
        target = path / MODEL_FILE
        if not target.is_file() or target.stat().st_size == 0:
            return [MODEL_FILE]
        problem = _keras_problem(target)
        return [problem] if problem else []
    try:
        target = model_file(path)
    except RegistryError as error:
        return [f"{MODEL_REF} ({error})"]
    if not target.is_file():
        return [f"{MODEL_REF} (the shared model {target} is missing)"]
    return list(_shared_model_problems(target, file_state(target)))


@functools.lru_cache(maxsize=64)
def _shared_model_problems(target: Path, state: tuple[int, int, int]) -> tuple[str, ...]:
    """A shared model's content-hash and archive checks, once per process while the file is
    the same file (``state``: inode, size, mtime): a market's versions all name one file, and
    a daily run checked it once per symbol (501 hashes of it)."""
    if file_sha256(target) != target.stem:
        return (f"{MODEL_REF} (the shared model {target} does not match its sha256)",)
    problem = _keras_problem(target)
    return (f"{MODEL_REF} -> {problem}",) if problem else ()


def damaged_files(path: Path) -> list[str]:
    """What makes a version unusable: missing or empty files, unreadable JSON, a broken model
    (its own model.keras, or the shared model its model-ref.json names)."""
    expected = VERSION_FILES + (PLOT_FILES if (path / "plots").exists() else ())
    problems = [name for name in expected
                if not (path / name).is_file() or (path / name).stat().st_size == 0]
    for name in JSON_FILES:
        if name not in problems and (problem := _json_problem(path / name)) is not None:
            problems.append(problem)
    return problems + _model_problems(path)


def check_version(models: Path, symbol: str, version: int) -> Path:
    """The directory of an intact version; RegistryError naming the path when damaged or absent."""
    path = version_path(models, symbol, version)
    problems = damaged_files(path)
    if problems:
        raise RegistryError(f"{path}: {symbol} version {version} is damaged: "
                            f"{'; '.join(problems)}")
    return path


def load_version_model(models: Path, symbol: str, version: int):
    """Load an intact version's Keras model; damage is a RegistryError naming the path."""
    return load_checked_model(check_version(models, symbol, version), symbol, version)


def load_checked_model(path: Path, symbol: str, version: int):
    """The Keras model of a version directory already checked (``damaged_files``)."""
    from tasks.forecaster.network import load_model

    try:
        return load_model(model_file(path))
    except Exception as error:  # noqa: BLE001 - Keras raises many types for a bad archive
        raise RegistryError(f"{path}: {symbol} version {version} is damaged: {model_file(path)} "
                            f"cannot be loaded ({error.__class__.__name__}: {error})") from error


def served_forecaster(path: Path, fallback: Fallback | None = None):
    """A version's forecaster as it serves: its network followed to a global model's shared
    file, serving the baselines a fallback champion names (``fallback``)."""
    from tasks.forecaster.forecaster import Forecaster

    forecaster = Forecaster.load(path, model_file(path))
    return forecaster if fallback is None else forecaster.serving_baselines(
        fallback.point, fallback.range)


def load_checked_forecaster(path: Path, symbol: str, version: int,
                            fallback: Fallback | None = None):
    """The forecaster of a version directory already checked (``damaged_files``), its network
    followed to a global model's shared file, serving the baselines a fallback champion names;
    damage is a RegistryError naming the path."""
    load_checked_model(path, symbol, version)  # the network's own error first
    try:
        return served_forecaster(path, fallback)
    except Exception as error:  # noqa: BLE001 - any parse failure means a damaged file
        raise RegistryError(f"{path}: {symbol} version {version} is damaged: cannot "
                            f"load config/scaler ({type(error).__name__}: "
                            f"{str(error)[:200]})") from error
