"""Does the range source a market run serves hold from one day to the next?

Runs the default `closecast run --input FILE --on-invalid drop --as-of DATE` once per date, each
in a fresh home (a cold run: the network retrained on that day's data), optionally once more
without one symbol (``--without``), and compares the source each symbol's new version carries.

    python benchmarks/gate_stability.py --input FILE --dates 2018-02-01,2018-02-02,...
                                        [--without DWDP --without-date 2018-02-06]
                                        [--keep DIR]

Prints one JSON object: per run, the seconds, the ranges served and the pooled gate's decision; per
consecutive pair of runs, the share of their common symbols that serve the same source.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import child_env, machine, timed_child, wait_for_quiet  # noqa: E402


def run_as_of(input_file: Path, date: str, home: Path, without: str | None) -> dict:
    """One cold run; the source of each symbol's new version and the pooled gate's decision."""
    import pandas as pd

    args = [sys.executable, "-m", "flows.cli", "run", "--input", str(input_file),
            "--on-invalid", "drop", "--as-of", date, "--home", str(home), "--json"]
    if without:  # every symbol of the file but one
        prices = pd.read_csv(input_file, usecols=["Name"])
        names = sorted(set(prices["Name"].dropna()) - {without})
        args += ["--symbols", ",".join(names)]
    prefect_home = home.with_name(home.name + "-prefect")  # Prefect's SQLite needs its folder
    prefect_home.mkdir(parents=True, exist_ok=True)
    seconds, stdout = timed_child(args, child_env(prefect_home, None))
    summary = json.loads(stdout.strip().splitlines()[-1])
    sources = {m["symbol"]: m["source"] for m in summary["models"]}
    from tasks.core.version_files import read_metrics

    gates = [read_metrics(Path(m["path"])).pooled_gate for m in summary["models"]]
    gate = next((g.model_dump(include={"family", "gain", "lower", "dm", "accepted", "symbols"})
                 for g in gates if g is not None), None)
    return {"as_of": date, "without": without, "seconds": seconds,
            "ranges": dict(Counter(sources.values())), "pooled_gate": gate, "sources": sources}


def agreement(a: dict[str, str], b: dict[str, str]) -> dict:
    common = sorted(a.keys() & b.keys())
    same = sum(a[s] == b[s] for s in common)
    return {"symbols": len(common), "same_source": same,
            "share": round(same / len(common), 4) if common else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", type=Path, required=True)
    parser.add_argument("--dates", required=True, help="comma-separated as-of dates, in order")
    parser.add_argument("--without", help="a symbol to leave out of one more run")
    parser.add_argument("--without-date", help="the as-of date of that run")
    parser.add_argument("--keep", type=Path, help="keep the homes under this folder")
    args = parser.parse_args()
    start = wait_for_quiet()
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep or Path(tmp)
        plan = [(d, None) for d in args.dates.split(",")]
        if args.without:
            plan.append((args.without_date or plan[-1][0], args.without))
        for date, without in plan:
            home = root / f"home-{date}{'-without-' + without if without else ''}"
            runs.append(run_as_of(args.input, date, home, without))
            print(json.dumps({k: v for k, v in runs[-1].items() if k != "sources"}),
                  file=sys.stderr, flush=True)
    days = [r for r in runs if not r["without"]]
    pairs = [{"from": a["as_of"], "to": b["as_of"], **agreement(a["sources"], b["sources"])}
             for a, b in zip(days[:-1], days[1:], strict=True)]
    pairs += [{"from": a["as_of"], "to": f"{b['as_of']} without {b['without']}",
               **agreement(a["sources"], b["sources"])}
              for b in runs if b["without"] for a in days if a["as_of"] == b["as_of"]]
    print(json.dumps({"runs": [{k: v for k, v in r.items() if k != "sources"} for r in runs],
                      "pairs": pairs, "machine": machine(start)}))


if __name__ == "__main__":
    main()
