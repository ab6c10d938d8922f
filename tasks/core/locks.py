"""Inter-process file locks: flock, which the kernel drops when its holder dies (even SIGKILL)."""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if missing, never written) for the block.

    A new open file per call, and flock locks belong to an open file: threads of one process
    exclude each other as processes do. (filelock's FileLock did the same flock in 0.3 ms a
    lock; a daily run of 501 symbols takes ~1,000.)
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


# The home lock: runs share it, gc takes it alone. A run holds it (shared) from its first
# cache lookup to its last write, so nothing it got from the cache (a record and the staged,
# work or validation files the record names) can be removed under it; gc removes only while
# it holds the lock exclusively, so no run is between a cache hit and the read of its files.
# flock, as file_lock: the kernel drops it when its holder dies, even by SIGKILL.


@contextmanager
def home_shared(lock: Path) -> Iterator[None]:
    """Hold ``lock`` shared for the block (a run using the home); waits while gc holds it.

    Shared holders never exclude each other (a subflow inside a run takes it again), and gc
    never queues for it (it polls, ``home_exclusive``), so this cannot deadlock.
    """
    lock.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)  # releases the lock


@contextmanager
def home_exclusive(lock: Path, wait_seconds: float = 0.0) -> Iterator[bool]:
    """Try to hold ``lock`` alone for the block; yields False if runs still hold it after
    ``wait_seconds`` (polled, never queued: a queued exclusive request could hold back a
    subflow's shared one while its parent run holds the lock)."""
    lock.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.monotonic() + wait_seconds
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                held = True
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    held = False
                    break
                time.sleep(0.2)
        yield held
    finally:
        os.close(fd)
