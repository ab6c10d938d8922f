"""A market run's closing lines fit a screen: counts, fallbacks and kept champions with what
they lost to, the best and worst ranges, the path of the full table."""

from __future__ import annotations

from tasks.reporting.run_outcome import SHOWN, outcome_lines


def _row(i: int, promoted: bool = True, fallback: str | None = None,
         reason: str = "promoted: ...") -> dict:
    return {"symbol": f"S{i:03d}", "promoted": promoted, "fallback": fallback,
            "distribution": "garch" if i % 3 else "constant", "reason": reason,
            "crps_vs_garch_t": 0.9 + i / 1000}


def test_a_market_of_400_symbols_closes_in_a_few_lines(tmp_path):
    lost = ("not promoted: CRPS 1.5016 is worse than the constant-volatility baseline's 1.4711 "
            "on the test window")
    rows = [_row(i) for i in range(300)]
    rows += [_row(i, False, "constant volatility's range", lost) for i in range(300, 359)]
    rows += [_row(i, False, None, "not promoted: RMSE 1.2 is worse than champion version 1's "
                  "(1.1) on the same test window") for i in range(359, 400)]
    table = tmp_path / "runs" / "k" / "summary.csv"
    lines = outcome_lines(rows, table)
    assert len(lines) == 5 and all(len(line) < 1000 for line in lines)
    assert lines[0].startswith("400 version(s) registered, 300 promoted, 59 fallback "
                               "champion(s); ranges: ")
    assert "(59): S300 (CRPS 1.5016 is worse than the constant-volatility baseline's 1.4711)" \
        in lines[1] and lines[1].endswith(f"and {59 - SHOWN} more")
    assert lines[2].startswith("kept their previous champion (41): S359 (RMSE 1.2 is worse "
                               "than champion version 1's (1.1))")
    assert lines[3] == ("test CRPS vs GARCH-t, best: S000 x0.900, S001 x0.901, S002 x0.902, "
                        "S003 x0.903, S004 x0.904; worst: S399 x1.299, S398 x1.298, "
                        "S397 x1.297, S396 x1.296, S395 x1.295")
    assert lines[4].startswith(f"every symbol: {table} (and summary.md beside it")


def test_a_small_run_says_only_its_counts():
    assert outcome_lines([_row(1), _row(2)], None) == [
        "2 version(s) registered, 2 promoted; ranges: 2 garch"]
