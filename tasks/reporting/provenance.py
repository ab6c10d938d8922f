"""Who made a version's forecast, in one wording for every place a person reads it.

The point forecast is ``naive`` (shrink alpha 0: "tomorrow = today") or ``lstm``, with its test
RMSE over naive's; the range is the distribution the gate chose (``lstm``, ``garch``, ``ewma``,
``constant``) with its test CRPS over constant volatility's and over GARCH(1,1)-t's, and how often
its 80% interval held. `closecast run`, `models list`, report.md/html and the Prefect summary
artifact all print :func:`provenance_text`, so the words cannot drift apart.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass

NO_RANGE = "none"  # a version saved before distributions, or without a distribution section
# The order counts are listed in when they tie: the network first, then the baselines.
SOURCE_ORDER = ("lstm", "garch", "ewma", "constant", NO_RANGE)


@dataclass(frozen=True)
class Provenance:
    """The point forecast's and the range's source on the test window, with their ratios."""

    point: str | None  # naive | lstm; None when metrics.json has no RMSE ratio
    rmse_vs_naive: float | None
    source: str  # lstm | garch | ewma | constant | none
    crps_vs_constant: float | None = None
    crps_vs_garch_t: float | None = None
    coverage_80: float | None = None

    def as_dict(self) -> dict:
        """Plain Python values (what table artifacts and JSON accept)."""
        return asdict(self)


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) \
        else None


def _ratio(numerator: object, denominator: object) -> float | None:
    top, bottom = _number(numerator), _number(denominator)
    return top / bottom if top is not None and bottom else None


def provenance(metrics: Mapping) -> Provenance:
    """A version's :class:`Provenance` from its metrics.json (any age: missing parts are None)."""
    ratio = _number(metrics.get("rmse_vs_naive"))
    # alpha 0 = the naive forecast; a version older than the shrink factor is the raw LSTM
    point = None if ratio is None else \
        "naive" if metrics.get("shrink_alpha", 1.0) == 0 else "lstm"
    dist = metrics.get("distribution") or {}
    model = dist.get("model") or {}
    if not model:
        return Provenance(point, ratio, NO_RANGE)
    garch = dist.get("garch") or {}
    return Provenance(
        point, ratio, str(model.get("source") or "?"),
        crps_vs_constant=_number(model.get("crps_vs_constant")),
        crps_vs_garch_t=_ratio(model.get("crps"), garch.get("crps")),
        coverage_80=_number((model.get("coverage") or {}).get("80")))


def provenance_text(metrics: Mapping) -> str:
    """One line: ``point = naive (x1.000); range: lstm, CRPS x0.930 vs constant, x0.970 vs
    GARCH-t; 80% held 81% of test days`` (``range: none`` for a version without one)."""
    p = provenance(metrics)
    point = "point = ?" if p.point is None else f"point = {p.point} (x{p.rmse_vs_naive:.3f})"
    if p.source == NO_RANGE:
        return f"{point}; range: none (no distribution in metrics.json)"
    scores = [f"x{p.crps_vs_constant:.3f} vs constant" if p.crps_vs_constant is not None
              else None,
              f"x{p.crps_vs_garch_t:.3f} vs GARCH-t" if p.crps_vs_garch_t is not None else None]
    shown = [s for s in scores if s]
    text = f"{point}; range: {p.source}" + (f", CRPS {', '.join(shown)}" if shown else "")
    if p.coverage_80 is not None:
        text += f"; 80% held {p.coverage_80 * 100:.0f}% of test days"
    return text


def source_counts(sources: Iterable[str]) -> str:
    """How many versions carry each range source (``Provenance.source``): ``ranges: 1 lstm,
    1 garch``; ties in the order lstm, garch, ewma, constant, none."""
    counts = Counter(sources)
    if not counts:
        return "ranges: none registered"
    rank = {name: i for i, name in enumerate(SOURCE_ORDER)}
    ordered = sorted(counts, key=lambda s: (-counts[s], rank.get(s, len(rank)), s))
    return "ranges: " + ", ".join(f"{counts[s]} {s}" for s in ordered)


def version_line(symbol: str, version: int, forecast: str, promoted: bool) -> str:
    """`closecast run`'s line for a registered version (``forecast``: :func:`provenance_text`)."""
    return f"{symbol} v{version}: {forecast}  {'PROMOTED' if promoted else 'kept, not promoted'}"


def run_summary(promoted: Iterable[bool], sources: Iterable[str]) -> str:
    """A run's closing line: ``2 version(s) registered, 2 promoted; ranges: 1 lstm, 1 garch``."""
    flags = list(promoted)
    return (f"{len(flags)} version(s) registered, {sum(map(bool, flags))} promoted; "
            f"{source_counts(sources)}")
