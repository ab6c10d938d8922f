"""Monitor: live scores of the issued forecasts, the degradation verdict, and their artifacts."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.core.markdown import escape
from tasks.core.operations_config import DegradationPolicy
from tasks.core.version_files import read_manifest
from tasks.distribution.quantile_scores import LEVELS
from tasks.registry.registry import list_versions, read_champion, version_dir
from tasks.serving.ledger import read_ledger

WINDOWS = (20, 60)


@dataclass(frozen=True)
class MonitorRow:
    """One symbol's live scores over its last 20 and 60 scored forecasts (None: no data, as
    for a symbol none of whose forecasts has been scored yet)."""

    symbol: str
    champion: int | None
    issued: int
    scored: int
    last_scored: str | None
    versions_60: str = ""
    rmse_20: float | None = None
    naive_rmse_20: float | None = None
    rmse_ratio_20: float | None = None
    rmse_60: float | None = None
    naive_rmse_60: float | None = None
    rmse_ratio_60: float | None = None
    crps_ratio_20: float | None = None
    crps_ratio_60: float | None = None
    crps_const_vol_60: float | None = None
    coverage_50_60: float | None = None
    coverage_80_60: float | None = None
    coverage_95_60: float | None = None
    degraded: str = ""


@dataclass(frozen=True)
class MonitorReport:
    """Every symbol's row, and the symbols to retrain with the reason for each."""

    as_of: str | None
    rows: list[MonitorRow]
    retrain: dict[str, str] = field(default_factory=dict)
    # Per symbol with scored forecasts, its rolling ratios (``rolling_frame``), read from the
    # same ledger as its row: what the monitor's plot draws.
    rolling: dict[str, pd.DataFrame] = field(default_factory=dict, repr=False, compare=False)


def _value(x: float | None) -> float | None:
    return None if x is None or not np.isfinite(x) else round(float(x), 4)


SCORES = ("error", "naive_error", "crps", "crps_const_vol", *[f"covered_{x}" for x in LEVELS])


def score_arrays(scored: pd.DataFrame) -> dict[str, np.ndarray]:
    """The ``SCORES`` columns of scored forecasts as float arrays, in the rows' order."""
    return {name: scored[name].to_numpy(dtype="float64") for name in SCORES}


def last(scores: Mapping[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
    """The last ``n`` (>= 1) of each array: ``DataFrame.tail(n)``'s rows."""
    return {name: values[-n:] for name, values in scores.items()}


def window_scores(scores: Mapping[str, np.ndarray]) -> dict[str, float]:
    """RMSE, naive RMSE, their ratio, CRPS ratio and coverage over the rows of ``scores``
    (``score_arrays``)."""
    error, naive_error = scores["error"], scores["naive_error"]
    rmse = float(np.sqrt(np.mean(error ** 2))) if len(error) else np.nan
    naive = float(np.sqrt(np.mean(naive_error ** 2))) if len(error) else np.nan
    crps, const = scores["crps"], scores["crps_const_vol"]
    both = ~np.isnan(crps) & ~np.isnan(const)
    crps_ratio = crps[both].mean() / const[both].mean() if both.any() else np.nan
    known_const = const[~np.isnan(const)]
    out = {"rmse": rmse, "naive_rmse": naive,
           "rmse_ratio": rmse / naive if naive and np.isfinite(naive) else np.nan,
           "crps_ratio": crps_ratio, "n_crps": int(both.sum()),
           "crps_const_vol": known_const.mean() if len(known_const) else np.nan}
    for level in LEVELS:
        covered = scores[f"covered_{level}"]
        covered = covered[~np.isnan(covered)]
        out[f"coverage_{level}"] = covered.mean() if len(covered) else np.nan
        out[f"n_coverage_{level}"] = len(covered)
    return out


def scored_rows(ledger: pd.DataFrame) -> pd.DataFrame:
    """Scored forecasts in the order their truth arrived."""
    done = ledger[ledger["scored_at"].notna()]
    if (done["actual_date"].is_monotonic_increasing and done["as_of"].is_monotonic_increasing
            and done["as_of"].is_unique):
        return done  # one forecast a day, in order (the ledger's own order): sorted already
    return done.sort_values(["actual_date", "as_of", "version"], kind="stable")


def degradation(ledger: pd.DataFrame, champion: int | None, policy: DegradationPolicy) -> str:
    """Why the champion's live scores call for a retrain ('' when they do not).

    Only the champion's own forecasts count, so a freshly promoted version starts clean.
    """
    done = scored_rows(ledger)
    return verdict(score_arrays(done), done["version"].to_numpy(), champion, policy)


def verdict(scores: Mapping[str, np.ndarray], versions: np.ndarray, champion: int | None,
            policy: DegradationPolicy) -> str:
    """``degradation`` from the scores and versions of the scored forecasts (``scored_rows``'
    order): the champion's rows among them are in the order its own would be sorted in."""
    if champion is None:
        return ""
    own = last({name: values[versions == champion] for name, values in scores.items()},
               policy.window)
    scored = len(own["error"])
    if scored < policy.min_scored:
        return ""
    s, reasons = window_scores(own), []
    if s["rmse_ratio"] > policy.max_rmse_ratio:
        reasons.append(f"RMSE / naive {s['rmse_ratio']:.3f} > {policy.max_rmse_ratio}")
    if s["n_crps"] >= policy.min_scored and s["crps_ratio"] > policy.max_crps_ratio:
        reasons.append(f"CRPS / constant volatility {s['crps_ratio']:.3f} > "
                       f"{policy.max_crps_ratio}")
    low, high = policy.coverage_80
    if s["n_coverage_80"] >= policy.min_scored and not low <= s["coverage_80"] <= high:
        reasons.append(f"80% interval coverage {s['coverage_80']:.3f} outside [{low}, {high}]")
    if not reasons:
        return ""
    return (f"v{champion} over its last {scored} scored forecasts: " + "; ".join(reasons))


def recently_trained(models: Path, symbol: str, as_of: date, cooldown_days: int) -> bool:
    """True when the symbol's latest version was trained as of a date within the cooldown."""
    versions = list_versions(models, symbol)
    if not versions or cooldown_days == 0:
        return False
    trained = pd.Timestamp(read_manifest(version_dir(models, symbol, versions[-1])).as_of)
    return (pd.Timestamp(as_of) - trained).days < cooldown_days


def monitor_row(ledger: pd.DataFrame, done: pd.DataFrame, symbol: str, champion: int | None,
                policy: DegradationPolicy) -> MonitorRow:
    """One symbol's row from its ledger and its scored rows (``scored_rows``): windows over
    all its scored forecasts, verdict over the champion's."""
    if done.empty:  # nothing has come true yet: no scores, nothing to judge
        return MonitorRow(symbol, champion, issued=len(ledger), scored=0, last_scored=None)
    scores, versions = score_arrays(done), done["version"].to_numpy()
    w = {n: window_scores(last(scores, n)) for n in WINDOWS}
    day = done["actual_date"].iloc[-1].date().isoformat()
    return MonitorRow(
        symbol=symbol, champion=champion, issued=len(ledger), scored=len(done),
        last_scored=day, versions_60=",".join(str(v) for v in np.unique(versions[-60:])),
        rmse_20=_value(w[20]["rmse"]), naive_rmse_20=_value(w[20]["naive_rmse"]),
        rmse_ratio_20=_value(w[20]["rmse_ratio"]), rmse_60=_value(w[60]["rmse"]),
        naive_rmse_60=_value(w[60]["naive_rmse"]), rmse_ratio_60=_value(w[60]["rmse_ratio"]),
        crps_ratio_20=_value(w[20]["crps_ratio"]), crps_ratio_60=_value(w[60]["crps_ratio"]),
        crps_const_vol_60=_value(w[60]["crps_const_vol"]),
        coverage_50_60=_value(w[60]["coverage_50"]), coverage_80_60=_value(w[60]["coverage_80"]),
        coverage_95_60=_value(w[60]["coverage_95"]),
        degraded=verdict(scores, versions, champion, policy))


def monitor(home: Path, symbols: list[str], policy: DegradationPolicy | None = None,
            as_of: date | None = None,
            ledgers: Mapping[str, pd.DataFrame] | None = None) -> MonitorReport:
    """Rows for the symbols, and which to retrain (degraded, retraining on, not cooling down);
    each symbol's ledger is read once, for its row and its rolling scores (or taken from
    ``ledgers``: the daily flow's ledger pass has them)."""
    lake, models, policy = home / "lake", home / "models", policy or DegradationPolicy()
    rows, retrain, rolling = [], {}, {}
    for symbol in symbols:
        record = read_champion(models, symbol)
        given = ledgers.get(symbol) if ledgers is not None else None
        ledger = given if given is not None else read_ledger(lake, symbol)
        done = scored_rows(ledger)
        row = monitor_row(ledger, done, symbol,
                          None if record is None else int(record["version"]), policy)
        rows.append(row)
        if row.scored:
            rolling[symbol] = rolling_frame(done)
        if row.degraded and policy.retrain and not (
                as_of and recently_trained(models, symbol, as_of, policy.cooldown_days)):
            retrain[symbol] = row.degraded
    return MonitorReport(as_of.isoformat() if as_of else None, rows, retrain, rolling)


def rolling_mean(values: np.ndarray, n: int) -> np.ndarray:
    """The mean of the last ``n`` values at each position, NaN skipped, once at least
    ``min(n, 5)`` are known (pandas' ``rolling(n, min_periods=min(n, 5)).mean()``)."""
    known = ~np.isnan(values)
    sums = np.concatenate([[0.0], np.cumsum(np.where(known, values, 0.0))])
    counts = np.concatenate([[0], np.cumsum(known)])
    end = np.arange(1, len(values) + 1)
    start = np.maximum(end - n, 0)
    count = counts[end] - counts[start]
    mean = (sums[end] - sums[start]) / np.maximum(count, 1)
    return np.where(count >= min(n, 5), mean, np.nan)


def rolling_frame(done: pd.DataFrame) -> pd.DataFrame:
    """Per scored day (``scored_rows``): rolling 20- and 60-forecast RMSE ratio vs naive and
    CRPS ratio."""
    error, naive = (done[c].to_numpy(dtype="float64") ** 2 for c in ("error", "naive_error"))
    crps, const = (done[c].to_numpy(dtype="float64") for c in ("crps", "crps_const_vol"))
    out = {}
    with np.errstate(divide="ignore", invalid="ignore"):  # a zero baseline reads inf / NaN
        for n in WINDOWS:
            out[f"rmse_ratio_{n}"] = np.sqrt(rolling_mean(error, n) / rolling_mean(naive, n))
            out[f"crps_ratio_{n}"] = rolling_mean(crps, n) / rolling_mean(const, n)
    return pd.DataFrame(out, index=pd.DatetimeIndex(done["actual_date"], name="actual_date"))


@task(name="monitor", cache_policy=NO_CACHE)
def monitor_task(home: str, symbols: list[str], policy: DegradationPolicy, as_of: date,
                 ledgers: Mapping[str, pd.DataFrame] | None = None) -> MonitorReport:
    """The monitor's rows and retrain verdicts as of the run's date."""
    return monitor(Path(home), symbols, policy, as_of, ledgers)


def report_table(report: MonitorReport) -> list[dict]:
    """Rows as plain dicts (what table artifacts and --json take)."""
    return [asdict(r) for r in report.rows]


MAX_LINES = 8  # symbols drawn one line each; more are drawn as the spread across symbols


def spread(frames: dict[str, pd.DataFrame], column: str) -> pd.DataFrame:
    """Per day, the median and the 10% / 90% quantiles of ``column`` across symbols."""
    wide = pd.DataFrame({s: f[column] for s, f in frames.items()})
    return pd.DataFrame({"median": wide.median(axis=1), "low": wide.quantile(0.1, axis=1),
                         "high": wide.quantile(0.9, axis=1)}).dropna()


def _draw(ax, frames: dict[str, pd.DataFrame], name: str) -> None:
    """One panel: a line per symbol and window, or (many symbols) the 60-day ratio's median
    and 10-90% band across symbols."""
    if len(frames) <= MAX_LINES:
        for symbol, frame in frames.items():
            for n, style in zip(WINDOWS, ("-", "--"), strict=True):
                if frame[f"{name}_{n}"].notna().any():
                    ax.plot(frame.index, frame[f"{name}_{n}"], style, lw=1.2,
                            label=f"{symbol} {n}d")
        return
    band = spread(frames, f"{name}_{WINDOWS[-1]}")
    if band.empty:
        return
    ax.fill_between(band.index, band["low"], band["high"], color="tab:blue", alpha=0.25, lw=0,
                    label=f"10-90% of {len(frames)} symbols, {WINDOWS[-1]}d")
    ax.plot(band.index, band["median"], color="tab:blue", lw=1.4,
            label=f"median, {WINDOWS[-1]}d")


def plot_rolling(frames: dict[str, pd.DataFrame]) -> str | None:
    """A small PNG data URI of the rolling RMSE and CRPS ratios (``MonitorReport.rolling``;
    None: none scored): a line per symbol, or for more than ``MAX_LINES`` symbols their median
    and spread (a legend of 1,000 lines reads as nothing)."""
    from tasks.reporting.figures import pyplot
    from tasks.reporting.images import figure_data_uri

    plt = pyplot()
    frames = {s: f for s, f in frames.items() if len(f)}
    if not frames:
        return None
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 5), sharex=True)
    _draw(top, frames, "rmse_ratio")
    _draw(bottom, frames, "crps_ratio")
    for ax, title in ((top, "live RMSE / naive RMSE (rolling)"),
                      (bottom, "live CRPS / constant-volatility CRPS (rolling)")):
        ax.axhline(1.0, color="grey", lw=0.8)
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
        if ax.lines[1:]:
            ax.legend(fontsize=7, ncol=2)
    if not bottom.lines[1:]:
        bottom.text(0.5, 0.5, "no forecast carried quantiles yet", ha="center",
                    transform=bottom.transAxes)
    fig.autofmt_xdate()
    fig.tight_layout()
    return figure_data_uri(fig, dpi=80)


def summary_markdown(report: MonitorReport, image: str | None,
                     started: dict[str, str] | None = None) -> str:
    """The monitor as Markdown: table, retrains started and why, the rolling plot embedded."""
    columns = ["symbol", "champion", "versions_60", "scored", "rmse_ratio_20", "rmse_ratio_60",
               "crps_ratio_60", "coverage_80_60", "last_scored"]
    lines = [f"# Live forecast monitor as of {report.as_of or 'the latest close'}", "",
             "Ratios below 1.0 beat the baseline (naive close; constant-volatility normal).",
             "Windows are the last 20 / 60 scored forecasts.", "",
             "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in report.rows:
        values = asdict(row)
        lines.append("| " + " | ".join("–" if values[c] in (None, "") else escape(values[c])
                                       for c in columns) + " |")
    degraded = [r for r in report.rows if r.degraded]
    lines += ["", "## Degradation", ""]
    lines += [f"- **{escape(r.symbol)}**: {escape(r.degraded)} — "
              + ("retrain started" if r.symbol in (started or {}) else "no retrain started "
                 "(retraining off, or the latest version is recent)") for r in degraded] \
        or ["No symbol is past the policy's limits."]
    if image:
        lines += ["", "## Rolling scores", "", f"![rolling scores]({image})"]
    return "\n".join(lines) + "\n"


@task(name="publish-monitor", cache_policy=NO_CACHE)
def publish_monitor_task(home: str, report: MonitorReport, started: dict[str, str]) -> None:
    """Keyed artifacts (a new version each run): the score table and the Markdown summary."""
    from prefect.artifacts import create_markdown_artifact, create_table_artifact

    create_table_artifact(table=report_table(report), key="monitor-scores",
                          description=f"Live forecast scores as of {report.as_of}")
    create_markdown_artifact(
        markdown=summary_markdown(report, plot_rolling(report.rolling), started),
        key="monitor-summary", description=f"Live forecast monitor as of {report.as_of}")


def format_monitor(report: MonitorReport) -> str:
    """The monitor as aligned text for the terminal."""
    if not report.rows:
        return "no forecasts in the ledger yet (run the daily flow, or `backfill --flow daily`)"
    frame = pd.DataFrame(report_table(report)).drop(columns="degraded")
    frame = frame.astype(object).where(frame.notna(), "-")
    lines = [frame.to_string(index=False)]
    lines += [f"{r.symbol}: DEGRADED: {r.degraded}" for r in report.rows if r.degraded]
    return "\n".join(lines)
