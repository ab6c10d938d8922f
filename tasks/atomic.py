"""Atomic file writes: a reader sees the old file or the new one, never half of one."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq


def atomic_write_parquet(frame: pd.DataFrame, target: Path) -> Path:
    """Write to a unique temp file beside the target, fsync, then rename over it."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix=".parquet")
    os.close(fd)
    try:
        # One thread: these files are small, and a pool per call (frame.to_parquet) made
        # writing 501 partitions spend its time starting and stopping threads.
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False, nthreads=1), tmp)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target
