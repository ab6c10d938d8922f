"""Prices in: file and live sources, ingest, Great Expectations validation, the Parquet lake.
May import: core."""
