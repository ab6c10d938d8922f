"""Register: immutable, integer-numbered model versions and an atomically moved champion."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
import uuid
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tasks.core.atomic import atomic_write_text
from tasks.core.errors import RegistryError
from tasks.core.hashing import file_sha256
from tasks.core.locks import file_lock
from tasks.core.paths import confined
from tasks.core.version_files import MANIFEST_FILE, METRICS_FILE, Metrics
from tasks.registry.records import ChampionRecord, Fallback

log = logging.getLogger(__name__)
TEMP_PREFIXES = (".tmp-", ".champion-")
JSON_FILES = ("scaler.json", "config.json", MANIFEST_FILE, METRICS_FILE)
KERAS_MEMBERS = ("config.json", "model.weights.h5")
VERSION_FILES = ("scaler.json", "config.json", MANIFEST_FILE, METRICS_FILE,
                 "report.md", "report.html")
# plots/ is drawn at registration or on request (``reports.complete_report``); where it is,
# it is whole (renamed in complete)
PLOT_FILES = ("plots/forecast.png", "plots/loss.png", "plots/residuals.png")
MODEL_FILE = "model.keras"
MODEL_REF = "model-ref.json"  # a version of a shared (global) model: {"sha256": ...}
SHARED = "_shared"  # models/_shared/<sha256>.keras; "_" cannot start a symbol


@dataclass(frozen=True)
class RegisteredVersion:
    """What registration did: the version number, its path, and the promotion decision."""

    symbol: str
    version: int
    path: str
    promoted: bool
    reason: str
    metrics: Metrics
    # a symbol's only version that lost to a baseline: what it serves as champion instead
    fallback: str | None = None


def symbol_dir(models: Path, symbol: str) -> Path:
    """A symbol's registry directory, confined to ``models`` (symbols come from data)."""
    return confined(models, symbol)


def version_dir(models: Path, symbol: str, version: int) -> Path:
    """Where version ``version`` of a symbol lives (it may not exist)."""
    return confined(models, symbol, str(int(version)))


def list_versions(models: Path, symbol: str) -> list[int]:
    """Complete versions of a symbol, oldest first (temp and claim directories are ignored)."""
    root = symbol_dir(models, symbol)
    if not root.exists():
        return []
    return sorted(int(p.name) for p in root.iterdir() if p.is_dir() and p.name.isdigit())


def list_symbols(models: Path) -> list[str]:
    """Symbols that have at least one version."""
    if not models.exists():
        return []
    return sorted(p.name for p in models.iterdir() if p.is_dir() and list_versions(models, p.name))


def read_champion(models: Path, symbol: str) -> dict | None:
    """The champion record of a symbol, or None when no version was ever promoted."""
    path = symbol_dir(models, symbol) / "champion.json"
    if not path.exists():
        return None
    try:
        record = ChampionRecord.model_validate_json(path.read_text()).model_dump(
            exclude_unset=True)
    except (OSError, ValueError, TypeError, KeyError) as error:  # ValidationError is a ValueError
        raise RegistryError(f"{path} is unreadable ({error.__class__.__name__}: {error}); "
                            "promote a version by hand to repair it") from error
    return record


def version_path(models: Path, symbol: str, version: int) -> Path:
    """The directory of one version; RegistryError when it does not exist."""
    path = version_dir(models, symbol, version)
    if not path.is_dir():
        raise RegistryError(f"{path}: {symbol} has no version {version}")
    return path


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


def network_sha256(path: Path) -> str:
    """sha256 of what a saved network *is*: its architecture (config.json) and every array
    of its weights file by name, dtype, shape and value; not of the file's bytes, which
    differ from save to save (Keras stamps the second in metadata.json and writes Python
    object ids as ``shared_object_id``), so the same network trained again in another process
    is the same network here."""
    import io

    import h5py

    digest = hashlib.sha256()
    with zipfile.ZipFile(path) as archive:
        digest.update(_canonical_config(json.loads(archive.read("config.json"))).encode())
        with h5py.File(io.BytesIO(archive.read("model.weights.h5")), "r") as weights:
            arrays: list[tuple[str, object]] = []
            weights.visititems(lambda name, item: arrays.append((name, item[()]))
                               if isinstance(item, h5py.Dataset) else None)
            for name, value in sorted(arrays, key=lambda pair: pair[0]):
                value = np.asarray(value)
                digest.update(f"{name}|{value.dtype.str}|{value.shape}".encode())
                digest.update(np.ascontiguousarray(value).tobytes())
    return digest.hexdigest()


def _canonical_config(config: object) -> str:
    """A Keras config as JSON with its ``shared_object_id`` values (object ids of the saving
    process) renumbered in order of first appearance."""
    ids: dict[object, int] = {}

    def walk(node: object) -> object:
        if isinstance(node, dict):
            return {k: (ids.setdefault(v, len(ids)) if k == "shared_object_id" else walk(v))
                    for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    return json.dumps(walk(config), sort_keys=True)


def shared_model_path(models: Path, sha256: str) -> Path:
    """Where the shared model with this content hash lives."""
    if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
        raise RegistryError(f"{sha256!r} is not a sha256 of a shared model")
    return confined(models, SHARED, f"{sha256}.keras")


def store_shared_model(models: Path, source: Path) -> str:
    """Store a trained model once under its content hash (idempotent, atomic); its sha256."""
    sha = file_sha256(source)
    target = shared_model_path(models, sha)
    if target.is_file() and file_sha256(target) == sha:
        return sha
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".tmp-{uuid.uuid4().hex}.keras"
    try:
        shutil.copyfile(source, tmp)
        _fsync_path(tmp)
        os.replace(tmp, target)
    except OSError as error:
        tmp.unlink(missing_ok=True)
        raise RegistryError(f"could not store the shared model {target}: {error}") from error
    _fsync_path(target.parent)
    return sha


def model_file(path: Path) -> Path:
    """A version's network: its own model.keras, or the shared file its model-ref.json names."""
    ref = path / MODEL_REF
    if not ref.is_file():
        return path / MODEL_FILE
    try:
        sha = str(json.loads(ref.read_text())["sha256"])
    except (OSError, ValueError, TypeError, KeyError) as error:
        raise RegistryError(f"{ref} is unreadable ({error.__class__.__name__})") from error
    return shared_model_path(path.parent.parent, sha)


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
    if file_sha256(target) != target.stem:
        return [f"{MODEL_REF} (the shared model {target} does not match its sha256)"]
    problem = _keras_problem(target)
    return [f"{MODEL_REF} -> {problem}"] if problem else []


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


def load_checked_forecaster(path: Path, symbol: str, version: int,
                            fallback: Fallback | None = None):
    """The forecaster of a version directory already checked (``damaged_files``), its network
    followed to a global model's shared file, serving the baselines a fallback champion names;
    damage is a RegistryError naming the path."""
    from tasks.forecaster.forecaster import Forecaster

    load_checked_model(path, symbol, version)  # the network's own error first
    try:
        forecaster = Forecaster.load(path, model_file(path))
        return forecaster if fallback is None else forecaster.serving_baselines(
            fallback.point, fallback.range)
    except Exception as error:  # noqa: BLE001 - any parse failure means a damaged file
        raise RegistryError(f"{path}: {symbol} version {version} is damaged: cannot "
                            f"load config/scaler ({type(error).__name__}: "
                            f"{str(error)[:200]})") from error


def clean_stale_temps(models: Path, symbol: str, older_than: float) -> list[str]:
    """Remove temp dirs/files left by a holder that died (call under ``symbol_lock``)."""
    root = symbol_dir(models, symbol)
    removed = []
    for entry in root.iterdir() if root.exists() else []:
        if not entry.name.startswith(TEMP_PREFIXES) or entry.lstat().st_mtime >= older_than:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed.append(entry.name)
    if removed:
        log.warning("%s: removed %d leftover temp entr(ies) of an interrupted run: %s",
                    symbol, len(removed), ", ".join(removed))
    return removed


@contextmanager
def symbol_lock(models: Path, symbol: str) -> Iterator[None]:
    """An exclusive lock on a symbol's registry, shared safely between processes.

    The kernel drops an flock when its holder dies, even by SIGKILL, so a crash never wedges
    the registry; on entry, temp entries older than the acquisition are cleaned up.
    """
    with file_lock(symbol_dir(models, symbol) / ".lock"):
        # Whoever held the lock before us is done or dead: its temp entries are garbage.
        clean_stale_temps(models, symbol, time.time())
        yield


def _fsync_path(path: Path) -> None:
    """fsync a file or a directory (a directory's entries: renames and new names)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(root: Path) -> None:
    for path in [*root.rglob("*"), root]:
        _fsync_path(path)


def _first_error(error: OSError) -> str:
    """One line for an OSError; shutil.Error carries a list of (src, dst, why) instead."""
    if isinstance(error, shutil.Error) and error.args and isinstance(error.args[0], list):
        return str(error.args[0][0][2])
    return str(error)


def publish_version(models: Path, symbol: str, fill: Callable[[Path, int], None]) -> int:
    """Fill a temp directory, then rename it to the next free integer: complete or absent.

    Call under ``symbol_lock``; the rename also refuses an existing non-empty directory, so
    even without the lock no version is ever overwritten.
    """
    root = symbol_dir(models, symbol)
    root.mkdir(parents=True, exist_ok=True)
    version = max(list_versions(models, symbol), default=0) + 1
    tmp = root / f".tmp-{uuid.uuid4().hex}"
    tmp.mkdir()
    try:
        try:
            fill(tmp, version)
            fsync_tree(tmp)
        except OSError as error:
            raise RegistryError(f"could not write {symbol} version {version} in {tmp}: "
                                f"{_first_error(error)}; nothing was published") from error
        while True:
            try:
                os.rename(tmp, root / str(version))
                break
            except OSError:
                if not (root / str(version)).exists():
                    raise
                version += 1  # taken meanwhile by a process that ignored the lock
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _fsync_path(root)
    return version


def write_champion(models: Path, symbol: str, record: dict) -> None:
    """Replace champion.json atomically (write a temp file, fsync, rename)."""
    root = symbol_dir(models, symbol)
    try:
        # the ".champion-" prefix lets clean_stale_temps find what a dead writer left behind
        atomic_write_text(root / "champion.json", json.dumps(record, indent=2), ".champion-")
    except OSError as error:
        raise RegistryError(f"could not write {root / 'champion.json'}: {error}; the previous "
                            "champion is unchanged") from error


TIE = 1e-9  # relative: a champion rescored from the lake differs from itself in the last bits


def promotion_decision(metrics: Metrics, champion: dict | None,
                       champion_rmse: float | None,
                       champion_crps: float | None = None) -> tuple[bool, str]:
    """Promote a version that is no worse than naive (RMSE) and the constant-volatility baseline
    (CRPS) on its test window (ties allowed: a gated version ties), and that beats the champion's
    CRPS (and does not lose on RMSE) on the same test window."""
    rmse, naive, crps = metrics.rmse, metrics.naive_rmse, metrics.crps
    constant = metrics.distribution.constant.crps if metrics.distribution is not None else None
    if rmse > naive:
        return False, (f"not promoted: RMSE {rmse:.4f} is worse than the naive baseline's "
                       f"{naive:.4f} on the test window")
    if crps is not None and constant is not None and crps > constant * (1 + TIE):
        return False, (f"not promoted: CRPS {crps:.4f} is worse than the constant-volatility "
                       f"baseline's {constant:.4f} on the test window")
    first = (f"RMSE {rmse:.4f} vs naive {naive:.4f}"
             + (f", CRPS {crps:.4f} vs constant volatility {constant:.4f}"
                if constant is not None else ""))
    if champion is None:
        return True, f"promoted: no worse than the baselines ({first}) and there is no champion"
    version = champion["version"]
    if champion_rmse is not None and rmse > champion_rmse:
        return False, (f"not promoted: RMSE {rmse:.4f} is worse than champion version "
                       f"{version}'s ({champion_rmse:.4f}) on the same test window")
    if crps is not None and champion_crps is not None and crps >= champion_crps * (1 - TIE):
        return False, (f"not promoted: CRPS {crps:.4f} does not beat champion version "
                       f"{version}'s ({champion_crps:.4f}) on the same test window")
    if crps is None and champion_rmse is not None and rmse >= champion_rmse:
        return False, (f"not promoted: RMSE {rmse:.4f} does not beat champion version "
                       f"{version}'s ({champion_rmse:.4f}) on the same test window")
    against = (f"CRPS {crps:.4f} < {champion_crps:.4f}" if champion_crps is not None
               and crps is not None else f"RMSE vs {champion_rmse}")
    return True, (f"promoted: {first}; beats champion version {version} on the same test "
                  f"window ({against})")


def fallback_for(metrics: Metrics) -> Fallback:
    """What a symbol's only version serves when it fails the test-window guard of
    ``promotion_decision``: the naive point forecast where its RMSE lost to naive's, constant
    volatility's range where its CRPS lost to constant's; its own forecast otherwise."""
    constant = metrics.distribution.constant.crps if metrics.distribution is not None else None
    lost_range = (metrics.crps is not None and constant is not None
                  and metrics.crps > constant * (1 + TIE))
    return Fallback(point="naive" if metrics.rmse > metrics.naive_rmse else None,
                    range="constant" if lost_range else None)
