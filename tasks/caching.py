"""Cache and retry policies shared by the task wrappers."""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path
from typing import Any

from prefect.cache_policies import INPUTS, TASK_SOURCE, CacheKeyFnPolicy
from prefect.tasks import exponential_backoff

from tasks.errors import ClosecastError

TASKS_DIR = Path(__file__).resolve().parent


@cache
def code_fingerprint() -> str:
    """sha256 of every module in tasks/: TASK_SOURCE sees a task's body, not its helpers."""
    digest = hashlib.sha256()
    for path in sorted(TASKS_DIR.glob("*.py")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _code_key(context: Any, parameters: dict[str, Any]) -> str:
    return code_fingerprint()


def _input_file_key(context: Any, parameters: dict[str, Any]) -> str:
    from tasks.ingest import file_sha256

    path = Path(parameters["path"])
    try:
        return file_sha256(path)
    except (OSError, ClosecastError):
        return f"unreadable:{path}"  # the task itself then reports why


CODE = CacheKeyFnPolicy(cache_key_fn=_code_key)
# Steps whose inputs are already content hashes (or carry them): inputs + source + code.
BY_CONTENT = INPUTS + TASK_SOURCE + CODE
# Ingest is keyed on the bytes of the input file, not on its path or mtime.
BY_FILE_CONTENT = CacheKeyFnPolicy(cache_key_fn=_input_file_key) + (INPUTS - "path") \
    + TASK_SOURCE + CODE


def is_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Retry genuine I/O faults (OSError: timeouts, connection resets, EIO) and nothing else.

    Bad input, failed validation and any other exception a file's content can cause are final:
    retrying cannot fix them.
    """
    error = state.data if isinstance(state.data, BaseException) else None
    if error is None:
        try:
            state.result(raise_on_failure=True)
        except BaseException as exc:  # noqa: BLE001 - we only classify it
            error = exc
    if isinstance(error, ClosecastError) or isinstance(error, PermissionError):
        return False
    return isinstance(error, OSError) or type(error).__name__ in _TRANSIENT_NAMES


# Network errors some clients raise outside the OSError tree (yfinance's rate limit).
_TRANSIENT_NAMES = frozenset({"YFRateLimitError", "ReadTimeout", "ConnectTimeout", "Timeout"})


IO_RETRIES: dict[str, Any] = {
    "retries": 2,
    "retry_delay_seconds": exponential_backoff(backoff_factor=1),
    "retry_jitter_factor": 0.5,
    "retry_condition_fn": is_transient,
}
