"""Typed records a registry holds: a version's metrics and manifest, a symbol's champion.

Each is validated where it is read; extra keys are kept (``extra="allow"``) so files written
by older or newer versions of closecast still load.
"""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field


class _Record(BaseModel):
    model_config = ConfigDict(extra="allow")


class DistributionScores(_Record):
    """One forecaster's predictive-distribution scores on the test window."""

    crps: float | None = None


class Metrics(_Record):
    """metrics.json: test-window scores in price units, next to naive (see DESIGN.md)."""

    rmse: float
    mae: float | None = None
    mape: float | None = None
    directional_accuracy: float | None = None
    naive_rmse: float
    naive_mae: float | None = None
    rmse_vs_naive: float
    n_train: int | None = None
    n_test: int | None = None
    test_start: str | None = None
    test_end: str | None = None
    shrink_alpha: float = 1.0
    distribution: dict[str, DistributionScores] = Field(default_factory=dict)
    backtest: dict | None = None

    @property
    def crps(self) -> float | None:
        """The version's own CRPS (None for a version saved before distributions)."""
        model = self.distribution.get("model")
        return model.crps if model is not None else None


class ChampionRecord(_Record):
    """champion.json: which version is the champion, its scores and why it was promoted."""

    version: int
    rmse: float | None = None
    naive_rmse: float | None = None
    crps: float | None = None
    test_start: str | None = None
    test_end: str | None = None
    reason: str = ""
    promoted_at: str | None = None


class ManifestRecord(_Record):
    """manifest.json: where a version came from."""

    symbol: str
    as_of: str
    data_fingerprint: str
    features: dict
    split: dict
    model: dict
    evaluation: dict | None = None  # absent in versions registered before RunConfig.evaluation
    created_at: str | None = None


def champion_record(version: int, metrics: dict, reason: str) -> dict:
    """THE champion.json record: the version, its test scores and why it was promoted."""
    m = Metrics.model_validate(metrics)
    return ChampionRecord(
        version=version, rmse=m.rmse, naive_rmse=m.naive_rmse, crps=m.crps,
        test_start=m.test_start, test_end=m.test_end, reason=reason,
        promoted_at=datetime.now(UTC).isoformat(timespec="seconds")).model_dump()
