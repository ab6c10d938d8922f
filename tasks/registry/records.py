"""A symbol's champion record (champion.json): which version serves, its scores and why.

A version's own records (metrics, promotion, distribution, manifest) live in
``tasks.core.version_files``. Extra keys are kept (``extra="allow"``) so files written by older
or newer versions of closecast still load.
"""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict

from tasks.core.version_files import Metrics


class Fallback(BaseModel):
    """What a fallback champion serves instead of its own forecast: the baselines its version
    lost to on the test window (``promotion.fallback_for``)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    point: str | None = None  # "naive": the point forecast is "tomorrow = today"
    range: str | None = None  # a baseline's name ("constant"): the range is that baseline's

    def text(self) -> str:
        """``naive point forecast and constant volatility's range``."""
        parts = ([f"{self.point} point forecast"] if self.point else []) \
            + ([f"{RANGE_NAMES.get(self.range, self.range)}'s range"] if self.range else [])
        return " and ".join(parts) or "its own forecast"


RANGE_NAMES = {"constant": "constant volatility", "ewma": "EWMA", "garch": "GARCH(1,1)-t",
               "lstm": "the network"}


class ChampionRecord(BaseModel):
    """champion.json: which version is the champion, its scores and why it was promoted; a
    fallback champion (a symbol's only version, which lost to a baseline on its test window)
    also says what it serves instead (``fallback``)."""

    model_config = ConfigDict(extra="allow")

    version: int
    rmse: float | None = None
    naive_rmse: float | None = None
    crps: float | None = None
    test_start: str | None = None
    test_end: str | None = None
    reason: str = ""
    promoted_at: str | None = None
    fallback: Fallback | None = None


def champion_record(version: int, metrics: Metrics, reason: str,
                    fallback: Fallback | None = None) -> dict:
    """THE champion.json record: the version, its test scores and why it was promoted (and,
    for a fallback champion, what it serves)."""
    record = ChampionRecord(
        version=version, rmse=metrics.rmse, naive_rmse=metrics.naive_rmse, crps=metrics.crps,
        test_start=metrics.test_start, test_end=metrics.test_end, reason=reason,
        promoted_at=datetime.now(UTC).isoformat(timespec="seconds"), fallback=fallback)
    # a champion serving its own forecast keeps the record it always had
    return record.model_dump(exclude=set() if fallback else {"fallback"})


def fallback_of(champion: dict | None) -> Fallback | None:
    """The fallback a champion.json record names (None: the champion serves its own)."""
    raw = (champion or {}).get("fallback")
    return Fallback.model_validate(raw) if raw else None
