"""Who made a version's forecast, in one wording for every place a person reads it.

The point forecast is ``naive`` (shrink alpha 0: "tomorrow = today") or ``lstm``, with its test
RMSE over naive's; the range is the distribution the gate chose (``lstm``, ``garch``, ``ewma``,
``constant``) with its test CRPS over constant volatility's and over GARCH(1,1)-t's, and how often
its 80% interval held. `closecast run`, `models list`, report.md/html and the Prefect summary
artifact all print :func:`provenance_text`, so the words cannot drift apart.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass

from tasks.core.version_files import METRICS_FILE, Metrics

NO_RANGE = "none"  # a version saved before distributions, or without a distribution section
# The order counts are listed in when they tie: the network first, then the baselines.
SOURCE_ORDER = ("lstm", "garch", "ewma", "constant", NO_RANGE)


@dataclass(frozen=True)
class Provenance:
    """The point forecast's and the range's source on the test window, with their ratios."""

    point: str | None  # naive | lstm; None when the version has no readable metrics
    rmse_vs_naive: float | None
    source: str  # lstm | garch | ewma | constant | none
    crps_vs_constant: float | None = None
    crps_vs_garch_t: float | None = None
    coverage_80: float | None = None

    def as_dict(self) -> dict:
        """Plain Python values (what table artifacts and JSON accept)."""
        return asdict(self)


def provenance(metrics: Metrics | None) -> Provenance:
    """A version's :class:`Provenance` from its metrics (any age: missing parts are None;
    ``None``: metrics that could not be read)."""
    if metrics is None:
        return Provenance(None, None, NO_RANGE)
    # alpha 0 = the naive forecast; a version older than the shrink factor is the raw LSTM
    point = "naive" if metrics.shrink_alpha == 0 else "lstm"
    if metrics.distribution is None:
        return Provenance(point, metrics.rmse_vs_naive, NO_RANGE)
    model, garch = metrics.distribution.model, metrics.distribution.garch
    return Provenance(
        point, metrics.rmse_vs_naive, model.source,
        crps_vs_constant=model.crps_vs_constant,
        crps_vs_garch_t=model.crps / garch.crps if garch is not None and garch.crps else None,
        coverage_80=model.coverage.get("80"))


def provenance_text(metrics: Metrics | None) -> str:
    """One line: ``point = naive (x1.000); range: lstm, CRPS x0.930 vs constant, x0.970 vs
    GARCH-t; 80% held 81% of test days`` (``range: none`` for a version without one)."""
    p = provenance(metrics)
    point = "point = ?" if p.point is None else f"point = {p.point} (x{p.rmse_vs_naive:.3f})"
    if p.source == NO_RANGE:
        return f"{point}; range: none (no distribution in {METRICS_FILE})"
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


def version_line(symbol: str, version: int, forecast: str, promoted: bool,
                 fallback: str | None = None) -> str:
    """`closecast run`'s line for a registered version (``forecast``: :func:`provenance_text`;
    ``fallback``: what a fallback champion serves instead)."""
    verdict = ("PROMOTED" if promoted else f"FALLBACK CHAMPION: serves {fallback}" if fallback
               else "kept, not promoted")
    return f"{symbol} v{version}: {forecast}  {verdict}"


def run_summary(promoted: Iterable[bool], sources: Iterable[str],
                fallbacks: int = 0) -> str:
    """A run's closing line: ``2 version(s) registered, 2 promoted; ranges: 1 lstm, 1 garch``
    (and how many symbols got a fallback champion, when any did)."""
    flags = list(promoted)
    fallback = f", {fallbacks} fallback champion(s)" if fallbacks else ""
    return (f"{len(flags)} version(s) registered, {sum(map(bool, flags))} promoted{fallback}; "
            f"{source_counts(sources)}")
