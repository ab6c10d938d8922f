"""A candidate on its test window beside naive and volatility baselines; the backtest.
May import: core, data, features, distribution, forecaster."""
