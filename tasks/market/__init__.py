"""Across the market: one global network fit on all symbols of a run, scored per symbol.
May import: core, data, features, distribution, forecaster, evaluation, reporting."""
