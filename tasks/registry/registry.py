"""Register: immutable, integer-numbered model versions and an atomically moved champion.

A version's network file is in ``networks``; whether a version is intact, and loading it, in
``integrity``; when a version is promoted, in ``promotion``.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tasks.core.atomic import atomic_write_text
from tasks.core.errors import RegistryError
from tasks.core.locks import file_lock
from tasks.core.paths import confined
from tasks.core.version_files import Metrics
from tasks.registry.records import ChampionRecord

log = logging.getLogger(__name__)
TEMP_PREFIXES = (".tmp-", ".champion-")


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


def fsync_path(path: Path) -> None:
    """fsync a file or a directory (a directory's entries: renames and new names)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(root: Path) -> None:
    for path in [*root.rglob("*"), root]:
        fsync_path(path)


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
    fsync_path(root)
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
