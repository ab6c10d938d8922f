"""A symbol's champion record (champion.json): which version serves, its scores and why.

A version's own records (metrics, promotion, distribution, manifest) live in
``tasks.core.version_files``. Extra keys are kept (``extra="allow"``) so files written by older
or newer versions of closecast still load.
"""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict

from tasks.core.version_files import Metrics


class ChampionRecord(BaseModel):
    """champion.json: which version is the champion, its scores and why it was promoted."""

    model_config = ConfigDict(extra="allow")

    version: int
    rmse: float | None = None
    naive_rmse: float | None = None
    crps: float | None = None
    test_start: str | None = None
    test_end: str | None = None
    reason: str = ""
    promoted_at: str | None = None


def champion_record(version: int, metrics: Metrics, reason: str) -> dict:
    """THE champion.json record: the version, its test scores and why it was promoted."""
    return ChampionRecord(
        version=version, rmse=metrics.rmse, naive_rmse=metrics.naive_rmse, crps=metrics.crps,
        test_start=metrics.test_start, test_end=metrics.test_end, reason=reason,
        promoted_at=datetime.now(UTC).isoformat(timespec="seconds")).model_dump()
