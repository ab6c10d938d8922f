"""The one typed configuration of a closecast run, validated once at the flow boundary."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from tasks.core.config_base import FrozenConfig
from tasks.core.errors import InputError
from tasks.core.operations_config import (
    ReportConfig,
    RetentionConfig,
    RunnerConfig,
    ValidationConfig,
)
from tasks.core.symbols import normalize_symbols
from tasks.core.training_config import (
    BacktestConfig,
    EvaluationConfig,
    FeatureConfig,
    GlobalModelConfig,
    ModelConfig,
    SplitConfig,
)

SAMPLE_PATH = (Path(__file__).resolve().parents[2] / "data" / "sample"
               / "prices-split-adjusted.csv")

InputFormat = Literal["kaggle", "yahoo-csv", "yahoo"]


# Where these settings lived before ``RunConfig.evaluation``: section -> keys moved from it.
_MOVED_TO_EVALUATION = {"features": ("ma_window",), "model": ("shrink", "gate_z")}


def drop_moved(section: str, value: object) -> object:
    """A features/model mapping without the keys that moved to ``evaluation`` (saved versions
    and old config files still carry them)."""
    if isinstance(value, dict):
        return {k: v for k, v in value.items() if k not in _MOVED_TO_EVALUATION[section]}
    return value


class RunConfig(FrozenConfig):
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

    @model_validator(mode="before")
    @classmethod
    def _features_follow_the_gap_limit(cls, data: object) -> object:
        """One setting, ``validation.max_gap_business_days``: longer gaps are reported by
        validation and spanned by no window (``features.max_gap_business_days``, set here)."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        validation, features = data.get("validation") or {}, data.get("features") or {}
        limit = (validation.max_gap_business_days if isinstance(validation, BaseModel)
                 else validation.get("max_gap_business_days",
                                     ValidationConfig().max_gap_business_days))
        given = features.model_dump() if isinstance(features, BaseModel) else dict(features)
        explicit = (features.model_fields_set if isinstance(features, BaseModel) else given)
        if "max_gap_business_days" in explicit and given["max_gap_business_days"] != limit:
            raise ValueError("features.max_gap_business_days follows "
                             "validation.max_gap_business_days: set that one")
        data["features"] = {**given, "max_gap_business_days": limit}
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
