"""The one typed configuration of a closecast run, validated once at the flow boundary."""

from __future__ import annotations

import hashlib
import json
from datetime import date
from pathlib import Path
from typing import Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from tasks.core.errors import InputError
from tasks.core.symbols import normalize_symbols

SAMPLE_PATH = (Path(__file__).resolve().parents[2] / "data" / "sample"
               / "prices-split-adjusted.csv")

InputFormat = Literal["kaggle", "yahoo-csv", "yahoo"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    def fingerprint(self) -> str:
        """Short, stable hash of this config's values (used in cache keys and paths)."""
        blob = json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:12]


class FeatureConfig(_Frozen):
    """How lag windows are made from a symbol's daily closes."""

    window: int = Field(20, ge=2, le=400, description="Number of lags t-1..t-k fed to the model.")
    target: Literal["return", "close"] = Field(
        "return",
        description="Predict the next return (price rebuilt from it) or the next close.",
    )
    returns: Literal["log", "simple"] = Field(
        "log", description="Kind of return used for the target series and derived channels.")
    ohlcv: bool = Field(
        False, description="Add channels log(open/close), log(high/close), log(low/close) and "
                           "the log change of volume (day t-1..t-k, like the lags).")
    rolling: tuple[int, ...] = Field(
        (), description="For each w: rolling mean and volatility (std) of the last w returns "
                        "as two extra channels.")
    magnitude: bool = Field(
        True, description="Add |r| and r^2 of each lagged day's return as channels: they carry "
                          "the size of recent moves (volatility clusters) without look-ahead.")
    volatility: bool = Field(
        True, description="Add each day's GARCH(1,1)-t and EWMA sigma of the next day (fit on "
                          "training returns only, rolled forward without look-ahead) and the "
                          "Parkinson and Garman-Klass range estimators (r^2 where a file has no "
                          "OHLC) as channels, and GARCH-t's scale per row: the inputs and the "
                          "baseline of the hybrid head.")


class SplitConfig(_Frozen):
    """Chronological train / validation / test fractions (of the windows, in time order)."""

    validation: float = Field(0.15, gt=0.0, lt=0.5)
    test: float = Field(0.15, gt=0.0, lt=0.5)

    @model_validator(mode="after")
    def _leave_training_rows(self) -> SplitConfig:
        if self.validation + self.test >= 0.8:
            raise ValueError("validation + test must leave at least 20% for training")
        return self


class ModelConfig(_Frozen):
    """Hyper-parameters of the stacked LSTM and its training loop."""

    units: tuple[int, ...] = Field((32, 16), min_length=1, description="LSTM units per layer.")
    dropout: float = Field(0.1, ge=0.0, lt=1.0)
    learning_rate: float = Field(1e-3, gt=0.0)
    batch_size: int = Field(64, ge=1)
    epochs: int = Field(30, ge=1)
    patience: int = Field(5, ge=1, description="EarlyStopping patience on validation loss.")
    seed: int = 42
    head: Literal["hybrid", "student_t", "point"] = Field(
        "hybrid", description="hybrid: a correction to GARCH(1,1)-t (loc, scale = GARCH-t "
        "scale * exp(g), dof), zero at the start, so the untrained network is GARCH-t; "
        "trained on the Student-t negative log-likelihood (needs features.volatility). "
        "student_t: loc, scale and degrees of freedom from nothing, same loss; point: one "
        "value trained on MSE (no predictive distribution of its own).")


class EvaluationConfig(_Frozen):
    """Settings that only affect evaluation, gating, promotion and reporting.

    None of them enters a feature or training cache key: changing one re-scores, re-plots
    and re-registers but never re-builds features or re-trains a network.
    """

    ma_window: int = Field(5, ge=1, description="k of the moving-average baseline (closes).")
    shrink: bool = Field(
        True, description="Shrink forecasts toward naive by an alpha in [0, 1] fit on the "
                          "validation split only (alpha = 0 is the naive forecast).")
    gate_z: float = Field(
        1.645, ge=0.0, description="With shrink: keep alpha > 0 only if the shrunk model beats "
                                   "naive on the validation split with a Diebold-Mariano "
                                   "statistic >= gate_z (1.645: one-sided 5%); 0 disables. "
                                   "The same threshold gates the LSTM's distribution against "
                                   "the baselines'.")
    pooled_tolerance: float = Field(
        0.01, ge=0.0, description="A network fit on many symbols is gated once, on their "
                                  "pooled validation days (DM >= gate_z); a symbol then keeps "
                                  "it unless its own validation CRPS is worse than its best "
                                  "baseline's by more than this share (0.01: 1%).")


# Where these settings lived before ``RunConfig.evaluation``: section -> keys moved from it.
_MOVED_TO_EVALUATION = {"features": ("ma_window",), "model": ("shrink", "gate_z")}


def drop_moved(section: str, value: object) -> object:
    """A features/model mapping without the keys that moved to ``evaluation`` (saved versions
    and old config files still carry them)."""
    if isinstance(value, dict):
        return {k: v for k, v in value.items() if k not in _MOVED_TO_EVALUATION[section]}
    return value


class BacktestConfig(_Frozen):
    """Walk-forward backtest: expanding training window, the last ``folds`` blocks as tests."""

    folds: int = Field(3, ge=0, le=20, description="0 disables the backtest.")
    epochs: int | None = Field(None, ge=1, description="Epochs per fold (default: the model's).")


class RunnerConfig(_Frozen):
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


class GlobalModelConfig(_Frozen):
    """One network for all symbols of a run, or one per symbol, and how the global one trains.

    The global network sees every symbol's training windows (each symbol scaled with its own
    training statistics) and is evaluated, gated and registered per symbol like a per-symbol
    model; it is stored once and referenced by every symbol's version.
    """

    mode: Literal["auto", "per_symbol", "global", "both"] = Field(
        "auto", description="auto: global from ``auto_min_symbols`` symbols on, per-symbol "
        "below; both: a per-symbol and a global candidate version for every symbol.")
    auto_min_symbols: int = Field(
        3, ge=1, description="With mode auto: the fewest symbols that get a global model. "
        "Measured on 2, 4 and 7 real symbols (BENCHMARKS.md (g)): the same scores within "
        "0.3% CRPS, 0.67x, 0.43x and 0.36x the wall time; two symbols (the embedded sample) "
        "keep per-symbol models, whose versions do not change when another symbol joins.")
    batch_size: int = Field(1024, ge=1, description="Windows per gradient step.")
    windows_per_epoch: int = Field(
        50_000, ge=1, description="Training windows drawn afresh (seeded) for each epoch; "
        "fewer than the pool means an epoch sees a random sample of it.")
    validation_windows: int = Field(
        20_000, ge=1, description="A fixed, seeded sample of the validation windows that early "
        "stopping and checkpointing watch.")

    def uses(self, n_symbols: int) -> tuple[bool, bool]:
        """(train per-symbol models, train a global model) for a run of ``n_symbols``."""
        if self.mode == "auto":
            wide = n_symbols >= self.auto_min_symbols
            return not wide, wide
        return self.mode in ("per_symbol", "both"), self.mode in ("global", "both")


class ValidationConfig(_Frozen):
    """How strict validation is and what happens to rows that break a rule."""

    max_gap_business_days: int = Field(
        10, ge=1, description="Longest allowed step between a symbol's consecutive days, in "
        "business days (1 = next business day). 9/11 (5) and Hurricane Sandy (3) pass.")
    on_invalid: Literal["fail", "drop"] = Field(
        "fail", description="fail: store nothing; drop: quarantine offending rows, store the rest.")


class RetentionConfig(_Frozen):
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


class ReportConfig(_Frozen):
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


class RunConfig(_Frozen):
    """Everything one training run needs; the CLI, deployments and tests all build one of these."""

    home: Path = Path("data")
    input: Path | None = Field(None, description="Price file; omitted means the embedded sample.")
    format: InputFormat | None = Field(None, description="Detected from the header when omitted.")
    symbols: tuple[str, ...] = Field(
        (), description="Symbols to keep (tickers: letters, digits, '.', '-', a leading '^').")
    as_of: date | None = Field(None, description="Point in time: no row after it is read.")
    start: date | None = Field(None, description="First day to download (live Yahoo only).")
    validation: ValidationConfig = ValidationConfig()
    features: FeatureConfig = FeatureConfig()
    split: SplitConfig = SplitConfig()
    model: ModelConfig = ModelConfig()
    backtest: BacktestConfig = BacktestConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    runner: RunnerConfig = RunnerConfig()
    global_model: GlobalModelConfig = GlobalModelConfig()
    retention: RetentionConfig = RetentionConfig()
    report: ReportConfig = ReportConfig()

    @model_validator(mode="before")
    @classmethod
    def _moved_to_evaluation(cls, data: object) -> object:
        """Old files say ``features.ma_window``, ``model.shrink``, ``model.gate_z``: move them
        into ``evaluation`` (an explicit ``evaluation`` entry wins)."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        moved: dict = {}
        for section, keys in _MOVED_TO_EVALUATION.items():
            part = data.get(section)
            if isinstance(part, dict):
                moved.update({k: part[k] for k in keys if k in part})
                data[section] = drop_moved(section, part)
        if moved:
            given = data.get("evaluation") or {}
            if isinstance(given, BaseModel):
                given = given.model_dump()
            data["evaluation"] = {**moved, **given}
        return data

    @model_validator(mode="after")
    def _hybrid_needs_its_baseline(self) -> RunConfig:
        """The hybrid head corrects GARCH-t's distribution of the next log return."""
        f = self.features
        if self.model.head == "hybrid" and not (f.volatility and f.target == "return"
                                                 and f.returns == "log"):
            raise ValueError("model.head 'hybrid' needs features.volatility: true, target: "
                             "return and returns: log (it corrects GARCH-t's distribution of "
                             "the next log return); or choose model.head student_t or point")
        return self

    @field_validator("global_model", mode="before")
    @classmethod
    def _global_model_flag(cls, value: object) -> object:
        """The earlier boolean: true meant "also a global model", false "per-symbol only"."""
        if isinstance(value, bool):
            return {"mode": "both" if value else "per_symbol"}
        return value

    @field_validator("symbols", mode="before")
    @classmethod
    def _valid_symbols(cls, value: object) -> tuple[str, ...]:
        """Symbols become directory names: every entry point (CLI, YAML, UI) is checked here."""
        try:
            return normalize_symbols(value, "symbols")
        except InputError as error:
            raise ValueError(f"{error.rule}: {error.examples}") from None

    @property
    def input_path(self) -> Path:
        return self.input if self.input is not None else SAMPLE_PATH


def load_config(path: Path | None, **overrides: object) -> RunConfig:
    """Read a YAML/JSON config file (if any) and apply non-None overrides on top of it."""
    data: dict = {}
    if path is not None:
        try:
            data = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
            raise InputError(path, f"rule 'readable YAML/JSON config': {error}") from None
        if not isinstance(data, dict):
            raise InputError(path, "rule 'config is a mapping': expected keys such as model:, "
                                   f"features:; found {type(data).__name__}")
    for key, value in overrides.items():
        if value is None:
            continue
        if key == "epochs":
            data.setdefault("model", {})["epochs"] = value
        elif key == "on_invalid":
            data.setdefault("validation", {})["on_invalid"] = value
        else:
            data[key] = value
    try:
        return RunConfig.model_validate(data)
    except ValidationError as error:
        raise ConfigError(path or "options", error) from None


class ConfigError(InputError):
    """A configuration (file, flags or deployment parameters) that RunConfig refuses."""

    def __init__(self, source: Path | str, error: ValidationError) -> None:
        problems = "\n".join(f"- {'.'.join(str(p) for p in e['loc']) or '(top)'}: "
                             f"{str(e['msg']).removeprefix('Value error, ')}"
                             for e in error.errors())
        super().__init__(source, f"rule 'valid config': {error.error_count()} problem(s)",
                         problems)


class DegradationPolicy(_Frozen):
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


# What a split implies for a symbol's history (validation and features both ask).
def split_sizes(n_samples: int, split: SplitConfig) -> tuple[int, int, int]:
    """Chronological sizes (train, validation, test): the test window is always the last."""
    n_test = max(1, round(n_samples * split.test))
    n_val = max(1, round(n_samples * split.validation))
    return n_samples - n_val - n_test, n_val, n_test


def min_training_windows(features: FeatureConfig) -> int:
    """Fewest training windows a symbol needs for a meaningful fit."""
    return max(2 * features.window, 30)


def min_history_days(features: FeatureConfig, split: SplitConfig) -> int:
    """Fewest days of prices per symbol that give enough training windows (validation uses it)."""
    first = 1 if features.target == "return" else 0
    need = min_training_windows(features)
    days = need + first + features.window
    while split_sizes(days - first - features.window, split)[0] < need:
        days += 1
    return days
