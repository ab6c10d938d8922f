"""Weeks of operation replayed through the real CLI (issue 23, point 2; ``benchmarks/replay.py``,
which ``benchmarks/bench_year.py`` runs for a year on 50 symbols): work/, staging/, validation/
and cache/ stay under a bound taken from the first week, nothing registered is lost, and only
the lake and models/ grow."""

from __future__ import annotations

import importlib.util
import json
import sys

import pytest

from tests.conftest import ROOT

_spec = importlib.util.spec_from_file_location("replay", ROOT / "benchmarks" / "replay.py")
replay = sys.modules["replay"] = importlib.util.module_from_spec(_spec)  # for its dataclass
_spec.loader.exec_module(replay)

TINY = {"model": {"units": [4], "epochs": 2, "batch_size": 256, "patience": 2},
        "features": {"window": 5}, "backtest": {"folds": 1, "epochs": 1}}
SYMBOLS, HISTORY, DAYS, EVERY = 4, 400, 15, 5


def _sizes(work: int, validation: int) -> dict[str, int]:
    return {"work": work, "staging": 0, "validation": validation, "cache": 0}


def test_the_bound_comes_from_the_first_week_and_catches_a_leak():
    day0, day1, left = _sizes(1000, 5000), _sizes(1000, 5100), _sizes(0, 4900)
    limits = replay.bounds(day0, day1, left, retrain_every=5)
    # B = R + 2 x 1.25 x (A0 - R) + 2 x 5 x d
    assert limits["work"]["bound"] == 2500
    assert limits["validation"] == {"left_by_gc": 4900, "retrain": 100, "day": 100,
                                    "bound": 4900 + 250 + 1000}
    steady = [day0, day1, _sizes(2400, 6000), left, _sizes(1100, 5500), _sizes(0, 4950)]
    ok = replay.check(limits, steady, _sizes(0, 4950))
    assert all(v["pass"] for v in ok.values())
    # a week over the bound, and a residue growing week after week (a leak gc never removes)
    over = replay.check(limits, [*steady, _sizes(2600, 5000)], _sizes(0, 4950))
    assert not over["work"]["under_bound"] and over["validation"]["pass"]
    leak = replay.check(limits, steady, _sizes(0, 5001))
    assert leak["validation"]["under_bound"] and not leak["validation"]["no_leak"]


def test_the_schedule_splits_weeks_at_checkpoint_days():
    assert replay.chunks(12, 5) == [[1, 2, 3, 4, 5], [6, 7, 8, 9, 10], [11, 12]]
    assert replay.segments([1, 2, 3, 4, 5], {1, 50}) == [[1], [2, 3, 4, 5]]
    assert replay.segments([46, 47, 48, 49, 50], {1, 50}) == [[46, 47, 48, 49, 50]]


def test_lost_versions_are_those_missing_from_the_last_listing():
    weeks = [{"registered": ["A/1", "B/1"]}, {"registered": ["A/1", "A/2"]}]
    assert replay.lost_versions(weeks) == ["B/1"]


@pytest.mark.slow
def test_three_weeks_replayed_keep_the_home_bounded(tmp_path, cli_env):
    """4 generated symbols, 15 replayed days, the weekly retrain and gc: real CLI children."""
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(TINY))
    plan = replay.Plan(symbols=SYMBOLS, history=HISTORY, days=DAYS, retrain_every=EVERY,
                       checkpoints=(1, DAYS), run_config=config)
    result = replay.replay(plan, tmp_path / "replay", lambda label: cli_env)

    weeks, first, last = result["weeks"], result["checkpoints"]["1"], result["checkpoints"]["15"]
    assert [w["days"] for w in weeks] == [[1, 5], [6, 10], [11, 15]]
    assert all("retrain" in w and not w["gc"]["busy"] for w in weeks)
    # Nothing registered is lost: the initial versions and one per symbol per retrain.
    assert result["versions"] == {"registered": SYMBOLS * 4, "lost": []}
    # Bounded: every size under the first week's bound, no residue growing after gc ...
    bound = result["bound"]
    assert all(bound[a]["pass"] for a in replay.AREAS), bound
    for area in ("work", "staging", "cache"):  # limits 0: gc leaves nothing of these
        assert all(w["after_gc"]["disk"].get(area, 0) == 0 for w in weeks), area
        assert weeks[2]["before_gc"]["disk"][area] <= 1.1 * weeks[1]["before_gc"]["disk"][area]
    # ... and the check has teeth: without gc, what it removed would still be there.
    kept = {a: weeks[-1]["after_gc"]["disk"].get(a, 0)
            + sum(w["gc"]["freed"][a] for w in weeks[1:]) for a in replay.AREAS}
    without_gc = replay.check({a: {k: bound[a][k] for k in ("left_by_gc", "retrain", "day",
                                                            "bound")} for a in replay.AREAS},
                              [kept], kept)
    assert not any(v["no_leak"] for v in without_gc.values()), without_gc
    # The lake (prices, ledger) and models/ grew. A week's input holds its days up to its
    # last, and the daily flow stores all of it (it reads only up to each as-of date).
    assert first["lake_rows"] == SYMBOLS * (HISTORY + EVERY)
    assert last["lake_rows"] == SYMBOLS * (HISTORY + DAYS)
    assert last["ledger_issued"] > first["ledger_issued"] and last["ledger_scored"] > 0
    assert last["lake_split"]["forecasts"] > first["lake_split"]["forecasts"]
    assert result["grew_after_day1"]["models"] > 0 and result["pass"] is True
