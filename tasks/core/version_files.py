"""A version directory's records: metrics, promotion, distribution and manifest.

The one module that names these files and knows their keys: everything else reads and writes
them with ``read_*`` / ``write_*`` and reads the records' fields and accessors. Each record is
typed where closecast reads it and keeps every other key (``extra="allow"``); writing leaves
out what the record was not given, so a file of any age reads and writes back as the same JSON
object. A key a version predates reads as its default (``Metrics.shrink_alpha`` 1.0: the raw
LSTM); a version registered before distribution.json or promotion.json existed reads None.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, Field

METRICS_FILE = "metrics.json"
PROMOTION_FILE = "promotion.json"
DISTRIBUTION_FILE = "distribution.json"
MANIFEST_FILE = "manifest.json"


class Record(BaseModel):
    """A JSON record of a version: fields in the order its writer writes them."""

    model_config = ConfigDict(extra="allow", frozen=True)

    def to_dict(self) -> dict:
        """The record as its file holds it: only the keys it was given, none filled in."""
        return self.model_dump(exclude_unset=True)


class PointScores(Record):
    """A point forecast on the test window (the version's, or a row of ``Metrics.baselines``)."""

    rmse: float
    mae: float | None = None
    mape: float | None = None
    directional_accuracy: float | None = None
    direction_calls: float | None = None  # share of days it calls a move; 0: it is naive
    rmse_vs_naive: float


class Scores(Record):
    """A predictive distribution on the test window: CRPS, pinball, intervals, VaR."""

    crps: float
    crps_vs_constant: float | None = None
    pinball: float | None = None
    coverage: dict[str, float] = Field(default_factory=dict)  # "50" | "80" | "95" -> share
    width: dict[str, float] = Field(default_factory=dict)
    var_backtest: dict[str, dict] = Field(default_factory=dict)  # "1%" | "5%" -> hits, p-values
    calibration: dict[str, float] = Field(default_factory=dict)
    log_score: float | None = None  # mean log density of the realised return, nats per day
    large_move_coverage_95: float | None = None  # 95% cover on the 5% largest-move days


class BaselineScores(Scores):
    """A volatility baseline's distribution; also its simulated 5-day 80% coverage."""

    coverage_5d_80: float | None = None


class PooledGate(Record):
    """The pooled gate's verdict on a global network's distribution, for one symbol."""

    accepted: bool
    dm: float
    symbols: int
    validation_crps_ratio: float | None = None  # the network's over the family's (earlier:
    kept: bool                                  # over the symbol's best of three baselines)
    tolerance: float
    family: str | None = None  # the run's baseline family (None: written before there was one)
    gain: float | None = None  # the pooled relative CRPS gain over the family
    lower: float | None = None  # its one-sided lower confidence bound
    served: str | None = None  # the range source this symbol serves


class ModelScores(Scores):
    """The version's own distribution: its scores, its source and the gate that chose it."""

    dm_vs: dict[str, float] = Field(default_factory=dict)  # baseline -> DM of the CRPS gain
    coverage_5d_80: float | None = None  # None for the LSTM's own (not simulated per day)
    source: str  # lstm | constant | ewma | garch
    validation_best_baseline: str | None = None
    validation_dm: float | None = None  # None: the network gave no distribution to gate
    gate: str = "symbol"  # symbol | pooled
    lstm_ungated: Scores | None = None  # the network's own, had the gate kept it
    # the test window's largest-move days, and on how many the network's 95% range was wider
    large_moves_widened: dict[str, int] | None = None
    pooled_gate: PooledGate | None = None


class DistributionScores(Record):
    """The metrics' ``distribution`` section: the version's distribution and each baseline's."""

    model: ModelScores
    constant: BaselineScores
    ewma: BaselineScores | None = None
    garch: BaselineScores | None = None

    def forecasters(self) -> dict[str, ModelScores | BaselineScores]:
        """Each forecaster's scores by name: the version first, then the baselines."""
        return {name: value for name, value in self
                if isinstance(value, ModelScores | BaselineScores)}


class Backtest(Record):
    """The walk-forward backtest: one row per fold (open-ended columns) and their mean ratio."""

    folds: list[dict] = Field(default_factory=list)
    mean_rmse_vs_naive: float | None = None


class Metrics(Record):
    """metrics.json: test-window scores in price units beside naive (DESIGN.md), the baselines'
    scores, the distribution section and the backtest."""

    rmse: float
    mae: float | None = None
    mape: float | None = None
    directional_accuracy: float | None = None
    direction_calls: float | None = None
    naive_rmse: float
    naive_mae: float | None = None
    naive_mape: float | None = None
    rmse_vs_naive: float
    n_train: int | None = None
    n_test: int | None = None
    test_start: str | None = None
    test_end: str | None = None
    shrink_alpha: float = 1.0  # a version older than the shrink factor is the raw LSTM
    validation_dm: float | None = None
    unshrunk_rmse_vs_naive: float | None = None
    baselines: dict[str, PointScores] = Field(default_factory=dict)
    distribution: DistributionScores | None = None  # None: saved before distributions
    backtest: Backtest | None = None  # None: the backtest was disabled

    @property
    def crps(self) -> float | None:
        """The version's own CRPS (None for a version saved before distributions)."""
        return self.distribution.model.crps if self.distribution is not None else None

    @property
    def source(self) -> str | None:
        """Where the version's distribution comes from (lstm or a baseline; None: none)."""
        return self.distribution.model.source if self.distribution is not None else None

    @property
    def pooled_gate(self) -> PooledGate | None:
        """The pooled gate's verdict for this symbol (None: its own gate decided)."""
        return self.distribution.model.pooled_gate if self.distribution is not None else None

    @property
    def backtest_folds(self) -> list[dict]:
        """The backtest's fold rows, oldest first ([] when it was disabled)."""
        return self.backtest.folds if self.backtest is not None else []

    def with_pooled_gate(self, gate: PooledGate) -> Metrics:
        """These metrics with the pooled gate's verdict added to the version's distribution."""
        if self.distribution is None:
            raise ValueError("metrics without a distribution have no gate to record")
        model = self.distribution.model.model_copy(update={"pooled_gate": gate})
        return self.model_copy(update={
            "distribution": self.distribution.model_copy(update={"model": model})})

    def with_backtest(self, folds: list[dict]) -> Metrics:
        """These metrics with the backtest's fold rows and their mean RMSE / naive."""
        ratios = [f["rmse_vs_naive"] for f in folds]
        return self.model_copy(update={"backtest": Backtest(
            folds=folds, mean_rmse_vs_naive=sum(ratios) / len(ratios) if ratios else None)})


class Promotion(Record):
    """promotion.json: what registration decided (champion.json moves on; this stays)."""

    promoted: bool
    reason: str


class SavedDistribution(Record):
    """distribution.json: the source the version serves and the baselines' fitted parameters,
    whose recursions start on ``start_date`` (the first day after the training rows)."""

    source: str  # lstm | constant | ewma | garch
    start_date: str
    baselines: dict[str, dict]  # name -> parameters (``distribution.volatility``)

    def params(self, name: str | None = None) -> dict:
        """A baseline's fitted parameters (the version's source by default)."""
        return self.baselines[name or self.source]


class Manifest(Record):
    """manifest.json: where a version came from."""

    symbol: str
    as_of: str
    data_fingerprint: str
    features: dict
    split: dict
    model: dict
    evaluation: dict | None = None  # absent in versions registered before RunConfig.evaluation
    trained_on: list[str] = Field(default_factory=list)
    global_model: bool = False
    epochs_run: int | None = None
    best_val_loss: float | None = None
    libraries: dict[str, str] = Field(default_factory=dict)
    git_commit: str | None = None
    flow_run_id: str | None = None
    created_at: str | None = None
    model_sha256: str | None = None
    candidate_key: str | None = None


R = TypeVar("R", bound=Record)


def _read(version_dir: Path, name: str, kind: type[R]) -> R:
    """One record; OSError when the file is missing, ValueError when it is not that record."""
    return kind.model_validate(json.loads((Path(version_dir) / name).read_text()))


def _write(version_dir: Path, name: str, record: Record, indent: int | None = 2) -> Path:
    path = Path(version_dir) / name
    path.write_text(json.dumps(record.to_dict(), indent=indent))
    return path


def read_metrics(version_dir: Path) -> Metrics:
    """A version's metrics."""
    return _read(version_dir, METRICS_FILE, Metrics)


def write_metrics(version_dir: Path, metrics: Metrics) -> Path:
    """Write the metrics into a version directory (or an evaluation's); its path."""
    return _write(version_dir, METRICS_FILE, metrics)


def read_manifest(version_dir: Path) -> Manifest:
    """A version's manifest."""
    return _read(version_dir, MANIFEST_FILE, Manifest)


def write_manifest(version_dir: Path, manifest: Manifest) -> Path:
    """Write the manifest into a version directory; its path."""
    return _write(version_dir, MANIFEST_FILE, manifest)


def read_promotion(version_dir: Path) -> Promotion | None:
    """What registration decided; None for a version registered before it was recorded."""
    if not (Path(version_dir) / PROMOTION_FILE).exists():
        return None
    return _read(version_dir, PROMOTION_FILE, Promotion)


def write_promotion(version_dir: Path, promotion: Promotion) -> Path:
    """Write the promotion decision (one line, as registration always wrote it); its path."""
    return _write(version_dir, PROMOTION_FILE, promotion, indent=None)


def read_distribution(version_dir: Path) -> SavedDistribution | None:
    """The saved distribution; None for a version registered before distributions existed."""
    if not (Path(version_dir) / DISTRIBUTION_FILE).exists():
        return None
    return _read(version_dir, DISTRIBUTION_FILE, SavedDistribution)


def write_distribution(version_dir: Path, saved: SavedDistribution) -> Path:
    """Write the saved distribution into a version directory (or an evaluation's); its path."""
    return _write(version_dir, DISTRIBUTION_FILE, saved)
