"""Pipeline steps, one package per stage, each module plain functions under thin task
wrappers. A package imports only the packages its docstring names (tests/test_structure.py)."""
