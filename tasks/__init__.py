"""Pipeline steps: plain functions with thin Prefect task wrappers, one module per step."""
