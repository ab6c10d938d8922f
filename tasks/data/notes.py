"""Facts about a symbol's data that are not bad rows: gaps in its dates, too little history.

A gap (days missing in the source: DHR and ES lack 2015-03-09..2015-03-20 in Kaggle's S&P 500
file) keeps every row; the features leave out the windows that span it. A symbol with too
little history is stored; training leaves it out (``tasks.features.feature_table``). Neither
fails validation nor quarantines a row: validation says them in one line each.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from tasks.core.logs import named_few
from tasks.core.symbols import shown_symbol
from tasks.data.history_columns import GAP, HISTORY


def gap_spans(checked: pd.DataFrame, known: pd.DataFrame, limit: int) -> pd.DataFrame:
    """``symbol, previous, date, business_days`` of each step between a symbol's consecutive
    days (the lake's ``known`` days too) longer than ``limit`` business days, in date order."""
    rows = checked.loc[checked[GAP].to_numpy() > limit, ["symbol", "date", GAP]]
    if rows.empty:
        return pd.DataFrame(columns=["symbol", "previous", "date", "business_days"])
    days = pd.concat([checked[["symbol", "date"]], known[["symbol", "date"]]], ignore_index=True)
    days = days[days["symbol"].isin(set(rows["symbol"]))].drop_duplicates()
    days = days.sort_values(["symbol", "date"], kind="stable")
    days["previous"] = days.groupby("symbol")["date"].shift(1)
    spans = rows.merge(days, on=["symbol", "date"], how="left")
    spans = spans.rename(columns={GAP: "business_days"}).astype({"business_days": "int64"})
    return spans[["symbol", "previous", "date", "business_days"]].sort_values(
        ["date", "symbol"], kind="stable").reset_index(drop=True)


def short_symbols(checked: pd.DataFrame, minimum: int) -> pd.DataFrame:
    """``symbol, days`` of the symbols with fewer than ``minimum`` days of history."""
    short = checked.loc[checked[HISTORY].to_numpy() < minimum, ["symbol", HISTORY]]
    return (short.drop_duplicates("symbol").rename(columns={HISTORY: "days"})
            .sort_values("symbol").reset_index(drop=True))


def note_lines(checked: pd.DataFrame, known: pd.DataFrame, max_gap: int,
               min_history: int) -> tuple[str, ...]:
    """One line for the gaps longer than ``max_gap`` and one for the symbols with fewer than
    ``min_history`` days (none: no line); each names at most ten."""
    lines = []
    gaps = gap_spans(checked, known, max_gap)
    if len(gaps):
        shown = [f"{shown_symbol(g.symbol)} {_day(g.previous)}..{_day(g.date)} "
                 f"({g.business_days} business days)" for g in gaps.itertuples()]
        lines.append(f"{len(gaps)} gap(s) longer than {max_gap} business days, kept: "
                     f"{named_few(shown)}; no training, validation or test window spans one")
    short = short_symbols(checked, min_history)
    if len(short):
        shown = [f"{shown_symbol(s.symbol)} ({s.days} {'day' if s.days == 1 else 'days'})"
                 for s in short.itertuples()]
        lines.append(f"{len(short)} symbol(s) with less history than a model needs "
                     f"({min_history} days), kept: {named_few(shown)}; training leaves them "
                     "out until they have it")
    return tuple(lines)


def _day(value: object) -> str:
    return "?" if pd.isna(value) else str(np.datetime64(value, "D"))
