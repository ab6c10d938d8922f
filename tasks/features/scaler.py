"""The scaler fit on training rows only: StandardScaler's parameters and the volatility fit."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from sklearn.preprocessing import StandardScaler


@dataclass(frozen=True)
class Scaler:
    """scikit-learn's StandardScaler fit on training values only, kept as its parameters (a
    small frozen record that cache keys hash) and saved beside the model as scaler.json.

    ``mean``/``scale`` belong to the modelled series (channel 0, also the target); the extra
    channels (OHLCV, rolling statistics) have theirs in ``extra_mean``/``extra_scale``. A
    constant channel gets scale 1, as StandardScaler gives it.
    """

    mean: float
    scale: float
    extra_mean: tuple[float, ...] = ()
    extra_scale: tuple[float, ...] = ()
    # The volatility channels' training fit (``VOLATILITY_FIT`` order); empty: no such channels
    volatility: tuple[float, ...] = ()
    # The volatility baselines' training fit (``volatility.fit_baselines``) as JSON: the gate
    # scores with it instead of fitting GARCH again on the same rows; empty: none kept
    baselines: str = ""

    def baseline_params(self) -> dict | None:
        """The baselines' training fit, or None when the scaler keeps none."""
        return json.loads(self.baselines) if self.baselines else None

    @classmethod
    def fit(cls, values: np.ndarray, volatility: tuple[float, ...] = ()) -> Scaler:
        """Fit on ``(n,)`` or ``(n, channels)`` training values (``volatility``: kept as is)."""
        from sklearn.preprocessing import StandardScaler  # its import sets KMP_* variables

        fitted = StandardScaler().fit(np.asarray(values, dtype="float64").reshape(len(values), -1))
        mean, scale = fitted.mean_, fitted.scale_
        return cls(float(mean[0]), float(scale[0]), tuple(float(v) for v in mean[1:]),
                   tuple(float(v) for v in scale[1:]), tuple(volatility))

    def standard_scaler(self) -> StandardScaler:
        """The fitted StandardScaler these parameters describe (every channel)."""
        from sklearn.preprocessing import StandardScaler

        fitted = StandardScaler()
        fitted.mean_ = np.array([self.mean, *self.extra_mean])
        fitted.scale_ = np.array([self.scale, *self.extra_scale])
        fitted.var_ = fitted.scale_ ** 2
        fitted.n_features_in_ = len(fitted.mean_)
        fitted.n_samples_seen_ = 0  # not recorded; transform and inverse never read it
        return fitted

    def transform(self, values: np.ndarray) -> np.ndarray:
        """Scale the modelled series (channel 0), any shape."""
        return (values - self.mean) / self.scale

    def transform_all(self, values: np.ndarray) -> np.ndarray:
        """Scale a ``(n, channels)`` array channel by channel: ``standard_scaler().transform``'s
        arithmetic (subtract the mean, divide by the scale, in float64), without its checks (a
        forecast path scales a window per symbol and day)."""
        scaled = np.array(values, dtype="float64")  # a copy: the caller's array is kept
        scaled -= np.array([self.mean, *self.extra_mean])
        scaled /= np.array([self.scale, *self.extra_scale])
        return scaled

    def inverse(self, values: np.ndarray) -> np.ndarray:
        """Undo ``transform`` (channel 0), any shape."""
        return values * self.scale + self.mean

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Scaler:
        """Read scaler.json; older files have no ``extra_*`` or ``volatility``."""
        data = json.loads(text)
        return cls(data["mean"], data["scale"], tuple(data.get("extra_mean", ())),
                   tuple(data.get("extra_scale", ())), tuple(data.get("volatility", ())),
                   data.get("baselines", ""))
