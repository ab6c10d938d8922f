"""Prefect flows of closecast and its command line."""
