"""Keeping a home in order: retention (gc) of what runs leave behind, and the home's status.
May import: core, data, registry, serving."""
