"""Tomorrow's return as a distribution: Student-t, volatility baselines, scores, gate, paths.
May import: core."""
