"""A trained forecaster: its network under a head, the feature config and scaler it reads, the
shrink factor of its point forecast and the baseline fits its distribution may carry; saved to
and loaded from a version directory, asked for forecasts of given days.

Evaluation, backtests, the global model, predict, the daily forecasts and the reports ask it;
what differs between heads stays in ``heads``.
"""

from __future__ import annotations

import json
import threading
import weakref
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from tasks.core.config import drop_moved
from tasks.core.training_config import EvaluationConfig, FeatureConfig
from tasks.core.version_files import SavedDistribution, read_distribution
from tasks.distribution.distributions import ReturnDist
from tasks.features.feature_table import feature_rows
from tasks.features.market_state import universe_state, with_market
from tasks.features.origin_inputs import CALENDAR_HISTORY
from tasks.features.scaler import Scaler
from tasks.features.windows import OFFSETS, window_array
from tasks.forecaster.heads import Head, head_of
from tasks.forecaster.network import load_model
from tasks.forecaster.shrink import diebold_mariano, gated_shrink, rebuild_close, shrink

MODEL_FILE = "model.keras"
SCALER_FILE = "scaler.json"
CONFIG_FILE = "config.json"
UNIVERSE_KEY = "market_universe"  # config.json: the symbols of the market state it reads


@dataclass(frozen=True, eq=False)
class Network:
    """A built or loaded Keras network and its head."""

    model: object
    head: Head

    @classmethod
    def of(cls, model) -> Network:
        return cls(model, head_of(model))

    @classmethod
    def load(cls, path: str | Path) -> Network:
        """A saved network (``network.load_model``: a file is loaded once per process)."""
        return cls.of(load_model(path))

    def outputs(self, x: np.ndarray) -> np.ndarray:
        """The last layer's outputs ``(n, head.outputs)`` for windows ``x``."""
        x = np.asarray(x, dtype="float32")
        return np.asarray(_forward(self.model)(x)).reshape(len(x), -1)

    def params(self, x: np.ndarray, offsets: np.ndarray | None = None) -> np.ndarray:
        """The head's parameters of windows ``x``: the scaled point forecast in column 0 and,
        for a distribution, a Student-t's raw (loc, scale, dof); ``offsets``: GARCH-t's per
        row, which a head correcting GARCH-t reads (``heads.HybridHead``)."""
        return self.head.params(self.outputs(x), offsets)


_USES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_USES_LOCK = threading.Lock()


def _forward(model):
    """The model's inference call: eager on its first use; from the second use on, one
    tf.function traced once for any number of windows (a global model scores every symbol).

    Eager costs ~65 ms per 1,700 windows, the traced call ~20 ms after a one-off ~100 ms
    trace; ``model.predict`` would retrace per new length ("triggered tf.function retracing").
    """
    with _USES_LOCK:
        uses = _USES.get(model, 0)
        if isinstance(uses, int) and uses >= 1:
            import tensorflow as tf

            shape, ref = (None, *model.input_shape[1:]), weakref.ref(model)  # no cycle
            uses = tf.function(lambda v: ref()(v, training=False), reduce_retracing=True,
                               input_signature=[tf.TensorSpec(shape, tf.float32)])
        _USES[model] = uses if not isinstance(uses, int) else uses + 1
    return uses if callable(uses) else (lambda v: model(v, training=False))


def frame_offsets(rows: pd.DataFrame) -> np.ndarray | None:
    """GARCH-t's offsets of a feature table's rows, or None when it has none."""
    return rows[list(OFFSETS)].to_numpy("float64") if OFFSETS[0] in rows else None


def garch_offsets_of(variance: np.ndarray, nu: float, scaler: Scaler) -> np.ndarray:
    """GARCH-t's offsets (scaled units) for rows of GARCH variance ``variance``."""
    from tasks.distribution.hybrid_inputs import garch_t_offsets

    return garch_t_offsets(variance, nu, scaler.mean, scaler.scale)


def saved_offsets(saved: SavedDistribution | None, prices: pd.DataFrame, dates: pd.Series,
                  scaler: Scaler) -> np.ndarray | None:
    """GARCH-t's offsets on the given target dates from a version's saved GARCH fit (exact: the
    variance the gate's baseline rolls); dates up to the business day after the last price."""
    from tasks.distribution.gate import price_returns, saved_baseline_variance

    if saved is None or "garch" not in saved.baselines:
        return None
    var = saved_baseline_variance(saved, price_returns(prices), "garch")
    wanted = pd.to_datetime(pd.Series(dates))
    return garch_offsets_of(var.loc[wanted].to_numpy(), saved.params("garch")["nu"], scaler)


def point_closes(params: np.ndarray, base_close: np.ndarray, scaler: Scaler,
                 features: FeatureConfig) -> np.ndarray:
    """The unshrunk point forecast in prices from a head's parameters."""
    return rebuild_close(params[:, 0], base_close, scaler, features.target, features.returns)


def return_dist(head: Head, params: np.ndarray, closes: np.ndarray, base_close: np.ndarray,
                scaler: Scaler, features: FeatureConfig) -> ReturnDist | None:
    """The head's distribution of the log return, centred on the (shrunk) point forecast
    ``closes``; None for a head without one or a target that is not the log return."""
    if features.target != "return" or features.returns != "log":
        return None
    return head.dist(params, np.log(closes / base_close), scaler.scale)


@dataclass(frozen=True)
class NetworkForecast:
    """A network's forecasts of every row of a feature table, gated toward naive on
    validation: head parameters, unshrunk closes, the shrink factor and its DM, the shrunk
    point forecast, and the network's own distribution (None: it gives no spread)."""

    raw: np.ndarray
    closes: np.ndarray
    alpha: float
    dm: float
    point: np.ndarray
    dist: ReturnDist | None


def network_forecast(network: Network, frame: pd.DataFrame, scaler: Scaler,
                     features: FeatureConfig, evaluation: EvaluationConfig,
                     windows: np.ndarray | None = None,
                     rows: np.ndarray | None = None) -> NetworkForecast:
    """The network on every row of ``frame``; the shrink factor is fit on validation rows
    (``windows``: the frame's ``window_array`` when already built). ``rows``: only these rows
    (a mask holding the validation rows), the others NaN: scoring reads no training row's
    forecast, and the network's pass over a table's training rows was most of its cost. Each
    row's forecast does not depend on the others (tests/test_evaluate.py; bit for bit on 66
    real symbols)."""
    rows = np.ones(len(frame), dtype=bool) if rows is None else np.asarray(rows, dtype=bool)
    val = (frame["split"] == "validation").to_numpy()
    if (val & ~rows).any():
        raise ValueError("the shrink factor needs the network on every validation row")
    windows = (window_array(frame if rows.all() else frame[rows]) if windows is None
               else windows[rows])
    offsets = frame_offsets(frame)
    raw = network.params(windows, None if offsets is None else offsets[rows])
    base, actual = frame["base_close"].to_numpy(), frame["close"].to_numpy()
    closes = _on_rows(point_closes(raw, base[rows], scaler, features), rows)
    alpha, dm = (gated_shrink(closes[val], base[val], actual[val], evaluation.gate_z)
                 if evaluation.shrink else (1.0, diebold_mariano(closes[val], base[val],
                                                                  actual[val])))
    point = shrink(closes, base, alpha)
    dist = return_dist(network.head, raw, point[rows], base[rows], scaler, features)
    return NetworkForecast(_on_rows(raw, rows), closes, alpha, dm, point, None if dist is None
                           else ReturnDist(*(_on_rows(a, rows) for a in (dist.loc, dist.scale,
                                                                         dist.dof))))


def _on_rows(values: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``values`` of the ``rows`` of a table (a mask) in an array of every row, NaN elsewhere."""
    if rows.all():
        return values
    out = np.full((len(rows), *values.shape[1:]), np.nan)
    out[rows] = values
    return out


@dataclass(frozen=True)
class DayForecasts:
    """A forecaster's forecasts of given target days: each day's previous close, actual close,
    point forecast and distribution (None: the version has no distribution)."""

    base: np.ndarray
    actual: np.ndarray
    point: np.ndarray
    dist: ReturnDist | None


@dataclass(frozen=True)
class Forecaster:
    """A registered version's forecaster: network, features, scaler, shrink factor ``alpha``
    and ``distribution`` (the version's saved distribution: the source it serves and the
    baselines' fits; None for a version registered before distributions existed)."""

    network: Network
    features: FeatureConfig
    scaler: Scaler
    alpha: float
    distribution: SavedDistribution | None = None
    universe: tuple[str, ...] = ()  # the symbols whose market state it reads (features.market)

    def inputs(self, prices: pd.DataFrame, lake: Path) -> pd.DataFrame:
        """``prices`` with what its channels read besides them: the market state of its
        universe from ``lake``, up to ``prices``' last day (``features.market``)."""
        if not self.features.market:
            return prices
        as_of = prices["date"].iloc[-1].date() if len(prices) else None
        return with_market(prices, universe_state(lake, self.universe, as_of))

    @property
    def source(self) -> str | None:
        """What the version's range comes from: "lstm" (its network) or a baseline's name."""
        return self.distribution.source if self.distribution else None

    @property
    def history_needed(self) -> int:
        """Rows of history a forecast needs: the window, the longest look-back of a channel
        (a rolling window, the calendar channels' year and their EWMA), diffs."""
        calendar = CALENDAR_HISTORY if self.features.calendar else 0
        return self.features.window + max(*self.features.rolling, calendar, 0) + 2

    @classmethod
    def load(cls, directory: Path, network_file: Path | None = None) -> Forecaster:
        """The forecaster saved in a version directory (``network_file``: where its network
        is when not its own model.keras, e.g. a global model's shared file)."""
        network = Network.load(network_file or directory / MODEL_FILE)
        features, scaler, alpha, universe = load_settings(directory)
        return cls(network, features, scaler, alpha, read_distribution(directory), universe)

    def serving_baselines(self, point: str | None, range_: str | None) -> Forecaster:
        """This forecaster serving baselines instead of its own forecast: the naive point
        forecast (``point`` "naive": shrink factor 0) and a baseline's range (``range_``: its
        name, whose fit the saved distribution holds); None keeps its own."""
        if point not in (None, "naive"):
            raise ValueError(f"unknown point fallback {point!r}")
        distribution = self.distribution
        if range_ is not None:
            if distribution is None or range_ not in distribution.baselines:
                raise ValueError(f"no saved fit of the {range_!r} baseline to serve")
            distribution = distribution.model_copy(update={"source": range_})
        return replace(self, alpha=0.0 if point == "naive" else self.alpha,
                       distribution=distribution)

    def garch(self, prices: pd.DataFrame) -> tuple[dict, float] | None:
        """The GARCH fit a head correcting GARCH-t reads and GARCH's variance of the day after
        the last price (None for other heads, or a version saved without a distribution): the
        baseline rolled on without refitting."""
        from tasks.distribution.gate import next_baseline_variance

        if not self.network.head.packs_targets or self.distribution is None:
            return None
        return (self.distribution.params("garch"),
                next_baseline_variance(self.distribution, prices, "garch"))

    def forecast_days(self, prices: pd.DataFrame, dates: pd.Series) -> DayForecasts:
        """The version's point forecast and distribution of each of ``dates`` (target days
        with a full window in ``prices``): its network's own distribution when it serves it,
        else its baseline's spread centred on its point forecast."""
        from tasks.distribution.gate import saved_baseline_dist

        rows = feature_rows(prices, self.features, self.scaler)
        rows = rows[rows["date"].isin(pd.to_datetime(dates))].reset_index(drop=True)
        if len(rows) != len(dates):
            raise ValueError(f"the forecaster cannot forecast all {len(dates)} dates")
        base, actual = rows["base_close"].to_numpy(), rows["close"].to_numpy()
        saved = self.distribution
        raw = self.network.params(window_array(rows),
                                  saved_offsets(saved, prices, rows["date"], self.scaler))
        point = shrink(point_closes(raw, base, self.scaler, self.features), base, self.alpha)
        if saved is None:
            dist = None
        elif saved.source == "lstm":
            dist = return_dist(self.network.head, raw, point, base, self.scaler, self.features)
        else:
            spread = saved_baseline_dist(saved, prices, rows["date"])
            dist = ReturnDist(np.log(point / base), spread.scale, spread.dof)
        return DayForecasts(base, actual, point, dist)


def load_settings(directory: Path) -> tuple[FeatureConfig, Scaler, float, tuple[str, ...]]:
    """A saved forecaster's feature config, scaler, shrink factor (1.0 when absent) and market
    universe (empty when absent)."""
    config = json.loads((directory / CONFIG_FILE).read_text())
    # a version saved before the volatility channels existed was built without them
    features = FeatureConfig.model_validate(
        {"volatility": False, **drop_moved("features", config["features"])})
    scaler = Scaler.from_json((directory / SCALER_FILE).read_text())
    return (features, scaler, float(config.get("shrink_alpha", 1.0)),
            tuple(config.get(UNIVERSE_KEY, ())))


def save_forecaster(directory: Path, scaler: Scaler, configs: dict[str, dict],
                    alpha: float, universe: tuple[str, ...] = ()) -> None:
    """A forecaster's own files beside its network: scaler.json and config.json (``configs``:
    the features, split, model and evaluation configs that made it, as JSON; ``universe``: the
    symbols of its market state, kept only where it has one)."""
    (directory / SCALER_FILE).write_text(scaler.to_json())
    extra = {UNIVERSE_KEY: list(universe)} if universe else {}
    (directory / CONFIG_FILE).write_text(json.dumps({**configs, "shrink_alpha": alpha, **extra},
                                                    indent=2))
