"""Typed errors that the CLI turns into a clear message and a non-zero exit."""

from __future__ import annotations

from pathlib import Path

import pandas as pd


class ClosecastError(Exception):
    """Base class of every error closecast reports to a user without a traceback."""


class InputError(ClosecastError):
    """An input file cannot be read as prices: names the file, the rule and example rows."""

    def __init__(self, path: Path | str, rule: str, examples: str = "") -> None:
        self.path, self.rule, self.examples = str(path), rule, examples
        text = f"{path}: {rule}"
        if examples:
            text += f"\n{examples}"
        super().__init__(text)


class ShortHistory(InputError):
    """Too little history for a model, or for one backtest fold: the symbol is left out of what
    it cannot feed (one log line names it); the run goes on. ``detail``: the counts."""

    def __init__(self, path: Path | str, detail: str) -> None:
        self.detail = detail
        super().__init__(path, f"rule 'enough history': {detail}")


class DataValidationError(ClosecastError):
    """Prices broke one or more expectations; nothing was stored. ``advice``: a closing line
    (what ``--on-invalid drop`` would quarantine)."""

    def __init__(self, path: Path | str, failures: list[str], advice: str = "") -> None:
        self.path, self.failures = str(path), failures
        head = f"{path}: {len(failures)} validation rule(s) failed, nothing was stored"
        super().__init__("\n".join([head, *failures, *([advice] if advice else [])]))


class RegistryError(ClosecastError):
    """The model registry has no such version, or a version's files are damaged."""


class PrefectApiError(ClosecastError):
    """The Prefect API that PREFECT_API_URL names does not answer (a stopped server)."""

    def __init__(self, url: str, cause: BaseException) -> None:
        self.url = url
        super().__init__(
            f"{url} (PREFECT_API_URL): the Prefect API does not answer "
            f"({type(cause).__name__}: {cause}); start it (`prefect server start --background`, "
            "or `make run`, which starts one on 127.0.0.1:4200) or unset PREFECT_API_URL to "
            "run with a temporary server of its own")


def _printable(value: object) -> object:
    """Untrusted text with control characters escaped, so it cannot drive a terminal."""
    if isinstance(value, str) and not value.isprintable():
        return value.encode("unicode_escape").decode("ascii")
    return value


def example_rows(frame: pd.DataFrame, limit: int = 5) -> str:
    """Render a few offending rows as aligned text for an error message."""
    shown = frame.head(limit).map(_printable).to_string()
    more = len(frame) - limit
    return shown + (f"\n… and {more} more row(s)" if more > 0 else "")
