"""How a run checks, runs and keeps its work: validation, runner, reports, retention, retraining."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from tasks.core.config_base import FrozenConfig


class ValidationConfig(FrozenConfig):
    """How strict validation is and what happens to rows that break a rule."""

    max_gap_business_days: int = Field(
        10, ge=1, description="Longest allowed step between a symbol's consecutive days, in "
        "business days (1 = next business day). 9/11 (5) and Hurricane Sandy (3) pass.")
    on_invalid: Literal["fail", "drop"] = Field(
        "fail", description="fail: store nothing; drop: quarantine offending rows, store the rest.")


class RunnerConfig(FrozenConfig):
    """Where the per-symbol tasks run: threads or processes here, or a Dask cluster."""

    kind: Literal["threads", "processes"] = Field(
        "threads", description="threads share one TensorFlow (little start-up, but Keras's "
        "Python-side work holds the GIL); processes train truly in parallel, each importing TF.")
    max_workers: int = Field(2, ge=1)
    tf_threads: int | None = Field(
        None, ge=0, description="TensorFlow intra-/inter-op threads for this process's "
        "thread-pool fan-out; None: cores // max_workers (at least 1); 0: TensorFlow's default.")
    dask_address: str | None = Field(
        None, description="tcp://host:8786 of a Dask scheduler (needs the [dask] extra).")


class RetentionConfig(FrozenConfig):
    """What ``closecast gc`` keeps, and whether deployment runs collect garbage at their end.

    gc never removes a registered version, a champion, the lake or the ledger; what it removes
    only costs a later run a recomputation (see ``tasks/housekeeping/retention.py``).
    """

    enabled: bool = Field(
        True, description="Deployment runs (daily, weekly-retrain) run gc at their end.")
    validation_days: int = Field(
        30, ge=0, description="Great Expectations results (result JSON, stored validations, "
                              "their Data Docs pages) older than this are removed.")
    work_days: int = Field(
        7, ge=0, description="Candidate and backtest fold directories under work/ (and staged "
                             "inputs never stored) untouched for this long are removed.")
    cache_days: int = Field(
        30, ge=0, description="Prefect task result records older than this are removed (a "
                              "later identical run recomputes; registration finds the version "
                              "it already wrote).")
    grace_hours: float = Field(
        1.0, ge=0.0, description="Nothing modified this recently is removed (staged inputs "
                                 "already stored, temp files of killed writes).")


MAX_REPORT_ARTIFACTS = 20  # versions per run whose reports (plots inlined) go to the Prefect UI


class ReportConfig(FrozenConfig):
    """When a version's plots (forecast, loss, residuals, backtest, fan, calibration, PIT) are
    drawn: during the run, or on request (``closecast report SYMBOL``), which draws them into
    the version and renders its report again with them.

    Seven PNGs per symbol were half of a 501-symbol run's scoring time, for reports few are
    ever opened; a run small enough to publish its reports to the Prefect UI draws them.
    """

    plots: Literal["auto", "always", "on_request"] = Field(
        "auto", description=f"auto: drawn during runs of at most {MAX_REPORT_ARTIFACTS} "
        "symbols (whose reports are published as Prefect artifacts), on request for larger ones.")

    def draws(self, n_symbols: int) -> bool:
        """Whether a run of ``n_symbols`` draws its versions' plots."""
        if self.plots == "auto":
            return n_symbols <= MAX_REPORT_ARTIFACTS
        return self.plots == "always"


class DegradationPolicy(FrozenConfig):
    """When the daily flow retrains a symbol: its champion's live scores past a limit.

    Scored over the last ``window`` forecasts of the current champion only (a new champion
    starts afresh), and only once ``min_scored`` of them are scored. Defaults: see README.
    """

    window: int = Field(60, ge=5, description="Trading days (scored forecasts) judged.")
    min_scored: int = Field(40, ge=1, description="Fewer scored forecasts: no verdict yet.")
    max_rmse_ratio: float = Field(
        1.10, gt=0.0, description="Retrain when live RMSE / naive RMSE exceeds this.")
    max_crps_ratio: float = Field(
        1.05, gt=0.0, description="Retrain when live CRPS / constant-volatility CRPS exceeds "
                                 "this (only for forecasts that carry quantiles).")
    coverage_80: tuple[float, float] = Field(
        (0.70, 0.90), description="Retrain when the 80% interval's live coverage leaves this "
                                  "band (only for forecasts that carry intervals).")
    cooldown_days: int = Field(
        20, ge=0, description="No retrain within this many days of the symbol's latest "
                              "version's as-of date (a retrain that was not promoted would "
                              "otherwise repeat every day).")
    retrain: bool = Field(True, description="False: report degradation, start nothing.")
