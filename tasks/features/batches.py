"""Windows gathered batch by batch from per-day series, for models fit on many symbols.

A pool keeps each symbol's scaled channel values once per day and, per window, the row of its
oldest lag; a batch is gathered from those on demand. Memory grows with days x channels, not
with days x window x channels: the windows of 501 symbols as one array would be ~150 MB at
window 20 and grow with the window, the day series stay ~11 MB.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class WindowPool:
    """Windows ``values[starts[i] : starts[i] + window]`` with targets ``targets[i]``."""

    values: np.ndarray  # (days, channels) float32: every symbol's scaled channels, stacked
    starts: np.ndarray  # (n,) int64: the row in ``values`` of each window's oldest lag
    targets: np.ndarray  # (n,) float32
    window: int

    @classmethod
    def of(cls, parts: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]],
           window: int) -> WindowPool:
        """Stack ``(values, starts, targets)`` parts, each ``starts`` relative to its values."""
        offsets = np.cumsum([0, *[len(values) for values, _, _ in parts[:-1]]])
        return cls(np.concatenate([values for values, _, _ in parts]).astype("float32"),
                   np.concatenate([starts + offset
                                   for (_, starts, _), offset in zip(parts, offsets, strict=True)]
                                  ).astype("int64"),
                   np.concatenate([targets for _, _, targets in parts]).astype("float32"),
                   window)

    def __len__(self) -> int:
        return len(self.starts)

    def take(self, index: np.ndarray) -> WindowPool:
        """The windows at ``index`` (the day series are shared, not copied)."""
        return WindowPool(self.values, self.starts[index], self.targets[index], self.window)

    def sample(self, size: int, seed: int) -> WindowPool:
        """At most ``size`` windows drawn without replacement (seeded), in pool order."""
        if len(self) <= size:
            return self
        rng = np.random.default_rng(seed)
        return self.take(np.sort(rng.choice(len(self), size, replace=False)))

    def windows(self, index: np.ndarray) -> np.ndarray:
        """Inputs ``(len(index), window, channels)``, oldest lag first."""
        return self.values[self.starts[index][:, None] + np.arange(self.window)]


@dataclass(frozen=True)
class Batches:
    """A pool served in batches: reshuffled and resampled each epoch (``per_epoch`` windows,
    seeded by epoch), or in pool order when ``per_epoch`` is None (validation)."""

    pool: WindowPool
    batch_size: int
    per_epoch: int | None = None
    seed: int = 0

    @property
    def input_shape(self) -> tuple[int, int]:
        return self.pool.window, int(self.pool.values.shape[1])

    def order(self, epoch: int) -> np.ndarray:
        """The pool indices of one epoch, in the order they are served."""
        n = len(self.pool)
        if self.per_epoch is None:
            return np.arange(n)
        return np.random.default_rng([self.seed, epoch]).permutation(n)[:self.per_epoch]

    def dataset(self):
        """A ``keras.utils.PyDataset`` over these batches (single worker: deterministic)."""
        import keras

        spec = self

        class _Dataset(keras.utils.PyDataset):
            def __init__(self) -> None:
                super().__init__()
                self.epoch = 0
                self.index = spec.order(0)

            def __len__(self) -> int:
                return math.ceil(len(self.index) / spec.batch_size)

            def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
                index = self.index[i * spec.batch_size:(i + 1) * spec.batch_size]
                return spec.pool.windows(index), spec.pool.targets[index]

            def on_epoch_end(self) -> None:
                self.epoch += 1
                self.index = spec.order(self.epoch)

        return _Dataset()
