"""Inter-process file locks: filelock's FileLock, an flock the kernel drops when its holder dies
(even SIGKILL)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if missing, never written) for the block.

    A new FileLock per call: threads of one process exclude each other as processes do.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(path):
        yield
