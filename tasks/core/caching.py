"""Cache and retry policies shared by the task wrappers."""

from __future__ import annotations

import ast
import hashlib
import inspect
import textwrap
from collections.abc import Callable
from functools import cache, partial
from pathlib import Path
from typing import Any

from prefect.cache_policies import INPUTS, CacheKeyFnPolicy, CachePolicy
from prefect.tasks import exponential_backoff

from tasks.core.errors import ClosecastError

TASKS_DIR = Path(__file__).resolve().parents[1]


def _without_docstrings(tree: ast.AST) -> ast.AST:
    """Drop the docstring of the module and of every class and function (in place)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                node.body = body[1:] or [ast.Pass()]
    return tree


def source_fingerprint(source: str) -> str:
    """What a module does, not how it reads: its AST without docstrings; comments and
    formatting never reach the AST."""
    tree = _without_docstrings(ast.parse(source))
    return ast.dump(tree, annotate_fields=False, include_attributes=False)


def modules_fingerprint(directory: Path) -> str:
    """sha256 of the normalised source of every module under ``directory`` (its packages
    included), in path order."""
    digest = hashlib.sha256()
    for path in sorted(directory.rglob("*.py")):
        digest.update(path.relative_to(directory).as_posix().encode())
        digest.update(source_fingerprint(path.read_text(encoding="utf-8")).encode())
    return digest.hexdigest()


@cache
def code_fingerprint() -> str:
    """The code of every module under tasks/ (TASK_CODE sees a task's body, not its helpers).

    A comment, docstring or formatting edit keeps it, and so keeps every cached result.
    """
    return modules_fingerprint(TASKS_DIR)


def _code_key(context: Any, parameters: dict[str, Any]) -> str:
    return code_fingerprint()


def task_source(task: Any) -> str:
    """A task's own source, as Prefect's TASK_SOURCE reads it (kept on the task when pickled)."""
    lines = getattr(task, "source_code", None)
    if lines:
        return str(lines)
    try:
        return inspect.getsource(task)
    except (OSError, TypeError):
        return f"{task.fn.__module__}.{task.fn.__qualname__}"


def _task_code_key(context: Any, parameters: dict[str, Any]) -> str:
    source = task_source(context.task)
    try:
        normalised = source_fingerprint(textwrap.dedent(source))
    except SyntaxError:
        normalised = source
    return hashlib.sha256(normalised.encode()).hexdigest()


def _input_file_key(file_key: Callable[[Path], str], context: Any,
                    parameters: dict[str, Any]) -> str:
    path = Path(parameters["path"])
    try:
        return file_key(path)
    except (OSError, ClosecastError):
        return f"unreadable:{path}"  # the task itself then reports why


CODE = CacheKeyFnPolicy(cache_key_fn=_code_key)
# Prefect's TASK_SOURCE without docstrings, comments and layout: it tells apart two tasks given
# the same inputs, and a task's docstring edit keeps its cache as a helper's does.
TASK_CODE = CacheKeyFnPolicy(cache_key_fn=_task_code_key)
# Steps whose inputs are already content hashes (or carry them): inputs + source + code.
BY_CONTENT = INPUTS + TASK_CODE + CODE


def by_file_content(file_key: Callable[[Path], str]) -> CachePolicy:
    """Key a task on the bytes its ``path`` parameter names (``file_key(path)``), not on the
    path or its mtime; the other inputs, the task's source and the code as usual."""
    return (CacheKeyFnPolicy(cache_key_fn=partial(_input_file_key, file_key))
            + (INPUTS - "path") + TASK_CODE + CODE)


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
