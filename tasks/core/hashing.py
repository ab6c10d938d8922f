"""Content identities: sha256 of a frame's rows, of files' bytes, and short directory keys;
and a file's state, which keys what a process read or checked of it."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

SHORT = 16  # hex characters of a directory or file-name key (64 bits)


def frame_sha256(frame: pd.DataFrame) -> str:
    """sha256 of a frame's values in row order, whatever its index or how it is stored."""
    hashed = pd.util.hash_pandas_object(frame.reset_index(drop=True), index=True).to_numpy()
    return hashlib.sha256(hashed.tobytes()).hexdigest()


def file_state(path: Path) -> tuple[int, int, int]:
    """A file's inode, size and modification time: the same while it is the same file (every
    write here replaces a file by renaming a new one over it), so it keys a process's cache of
    what reading or checking the file gave."""
    stat = Path(path).stat()
    return stat.st_ino, stat.st_size, stat.st_mtime_ns


def files_sha256(files: Iterable[Path], named: bool = False) -> str:
    """sha256 of the files' bytes in the given order; ``named`` mixes in each file's name."""
    digest = hashlib.sha256()
    for path in files:
        if named:
            digest.update(Path(path).name.encode())
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def file_sha256(path: Path) -> str:
    """sha256 of one file's bytes."""
    return files_sha256([path])


def short_key(*parts: str) -> str:
    """A 16-hex-character key naming what the ``|``-joined parts determine."""
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:SHORT]
