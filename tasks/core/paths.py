"""Paths built from data stay inside their root: the one helper every such path goes through.

A symbol, a version or a file name read from input becomes a path component only via
``confined``, which refuses separators, ``..``, NUL and anything that resolves outside the
root, so a field added later cannot reopen a path traversal.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from tasks.core.errors import ClosecastError

ROOT = Path(__file__).resolve().parents[2]
ALLOWED_ROOTS_ENV = "CLOSECAST_ALLOWED_ROOTS"


class UnsafePathError(ClosecastError):
    """A path built from data would leave its root, or a run asked for a path it may not use."""


def confined(root: Path, *parts: str | int) -> Path:
    """``root / part / ...`` where each part is one plain name and the result stays under root."""
    path = Path(root)
    for part in parts:
        name = str(part)
        if (not name or name in (".", "..") or "\x00" in name or "/" in name or "\\" in name
                or len(name.encode()) > 255):
            raise UnsafePathError(f"refusing path component {_shown(name)} under {root}: "
                                  "not a plain file name")
        path = path / name
    base = Path(root).resolve()
    if not path.resolve().is_relative_to(base):
        raise UnsafePathError(f"refusing {path}: it resolves outside {base}")
    return path


def within(path: Path, roots: Iterable[Path]) -> bool:
    """True when ``path`` (resolved, symlinks followed) lies under one of ``roots``."""
    resolved = Path(path).resolve()
    return any(resolved.is_relative_to(Path(root).resolve()) for root in roots)


def allowed_roots(configured: Iterable[Path | str | None] = ()) -> list[Path]:
    """Where a deployment run may read and write: $CLOSECAST_ALLOWED_ROOTS (os.pathsep-separated)
    or, by default, the repository's data/, $CLOSECAST_HOME and the deployment's own home."""
    declared = os.environ.get(ALLOWED_ROOTS_ENV, "")
    if declared.strip():
        return [Path(p).expanduser() for p in declared.split(os.pathsep) if p.strip()]
    roots = [ROOT / "data", os.environ.get("CLOSECAST_HOME"), *configured]
    return [Path(r).expanduser() for r in roots if r]


def require_within(label: str, path: Path, roots: list[Path]) -> None:
    """UnsafePathError naming the path and the allowed roots when ``path`` is outside them."""
    if not within(path, roots):
        raise UnsafePathError(
            f"{label} {path} is outside the roots this deployment may use "
            f"({', '.join(str(r) for r in roots)}); set {ALLOWED_ROOTS_ENV} on the serving "
            "process or worker to allow another root")


def _shown(text: str) -> str:
    shown = repr(text)
    return shown if len(shown) <= 80 else shown[:77] + "...'"
