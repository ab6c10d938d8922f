"""Months of operation replayed through the real CLI, with the home measured as it goes (issue
23): the logic ``bench_year.py`` and ``tests/test_replay.py`` share.

Generated Kaggle-shaped prices (``generate_kaggle.py``): ``history`` business days, then the
``days`` replayed ones. Every step is ``python -m flows.cli ...`` in a child process:

  initial   ``run --input <prices to the day before the replay> --as-of <that day>``
  per chunk of ``retrain_every`` replayed days (a "week"), with an input file holding the prices
  up to the chunk's last day B (the file a production home would be fed that week):
    daily   ``backfill --flow daily --start A --end B`` (split after each checkpoint day, so that
            the home is measured on that day)
    retrain ``run --as-of B`` (what the weekly-retrain deployment does), only after a full chunk
    gc      ``gc --config <retention>`` (the deployments end with gc; an ad-hoc CLI run does not:
            ``flows.schedule.ends_with_gc`` is false outside a deployment, so it is run here)
  measured  ``status --json`` (its disk use per top directory of the home) after the initial
            run, after each checkpoint day and before and after each gc; ``models list --json``
            (every registered version) after each chunk.

Retention, compressed: gc keeps things by their age in wall-clock days (``work_days`` 7,
``validation_days`` 30, ``cache_days`` 30, ``grace_hours`` 1), but a replayed year passes in
hours, so with those limits gc would remove nothing and a replay could not tell a leak from
retention. The replay's gc runs with every limit at 0 instead: each weekly gc removes everything
the retention rules cover, whatever its age, so what survives it is exactly what gc never
removes (GX's configuration, static pages and index, ``quarantine/``), and a leak shows as
growth from week to week.

The bound on each of work/, staging/, validation/, cache/ (``bounds``), from measurements of
the first week only, so it does not depend on the number of days:

  B = R + 2.5 * r + 2 * retrain_every * d

- R: what the first weekly gc leaves (what gc never removes: GX's configuration and pages);
- r = A0 - R, with A0 the area after the initial run on an empty home: one retrain's footprint.
  A week's peak (just before its gc) holds two: its own and the one before it, which retention
  still keeps (here only in week 1, the initial run's; with the calendar limits every week,
  since work_days = 7 removes last Saturday's retrain only after this one). x 1.25 because
  each retrain trains on a longer history (+250 days on 1,512 is +17% over the year);
- d = max(0, A1 - A0): one replayed day's footprint (day 1's), x 2 for each day of the week
  (later days also score forecasts).

Checked (``check``): every measured size stays <= B, and what the last gc left is at most what
the first gc left plus d (no slow leak). With the deployments' calendar limits the same
reasoning gives R + 2.5 * r + 2 * window * d, window = the limit in business days (work 5,
validation and cache about 22), instead of one week.

The lake is split (``lake_split``) into prices, the forecast ledger and feature tables:
``lake/features/<config>/symbol=S/<data fingerprint>.parquet`` gets one table per symbol per
retrain; gc removes all but each symbol's newest once untouched for ``work_days`` (0 here), so
after each gc the feature tables are one retrain's worth.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

from _common import timed_child  # noqa: E402
from generate_kaggle import generate, write_frame  # noqa: E402

from tasks.housekeeping.gc_plan import size_of  # noqa: E402  (status's own accounting)

AREAS = ("work", "staging", "validation", "cache")
KEPT = ("lake", "models")  # grow for good: prices, ledger, feature tables; versions, reports
LAKE_PARTS = ("prices", "forecasts", "features")
COMPRESSED = {"retention": {"enabled": True, "validation_days": 0, "work_days": 0,
                            "cache_days": 0, "grace_hours": 0.0}}
RETRAINS_HELD, HISTORY_MARGIN, DAY_MARGIN = 2, 1.25, 2

EnvFor = Callable[[str], dict[str, str]]  # a child's label -> its environment


@dataclass(frozen=True)
class Plan:
    """What to replay: sizes, cadence, where to measure, and the runs' config."""

    symbols: int = 50
    history: int = 1512
    days: int = 250
    retrain_every: int = 5
    checkpoints: tuple[int, ...] = (1, 50, 250)
    seed: int = 0
    run_config: Path | None = None  # RunConfig file for run and backfill
    epochs: int | None = None
    gc: bool = True
    input: Path | None = None  # a real price file instead of generated prices
    on_invalid: str | None = None  # run and backfill's --on-invalid


def real_frame(path: Path, symbols: int, days: int) -> pd.DataFrame:
    """``symbols`` symbols of a real price file, in ``generate``'s shape, that trade on every one
    of the file's last ``days`` dates: evenly spaced through them in alphabetical order (not a
    hand-picked set), all of their rows, bad ones included (``--on-invalid drop`` meets them)."""
    from tasks.data.columns import match_columns

    raw = pd.read_csv(path)
    columns = match_columns(list(raw.columns))
    frame = raw.rename(columns={v: k for k, v in columns.items()})[
        ["date", "symbol", "open", "close", "low", "high", "volume"]]
    frame["date"] = pd.to_datetime(frame["date"])
    last = pd.DatetimeIndex(sorted(frame["date"].unique()))[-days:]
    recent = frame[frame["date"].isin(last)].groupby("symbol")["date"].nunique()
    eligible = sorted(recent[recent == len(last)].index)
    if len(eligible) < symbols:
        raise ValueError(f"{path}: {len(eligible)} symbols trade on all of the last {days} days; "
                         f"asked for {symbols}")
    step = len(eligible) / symbols
    chosen = [eligible[int(i * step)] for i in range(symbols)]
    return frame[frame["symbol"].isin(chosen)].sort_values(["date", "symbol"], kind="stable")


# --- the schedule -------------------------------------------------------------------------------

def chunks(days: int, every: int) -> list[list[int]]:
    """Replayed day numbers (1-based) in chunks of ``every``; the last may be shorter."""
    return [list(range(start, min(start + every, days + 1)))
            for start in range(1, days + 1, every)]


def segments(chunk: list[int], checkpoints: set[int]) -> list[list[int]]:
    """A chunk's days split after each checkpoint day, so the home is measured on it."""
    out, current = [], []
    for day in chunk:
        current.append(day)
        if day in checkpoints:
            out.append(current)
            current = []
    return out + ([current] if current else [])


# --- the CLI ------------------------------------------------------------------------------------

class Cli:
    """``python -m flows.cli`` children on one home; wall seconds per call, JSON summaries."""

    def __init__(self, home: Path, env_for: EnvFor, run_options: list[str]) -> None:
        self.home, self.env_for, self.run_options = home, env_for, run_options
        self.calls, self.spent = 0, 0.0

    def call(self, label: str, *args: str, run: bool = False) -> tuple[float, object]:
        """One command with ``--home`` and ``--json``; its wall seconds and last-line JSON."""
        self.calls += 1
        options = self.run_options if run else []
        seconds, out = timed_child([sys.executable, "-m", "flows.cli", *args, *options,
                                    "--home", str(self.home), "--json"],
                                   self.env_for(f"{self.calls:04d}-{label}"))
        self.spent += seconds
        return seconds, json.loads(out.strip().splitlines()[-1])

    def status(self) -> dict:
        """``status --json``: disk use per top directory, versions, ledger; the lake split."""
        seconds, status = self.call("status", "status")
        lake = self.home / "lake"
        return {"disk": status["disk"],
                "lake_split": {p: size_of(lake / p) if (lake / p).exists() else 0
                               for p in LAKE_PARTS},
                "versions": status["models"]["versions"],
                "ledger_issued": status["ledger"]["issued"],
                "ledger_scored": status["ledger"]["scored"], "lake_rows": status["lake"]["rows"],
                "status_s": seconds}

    def versions(self) -> set[str]:
        """Every registered version as ``SYMBOL/N`` (``models list``); a damaged one fails."""
        _, records = self.call("models", "models", "list")
        damaged = [r["path"] for r in records if r["status"] == "damaged"]
        if damaged:
            raise RuntimeError(f"damaged versions: {damaged}")
        return {f"{r['symbol']}/{r['version']}" for r in records}


# --- the replay ---------------------------------------------------------------------------------

def write_until(frame: pd.DataFrame, last: pd.Timestamp, folder: Path) -> Path:
    """The prices up to ``last`` as the Kaggle-shaped input of that week."""
    return write_frame(frame[frame["date"] <= last], folder / f"prices-{last.date()}.csv")


def replay(plan: Plan, work: Path, env_for: EnvFor) -> dict:
    """Run the plan on a fresh home under ``work``; every measurement, timing and check."""
    if plan.input:
        frame = real_frame(plan.input, plan.symbols, plan.days)
    else:
        frame = generate(n_symbols=plan.symbols, n_days=plan.history + plan.days, seed=plan.seed)
    dates = pd.DatetimeIndex(sorted(frame["date"].unique()))
    if plan.input:  # the real file's history is what comes before its last ``days`` dates
        plan = dataclasses.replace(plan, history=len(dates) - plan.days)
    inputs, gc_config = work / "inputs", work / "retention.json"
    work.mkdir(parents=True, exist_ok=True)
    gc_config.write_text(json.dumps(COMPRESSED))
    options = (["--config", str(plan.run_config)] if plan.run_config else []) + (
        ["--epochs", str(plan.epochs)] if plan.epochs else []) + (
        ["--on-invalid", plan.on_invalid] if plan.on_invalid else [])
    cli = Cli(work / "home", env_for, options)

    first = write_until(frame, dates[plan.history - 1], inputs)
    seconds, summary = cli.call("initial", "run", "--input", str(first), "--as-of",
                                str(dates[plan.history - 1].date()), run=True)
    first.unlink()
    initial = {"wall_s": seconds, "versions": len(summary["models"])}
    measured = {0: cli.status()}
    weeks = [replay_chunk(cli, plan, frame, dates, chunk, inputs, gc_config, measured)
             for chunk in chunks(plan.days, plan.retrain_every)]
    return summarize(plan, initial, measured, weeks) | {
        "symbol_names": sorted(frame["symbol"].unique()) if plan.input else "generated"}


def replay_chunk(cli: Cli, plan: Plan, frame: pd.DataFrame, dates: pd.DatetimeIndex,
                 chunk: list[int], inputs: Path, gc_config: Path,
                 measured: dict[int, dict]) -> dict:
    """One week: the daily flow over its days, the weekly retrain, gc; measured around gc."""
    spent, started = cli.spent, time.perf_counter()
    day_of = {d: dates[plan.history + d - 1].date().isoformat() for d in chunk}
    prices = write_until(frame, dates[plan.history + chunk[-1] - 1], inputs)
    week: dict = {"days": [chunk[0], chunk[-1]], "dates": [day_of[chunk[0]], day_of[chunk[-1]]],
                  "daily": []}
    for part in segments(chunk, set(plan.checkpoints)):
        week["daily"].append(replay_days(cli, part, day_of, prices))
        if part[-1] in plan.checkpoints and part[-1] != chunk[-1]:
            measured[part[-1]] = cli.status()
    if len(chunk) == plan.retrain_every:
        seconds, summary = cli.call("retrain", "run", "--input", str(prices), "--as-of",
                                    day_of[chunk[-1]], run=True)
        week["retrain"] = {"wall_s": seconds, "versions": len(summary["models"])}
    week["before_gc"] = cli.status()
    if plan.gc:
        seconds, report = cli.call("gc", "gc", "--config", str(gc_config))
        week["gc"] = {"wall_s": seconds, "busy": report["busy"],
                      "freed": {a: f["bytes"] for a, f in report["freed"].items()}}
    week["after_gc"] = cli.status()
    week["registered"] = sorted(cli.versions())
    if chunk[-1] in plan.checkpoints or chunk[-1] == plan.days:
        measured[chunk[-1]] = week["after_gc"]
    prices.unlink()
    week["cli_s"] = round(cli.spent - spent, 2)
    week["wall_s"] = round(time.perf_counter() - started, 2)
    return week


def replay_days(cli: Cli, days: list[int], day_of: dict[int, str], prices: Path) -> dict:
    """``backfill --flow daily`` over consecutive replayed days; its wall time and retrains."""
    seconds, summary = cli.call("daily", "backfill", "--flow", "daily", "--start",
                                day_of[days[0]], "--end", day_of[days[-1]], "--input",
                                str(prices), run=True)
    if len(summary["days"]) != len(days):
        raise RuntimeError(f"days {days}: the replay ran {len(summary['days'])} day(s)")
    return {"days": len(days), "wall_s": seconds,
            "issued": sum(d["issued"] for d in summary["days"]),
            "scored": sum(d["scored"] for d in summary["days"]),
            "retrained": sorted({s for d in summary["days"] for s in d["retrained"]})}


# --- the verdict --------------------------------------------------------------------------------

def bounds(day0: dict[str, int], day1: dict[str, int], left_first: dict[str, int],
           retrain_every: int) -> dict[str, dict[str, int]]:
    """Per area (disk sizes by directory): R, r, d and the bound B (module docstring)."""
    out = {}
    for area in AREAS:
        a0, a1, left = day0.get(area, 0), day1.get(area, 0), left_first.get(area, 0)
        retrain, day = max(0, a0 - left), max(0, a1 - a0)
        limit = left + RETRAINS_HELD * HISTORY_MARGIN * retrain + DAY_MARGIN * retrain_every * day
        out[area] = {"left_by_gc": left, "retrain": retrain, "day": day, "bound": int(limit)}
    return out


def check(limits: dict[str, dict[str, int]], sizes: list[dict[str, int]],
          left_last: dict[str, int]) -> dict[str, dict]:
    """Per area: the largest measured size against the bound, and the last gc's residue
    against the first's plus one day's footprint."""
    out = {}
    for area, limit in limits.items():
        peak, last = max(s.get(area, 0) for s in sizes), left_last.get(area, 0)
        under, no_leak = peak <= limit["bound"], last <= limit["left_by_gc"] + limit["day"]
        out[area] = {**limit, "peak": peak, "left_by_last_gc": last, "under_bound": under,
                     "no_leak": no_leak, "pass": under and no_leak}
    return out


def verdict(plan: Plan, measured: dict[int, dict], weeks: list[dict]) -> dict[str, dict]:
    """``check`` on every size measured in the replay."""
    sizes = [m["disk"] for m in measured.values()] + [
        w[k]["disk"] for w in weeks for k in ("before_gc", "after_gc")]
    day1 = measured.get(1, weeks[0]["before_gc"])["disk"]
    limits = bounds(measured[0]["disk"], day1, weeks[0]["after_gc"]["disk"], plan.retrain_every)
    return check(limits, sizes, weeks[-1]["after_gc"]["disk"])


def lost_versions(weeks: list[dict]) -> list[str]:
    """Versions listed after some week and missing from the last listing."""
    last = set(weeks[-1]["registered"])
    return sorted({v for w in weeks for v in w["registered"]} - last)


def _stats(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    return {"n": len(values), "mean": round(statistics.fmean(values), 2),
            "median": round(statistics.median(values), 2), "max": round(max(values), 2)}


def timing(initial: dict, weeks: list[dict]) -> dict:
    """Wall seconds per phase: a daily process and a day in it, a retrain, gc, whole weeks."""
    daily = [p for w in weeks for p in w["daily"]]
    full = [w["wall_s"] for w in weeks if "retrain" in w]
    return {"initial_s": initial["wall_s"],
            "daily_process_s": _stats([p["wall_s"] for p in daily]),
            "daily_s_per_day": _stats([p["wall_s"] / p["days"] for p in daily]),
            "retrain_s": _stats([w["retrain"]["wall_s"] for w in weeks if "retrain" in w]),
            "gc_s": _stats([w["gc"]["wall_s"] for w in weeks if "gc" in w]),
            "week_s": _stats(full)}


def summarize(plan: Plan, initial: dict, measured: dict[int, dict], weeks: list[dict]) -> dict:
    """Timings, checkpoints, the bound check and the registry check as one document."""
    checks = verdict(plan, measured, weeks)
    day1, last = measured.get(1, weeks[0]["before_gc"]), weeks[-1]["after_gc"]
    grew = {area: last["disk"].get(area, 0) - day1["disk"].get(area, 0)
            for area in (*KEPT, *AREAS)}
    grew.update({f"lake/{p}": last["lake_split"][p] - day1["lake_split"][p] for p in LAKE_PARTS})
    lost = lost_versions(weeks)
    return {
        "history": plan.history,
        "initial": initial, "checkpoints": {str(k): v for k, v in sorted(measured.items())},
        "weeks": [{k: v for k, v in w.items() if k != "registered"}
                  | {"versions": len(w["registered"])} for w in weeks],
        "timing": timing(initial, weeks),
        "versions": {"registered": len(weeks[-1]["registered"]), "lost": lost},
        "daily_retrains": sorted({s for w in weeks for p in w["daily"] for s in p["retrained"]}),
        "grew_after_day1": grew, "bound": checks,
        "pass": all(v["pass"] for v in checks.values()) and not lost,
    }
