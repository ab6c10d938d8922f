"""Plumbing for every stage: config, layout, paths, atomic writes, locks, hashes, caching, errors.
May import: none."""
