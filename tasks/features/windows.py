"""Model arrays from a feature table: lag windows (n, k, channels), oldest first, and targets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

# Columns of a feature table that carry the hybrid head's baseline, GARCH-t, per row (scaled
# units: loc, log scale, dof as softplus^-1(dof - 2)); ``targets_of`` packs them with the target.
OFFSETS = ("offset_loc", "offset_log_scale", "offset_dof")


def targets_of(rows: pd.DataFrame, packed: bool = False) -> np.ndarray:
    """A feature table's scaled targets ``(n,)``; ``packed``: ``(n, 4)``, the target and
    GARCH-t's ``OFFSETS`` beside it, as the hybrid head's loss reads them."""
    if packed:
        return rows[["target", *OFFSETS]].to_numpy(dtype="float32")
    return rows["target"].to_numpy(dtype="float32")


def window_array(rows: pd.DataFrame) -> np.ndarray:
    """Inputs ``(n, k, channels)`` from a feature table's lag columns, oldest lag first."""
    channels: dict[str, list[tuple[int, str]]] = {}
    for column in rows.columns:
        if column.startswith("lag_") or "_lag_" in column:
            prefix, _, lag = column.rpartition("_")
            channels.setdefault(prefix, []).append((int(lag), column))
    ordered = [sorted(cols, reverse=True) for cols in channels.values()]
    lags = len(ordered[0])
    if any(len(cols) != lags for cols in ordered):
        raise ValueError(f"channels with different lag counts: {[len(c) for c in ordered]}")
    # one copy of every lag column, channel by channel, then (n, channels, k) -> (n, k, channels)
    flat = rows[[c for cols in ordered for _, c in cols]].to_numpy(dtype="float32")
    return np.ascontiguousarray(flat.reshape(len(rows), len(ordered), lags).transpose(0, 2, 1))


def split_arrays(frame: pd.DataFrame, *splits: str,
                 packed: bool = False) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(inputs, targets)`` of each named split of a feature table, e.g. train, validation
    (``packed``: targets with GARCH-t's offsets, ``targets_of``)."""
    parts = [frame[frame["split"] == name] for name in splits]
    return [(window_array(p), targets_of(p, packed)) for p in parts]


def load_arrays(path: str | Path, split: str,
                packed: bool = False) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """Inputs ``(n, k, channels)`` oldest lag first, scaled targets (``targets_of``), rows."""
    frame = pd.read_parquet(path)
    rows = frame[frame["split"] == split].reset_index(drop=True)
    return window_array(rows), targets_of(rows, packed), rows
