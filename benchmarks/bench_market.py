"""Benchmark (f): the whole market through the real CLI: cold, rerun, one new day (JSON).

Generates Kaggle-shaped data (``generate_kaggle.py``; default 501 symbols x 1,762 business days)
twice from one draw: ``prices.csv`` holds the first ``--days`` days, ``prices_plus1.csv`` the same
rows plus ONE more business day for every symbol. Then, each as ``python -m flows.cli ...`` in its
own child process on one fresh closecast home:

  cold          ``run --input prices.csv --json``            (empty home)
  rerun         the identical command again                  (everything cached)
  daily_before  ``backfill --flow daily --start P --end P --input prices.csv``: the daily flow
                as of P, the cold run's last day (forecasts for D issued; no new rows)
  append_daily  ``backfill --flow daily --start D --end D --input prices_plus1.csv``: the new day
                D through the daily flow (ingest, validation, storage, P's forecasts scored, D's
                issued, the monitor; no training unless the monitor asks for a retrain,
                reported as ``retrained``): a day of a home in steady operation
  append_run    ``run --input prices_plus1.csv`` (information only: a new as-of, so it retrains)

Per phase: the whole process's wall time; the peak of the summed RSS of the CLI process and all its
descendants (Prefect's temporary server, pool workers), sampled from /proc every 0.2 s, and of
their summed PSS (a page shared by forked processes counted once); the largest single process's
``ru_maxrss`` (``os.wait4``); and the per-stage split read from Prefect's own record: the temporary
server's SQLite database (``PREFECT_HOME/prefect.db``, tables ``flow_run`` / ``task_run``), read
after the process exits, counting only that process's flow run and its subflows. All phases share
one PREFECT_HOME, as a user's ``~/.prefect``: its database is created (migrated) once, by the cold
phase; a fresh one costs every phase about 6 s more. Records are checked for completeness (every
run in a final state, ``prepare-dataset`` once per symbol, ``register`` chunks for the versions
the CLI printed (a global-only run: as many ``prepare-datasets`` as ``register`` chunks), one
daily flow run per replayed day); ``--server`` instead runs every phase against a ``prefect server
start`` this script starts (labelled ``prefect_api: running server``; the server's own memory is
then outside the measured tree and its start-up outside the wall times).

    python benchmarks/bench_market.py [--input FILE | --symbols 501 --days 1762] [--epochs N]
        [--config CFG]
        [--rss-sizes 100,250,501] [--skip-append-run] [--server] [--keep DIR]
        [--on-invalid drop]

``--input FILE`` (e.g. the real Kaggle market file, gzipped or not) replaces the generated
data: ``prices.csv`` is the file without its last date, ``prices_plus1.csv`` the file itself.

Targets (issue 23; 501 x 1,762 generated and the real market file alike, on 2 cores): cold
<= 300 s, peak RSS <= 4096 MiB, identical rerun <= 30 s, append-one-day daily <= 30 s.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from _common import child_env, machine, start_server, wait_for_quiet  # noqa: E402
from generate_kaggle import generate, write_frame  # noqa: E402

TARGETS = {"cold_wall_s": 300.0, "peak_rss_mib": 4096.0, "rerun_wall_s": 30.0,
           "append_daily_wall_s": 30.0}
FINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}
PAGE = os.sysconf("SC_PAGE_SIZE")
EPOCH = datetime(1970, 1, 1)


def log(message: str) -> None:
    print(f"[bench_market {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- data -------------------------------------------------------------------------------------

def write_pair(out: Path, symbols: int, days: int, seed: int) -> tuple[Path, Path, str, str]:
    """``prices.csv`` (``days`` days) and ``prices_plus1.csv`` (one more); the new day's date
    and the day before it (``prices.csv``'s last).

    Both come from ONE draw of ``days + 1`` days, the first being the second without its last
    date, so the first ``days`` days are byte-identical in the two files.
    """
    frame = generate(n_symbols=symbols, n_days=days + 1, seed=seed)
    new_day = frame["date"].max()
    base = write_frame(frame[frame["date"] < new_day], out / "prices.csv")
    plus = write_frame(frame, out / "prices_plus1.csv")
    return base, plus, new_day.date().isoformat(), _day_before(frame["date"], new_day)


def _day_before(dates: pd.Series, day: pd.Timestamp) -> str:
    return dates[dates < day].max().date().isoformat()


# --- one child process: wall time and memory ----------------------------------------------------

def _children() -> dict[int, list[int]]:
    """ppid -> pids of every process visible in /proc."""
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        tree.setdefault(int(fields[1]), []).append(int(entry))
    return tree


def _pss_bytes(pid: int) -> int:
    """Proportional set size (shared pages split between their users); 0 if unreadable."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as handle:
            for line in handle:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def tree_memory_bytes(root: int) -> tuple[int, int, int]:
    """Summed RSS and PSS of ``root`` and all its descendants, and how many processes."""
    tree, rss, pss, count, todo = _children(), 0, 0, 0, [root]
    while todo:
        pid = todo.pop()
        try:
            with open(f"/proc/{pid}/statm") as handle:
                rss += int(handle.read().split()[1]) * PAGE
            pss += _pss_bytes(pid)
            count += 1
        except OSError:
            pass
        todo.extend(tree.get(pid, []))
    return rss, pss, count


class RssSampler(threading.Thread):
    """Samples a process tree's summed RSS and PSS every ``every`` seconds until ``done``."""

    def __init__(self, pid: int, every: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.pid, self.every = pid, every
        self.peak = self.peak_pss = self.samples = self.most_processes = 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            rss, pss, count = tree_memory_bytes(self.pid)
            self.peak, self.peak_pss = max(self.peak, rss), max(self.peak_pss, pss)
            self.most_processes = max(self.most_processes, count)
            self.samples += 1
            self.done.wait(self.every)


def measure(args: list[str], env: dict[str, str], logs: Path, label: str) -> dict:
    """Run one CLI child process; its wall time, memory, exit status and stdout's last line."""
    logs.mkdir(parents=True, exist_ok=True)
    out_path, err_path = logs / f"{label}.stdout", logs / f"{label}.stderr"
    log(f"{label}: {' '.join(args[1:])}")
    with open(out_path, "w") as out, open(err_path, "w") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=out, stderr=err)
        sampler = RssSampler(proc.pid)
        sampler.start()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        sampler.done.set()
        sampler.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    lines = out_path.read_text().strip().splitlines()
    summary = None
    if lines:
        try:
            summary = json.loads(lines[-1])
        except ValueError:
            summary = None
    result = {"wall_s": round(wall, 2), "exit": proc.returncode,
              "peak_rss_mib": round(sampler.peak / 2**20, 1),
              "peak_pss_mib": round(sampler.peak_pss / 2**20, 1),
              "most_processes": sampler.most_processes, "rss_samples": sampler.samples,
              "ru_maxrss_largest_process_mib": round(usage.ru_maxrss / 1024, 1)}
    if proc.returncode != 0:
        result["stderr_tail"] = err_path.read_text()[-2000:]
    log(f"{label}: {result['wall_s']} s, peak {result['peak_rss_mib']} MiB, exit {proc.returncode}")
    return {**result, "_summary": summary}


# --- Prefect's record of the runs ---------------------------------------------------------------

def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _seconds(value: str | None) -> float:
    """``total_run_time`` is stored as a datetime after the epoch."""
    return (datetime.fromisoformat(value) - EPOCH).total_seconds() if value else 0.0


def _stage(name: str) -> str:
    """``train-98e`` -> ``train`` (Prefect appends a 3-hex suffix to task run names)."""
    head, _, tail = name.rpartition("-")
    return head if head and len(tail) == 3 and all(c in "0123456789abcdef" for c in tail) else name


def _kept_runs(flows: list[tuple], tasks: list[tuple], root: str | None) -> set[str]:
    """``root`` and its subflows (flow runs whose parent task run is in a kept flow run)."""
    keep = {f[0] for f in flows} if root is None else {root}
    task_flow = {t[0]: t[2] for t in tasks}
    while more := {f[0] for f in flows if f[2] and task_flow.get(f[2]) in keep} - keep:
        keep |= more
    return keep


def read_stages(db: Path, root_flow_run: str | None) -> dict:
    """Per task name: count, summed run seconds, wall span; the flow runs; completeness problems.

    With ``root_flow_run``, only that flow run and its subflows count (a shared server's
    database holds other runs too); without, every run in the database.
    """
    if not db.exists():
        return {"error": f"no Prefect database at {db}"}
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        flows = con.execute(
            "SELECT fr.id, f.name, fr.parent_task_run_id, fr.state_type, fr.start_time, "
            "fr.end_time, fr.total_run_time FROM flow_run fr JOIN flow f ON f.id = fr.flow_id"
        ).fetchall()
        tasks = con.execute("SELECT id, name, flow_run_id, state_type, state_name, start_time, "
                            "end_time, total_run_time FROM task_run").fetchall()
    finally:
        con.close()
    keep = _kept_runs(flows, tasks, root_flow_run)
    problems: list[str] = []
    flow_runs = []
    for fid, name, _, state, start, end, total in flows:
        if fid not in keep:
            continue
        wall = (_time(end) - _time(start)).total_seconds() if start and end else None
        flow_runs.append({"flow": name, "state": state, "run_s": round(_seconds(total), 2),
                          "wall_s": round(wall, 2) if wall is not None else None})
        if state not in FINAL or not end:
            problems.append(f"flow run {name} {fid} not final (state {state}, end {end})")
    stages: dict[str, dict] = {}
    spans: dict[str, list[datetime]] = {}
    for _, name, flow_run, state, state_name, start, end, total in tasks:
        if flow_run not in keep:
            continue
        stage = stages.setdefault(_stage(name), {"count": 0, "run_s": 0.0, "states": {}})
        stage["count"] += 1
        stage["run_s"] += _seconds(total)
        stage["states"][state_name or state] = stage["states"].get(state_name or state, 0) + 1
        if state not in FINAL or not end:
            problems.append(f"task run {name} not final (state {state}, end {end})")
        bounds = [t for t in (_time(start), _time(end)) if t]
        if bounds:
            span = spans.setdefault(_stage(name), [min(bounds), max(bounds)])
            span[0], span[1] = min(span[0], *bounds), max(span[1], *bounds)
    for name, stage in stages.items():
        stage["run_s"] = round(stage["run_s"], 2)
        first, last = spans.get(name, (None, None))
        stage["span_s"] = round((last - first).total_seconds(), 2) if first else None
    ordered = dict(sorted(stages.items(), key=lambda kv: spans.get(kv[0], [datetime.max])[0]))
    return {"flow_runs": flow_runs, "stages": ordered, "problems": problems}


def check_counts(stages: dict, symbols: int, summary: dict | None, kind: str) -> list[str]:
    """What the record must hold, given the CLI's own summary; the mismatches."""
    found = stages.get("stages", {})
    count = {name: s["count"] for name, s in found.items()}
    problems = []
    if summary is None:
        return ["no JSON summary from the CLI to check the record against"]
    if kind == "run":
        # a global-only run prepares and registers symbols in chunks: a task run per chunk
        chunked = "prepare-datasets" in count
        if not chunked and count.get("prepare-dataset", 0) != symbols:
            problems.append(f"prepare-dataset: {count.get('prepare-dataset', 0)} task runs "
                            f"recorded, {symbols} symbols")
        registered = count.get("register", 0)
        if chunked and count.get("prepare-datasets") != registered:
            problems.append(f"prepare-datasets: {count['prepare-datasets']} chunks, "
                            f"register: {registered}")
        versions = len(summary.get("models", []))
        # both training paths register in chunks of candidates (flows/training.py)
        if not chunked and not 0 < registered <= versions:
            problems.append(f"register: {registered} task runs recorded for {versions} "
                            "versions printed by the CLI")
    else:
        days = len(summary.get("days", []))
        daily = sum(f["flow"] == "closecast-daily" for f in stages.get("flow_runs", []))
        if daily != days:
            problems.append(f"closecast-daily: {daily} flow runs recorded, {days} days printed")
    return problems


# --- phases -------------------------------------------------------------------------------------

class Cli:
    """Runs CLI phases: a fresh PREFECT_HOME per process (temporary server) or one server."""

    def __init__(self, work: Path, options: list[str], server: tuple[str, Path] | None) -> None:
        self.work, self.options, self.server = work, options, server

    def phase(self, label: str, command: list[str], symbols: int, kind: str) -> dict:
        if self.server:
            api, prefect_home = self.server
        else:  # a temporary server per process, on one database (a user's ~/.prefect)
            api, prefect_home = None, self.work / "prefect"
        args = [sys.executable, "-m", "flows.cli", *command, *self.options, "--json"]
        result = measure(args, child_env(prefect_home, api), self.work / "logs", label)
        summary = result.pop("_summary")
        if result["exit"] != 0:
            return result
        root = summary.get("flow_run_id") if summary else None
        record = read_stages(prefect_home / "prefect.db", root)
        problems = record.get("problems", []) + check_counts(record, symbols, summary, kind)
        if "error" in record:
            problems.append(record["error"])
        result.update(flow_runs=record.get("flow_runs"), stages=record.get("stages"),
                      record_complete=not problems, record_problems=problems)
        if summary and kind == "run":
            result["versions"] = len(summary.get("models", []))
        if summary and kind == "daily":
            result["days"] = [{k: d[k] for k in ("as_of", "issued", "added", "scored",
                                                 "retrained")} for d in summary["days"]]
            result["retrained"] = sorted({s for d in summary["days"] for s in d["retrained"]})
        return result


def split_last_day(source: Path, out: Path) -> tuple[Path, Path, str, str, int, int]:
    """A real price file as the pair ``write_pair`` makes: its rows before its last date
    (``prices.csv``), the file itself, that last date and the one before; and the symbol and
    row counts."""
    from tasks.data.columns import match_columns

    frame = pd.read_csv(source, dtype=str)  # the bytes' values as written (gzip: by suffix)
    columns = match_columns(list(frame.columns))  # canonical name -> the file's (Name, Ticker..)
    dates = pd.to_datetime(frame[columns["date"]])
    new_day = dates.max()
    out.mkdir(parents=True, exist_ok=True)
    base = out / "prices.csv"
    frame[dates < new_day].to_csv(base, index=False)
    symbols = frame[columns["symbol"]].nunique()
    return (base, source, new_day.date().isoformat(), _day_before(dates, new_day), int(symbols),
            len(frame))


def market(work: Path, args: argparse.Namespace, options: list[str],
           server: tuple[str, Path] | None) -> dict:
    """The four phases on one fresh home."""
    data = work / "data"
    started = time.perf_counter()
    if args.input:
        base, plus, new_day, before, args.symbols, rows = split_last_day(args.input.resolve(),
                                                                          data)
        args.days = None
    else:
        base, plus, new_day, before = write_pair(data, args.symbols, args.days, args.seed)
    generated = round(time.perf_counter() - started, 2)
    cli, home = Cli(work, options, server), str(work / "home")
    phases = {"cold": cli.phase("cold", ["run", "--input", str(base), "--home", home],
                                args.symbols, "run")}
    if phases["cold"]["exit"] == 0:
        phases["rerun"] = cli.phase("rerun", ["run", "--input", str(base), "--home", home],
                                    args.symbols, "run")
        phases["daily_before"] = cli.phase(
            "daily_before", ["backfill", "--flow", "daily", "--start", before, "--end", before,
                             "--input", str(base), "--home", home], args.symbols, "daily")
        phases["append_daily"] = cli.phase(
            "append_daily", ["backfill", "--flow", "daily", "--start", new_day, "--end", new_day,
                             "--input", str(plus), "--home", home], args.symbols, "daily")
        if not args.skip_append_run:
            phases["append_run"] = cli.phase("append_run", ["run", "--input", str(plus),
                                                            "--home", home],
                                             args.symbols, "run")
    return {"generate_s": generated, "day_before": before, "new_day": new_day,
            "rows": ({"input": rows} if args.input else
                     {"prices.csv": args.symbols * args.days,
                      "prices_plus1.csv": args.symbols * (args.days + 1)}),
            "phases": phases}


def rss_sizes(work: Path, args: argparse.Namespace, options: list[str],
              server: tuple[str, Path] | None, cold: dict | None) -> dict:
    """A cold run per symbol count (issue point 6): wall and peak RSS."""
    rows = {}
    for n in args.rss_sizes:
        if n == args.symbols and cold is not None:
            rows[str(n)] = {k: cold.get(k) for k in ("wall_s", "peak_rss_mib",
                                                      "ru_maxrss_largest_process_mib", "exit")}
            continue
        base, *_ = write_pair(work / f"data-{n}", n, args.days, args.seed)
        result = Cli(work, options, server).phase(
            f"cold-{n}", ["run", "--input", str(base), "--home", str(work / f"home-{n}")], n, "run")
        rows[str(n)] = {k: result.get(k) for k in ("wall_s", "peak_rss_mib",
                                                    "ru_maxrss_largest_process_mib", "exit",
                                                    "record_complete")}
        shutil.rmtree(work / f"home-{n}", ignore_errors=True)
    return rows


def verdict(phases: dict) -> dict:
    def value(phase: str, key: str) -> float | None:
        result = phases.get(phase, {})
        return result.get(key) if result.get("exit") == 0 else None

    peak = max((p["peak_rss_mib"] for p in phases.values() if p.get("exit") == 0), default=None)
    checks = {"cold_wall_s": value("cold", "wall_s"), "rerun_wall_s": value("rerun", "wall_s"),
              "append_daily_wall_s": value("append_daily", "wall_s"), "peak_rss_mib": peak}
    return {name: {"value": got, "target_max": TARGETS[name],
                   "pass": got is not None and got <= TARGETS[name]}
            for name, got in checks.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", type=Path,
                        help="a real Kaggle-format price file (.csv or .csv.gz) instead of "
                             "generated data: cold on all but its last day, then that day")
    parser.add_argument("--symbols", type=int, default=501)
    parser.add_argument("--days", type=int, default=1762)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, help="override the model's epochs")
    parser.add_argument("--config", type=Path, help="RunConfig YAML/JSON passed to every run")
    parser.add_argument("--rss-sizes", type=lambda s: [int(x) for x in s.split(",") if x],
                        default=[], help="comma-separated symbol counts: one cold run each")
    parser.add_argument("--skip-append-run", action="store_true",
                        help="leave out the (information only) plain run on the appended file")
    parser.add_argument("--server", action="store_true",
                        help="run every phase against a `prefect server start` started here")
    parser.add_argument("--on-invalid", choices=("fail", "drop"),
                        help="passed to every run and backfill (a real file as users bring it "
                             "has bad rows: drop quarantines them)")
    parser.add_argument("--keep", type=Path, help="work here and keep it (logs, homes, data)")
    parser.add_argument("--quiet-wait-s", type=float, default=180.0,
                        help="wait at most this long for load <= 1.5 before starting")
    args = parser.parse_args(argv)
    options = (["--epochs", str(args.epochs)] if args.epochs else []) + (
        ["--config", str(args.config.resolve())] if args.config else []) + (
        ["--on-invalid", args.on_invalid] if args.on_invalid else [])
    start = wait_for_quiet(limit_s=args.quiet_wait_s)
    with tempfile.TemporaryDirectory(prefix="closecast-bench-market-") as tmp:
        work = args.keep.resolve() if args.keep else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        server_proc, server, server_ready = None, None, None
        if args.server:
            server_proc, api, prefect_home, server_ready = start_server(work)
            server = (api, prefect_home)
        try:
            run = market(work, args, options, server)
            sizes = (rss_sizes(work, args, options, server, run["phases"].get("cold"))
                     if args.rss_sizes else None)
        finally:
            if server_proc:
                server_proc.terminate()
                server_proc.wait(timeout=30)
    targets = verdict(run["phases"])
    complete = all(p.get("record_complete", False) for p in run["phases"].values())
    result = {"benchmark": "market",
              "input": str(args.input) if args.input else "generated",
              "symbols": args.symbols, "days": args.days,
              "epochs": args.epochs or "default",
              "config": args.config.read_text() if args.config else None,
              "prefect_api": ("running server" if args.server
                              else "temporary server per process, one database"),
              "server_ready_s": server_ready, **run, "rss_by_symbols": sizes,
              "stage_records_complete": complete, "targets": targets,
              "pass": all(t["pass"] for t in targets.values()), "machine": machine(start)}
    print(json.dumps(result))  # noqa: T201
    return 0 if all(p.get("exit") == 0 for p in run["phases"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
