"""Every day after training: predict from a champion, the day's forecasts, the ledger, the monitor.
May import: core, data, features, distribution, forecaster, evaluation, reporting, registry."""
