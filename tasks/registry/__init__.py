"""Versions: immutable numbered versions, the champion, publishing, the run's Prefect artifacts.
May import: core, data, features, distribution, forecaster, evaluation, reporting."""
