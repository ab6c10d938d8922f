"""Register: immutable, integer-numbered model versions and an atomically moved champion."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tasks.errors import RegistryError

VERSION_FILES = ("model.keras", "scaler.json", "config.json", "manifest.json", "metrics.json",
                 "report.md", "report.html", "plots/forecast.png", "plots/loss.png",
                 "plots/residuals.png")


@dataclass(frozen=True)
class RegisteredVersion:
    """What registration did: the version number, its path, and the promotion decision."""

    symbol: str
    version: int
    path: str
    promoted: bool
    reason: str
    metrics: dict


def symbol_dir(models: Path, symbol: str) -> Path:
    return models / symbol


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
    return json.loads(path.read_text())


def version_path(models: Path, symbol: str, version: int) -> Path:
    """The directory of one version; RegistryError when it does not exist."""
    path = symbol_dir(models, symbol) / str(version)
    if not path.is_dir():
        raise RegistryError(f"{symbol} has no version {version} (looked in {path})")
    return path


def damaged_files(path: Path) -> list[str]:
    """Files a complete version must have that are missing or empty."""
    return [name for name in VERSION_FILES
            if not (path / name).is_file() or (path / name).stat().st_size == 0]


@contextmanager
def symbol_lock(models: Path, symbol: str) -> Iterator[None]:
    """An exclusive lock on a symbol's registry, shared safely between processes."""
    root = symbol_dir(models, symbol)
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _fsync_tree(root: Path) -> None:
    for path in [*root.rglob("*"), root]:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


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
        fill(tmp, version)
        _fsync_tree(tmp)
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
    return version


def write_champion(models: Path, symbol: str, record: dict) -> None:
    """Replace champion.json atomically (write a temp file, fsync, rename)."""
    root = symbol_dir(models, symbol)
    tmp = root / f".champion-{uuid.uuid4().hex}.json"
    with open(tmp, "w") as handle:
        json.dump(record, handle, indent=2)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, root / "champion.json")


def promotion_decision(metrics: dict, champion: dict | None,
                       champion_rmse: float | None) -> tuple[bool, str]:
    """Promote only a model that beats naive and the champion on the same test window."""
    rmse, naive = metrics["rmse"], metrics["naive_rmse"]
    if rmse >= naive:
        return False, (f"not promoted: RMSE {rmse:.4f} does not beat the naive baseline's "
                       f"{naive:.4f} on the test window")
    if champion is None:
        return True, f"promoted: beats naive ({rmse:.4f} < {naive:.4f}) and there is no champion"
    if champion_rmse is not None and rmse >= champion_rmse:
        return False, (f"not promoted: RMSE {rmse:.4f} does not beat champion version "
                       f"{champion['version']} ({champion_rmse:.4f}) on the same test window")
    return True, (f"promoted: beats naive ({rmse:.4f} < {naive:.4f}) and champion version "
                  f"{champion['version']} ({champion_rmse:.4f}) on the same test window")
