"""A trained forecaster: a network under a head, scaler, shrink, baseline fits; fit, save, load.
May import: core, features, distribution."""
