"""Where a run writes: every path derives from one home directory (default ``data/``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Layout:
    """The directories under a closecast home; nothing is created until a step writes."""

    home: Path

    @property
    def lake(self) -> Path:
        return self.home / "lake"

    @property
    def validation(self) -> Path:
        return self.home / "validation"

    @property
    def models(self) -> Path:
        return self.home / "models"

    @property
    def staging(self) -> Path:
        """Parsed inputs before validation: never read by training."""
        return self.home / "staging"

    @property
    def work(self) -> Path:
        """Candidates (trained, evaluated) before they become registered versions."""
        return self.home / "work"

    @property
    def cache(self) -> Path:
        """Prefect task results, so a cache hit never outlives the files it points to."""
        return self.home / "cache"

    @property
    def runs(self) -> Path:
        """Training runs' per-symbol summary tables (``runs/<key>/summary.csv``)."""
        return self.home / "runs"

    @property
    def home_lock(self) -> Path:
        """Shared by every run using the home, taken alone by gc (``tasks.core.locks``)."""
        return self.home / ".locks" / "home.lock"

    @property
    def trash(self) -> Path:
        """Where gc moves a directory before deleting it: a gc killed midway leaves its
        half-deleted directories here, out of every reader's way, for the next gc."""
        return self.home / ".trash"
