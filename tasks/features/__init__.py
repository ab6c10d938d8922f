"""Model inputs: lag windows split by time and scaled on training rows; batches across symbols.
May import: core, data, distribution."""
