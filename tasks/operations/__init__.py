"""Every day after training: predict from a champion, the forecast ledger, live monitoring.
May import: core, data, features, distribution, forecaster, evaluation, reporting, registry."""
