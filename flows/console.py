"""The CLI's console: expected errors without tracebacks, per-epoch detail behind --verbose.

Prefect's engines log a failed task or flow three or four times, each with a traceback. For an
error the user caused (a ClosecastError) or an I/O fault that outlived its retries, one line
says it all: the first such record is kept without its traceback, and later records about
the same error are dropped. Only the console is filtered: the Prefect UI (the API log
handler) still receives every record, tracebacks and per-epoch lines included.
"""

from __future__ import annotations

import ast
import contextlib
import logging
import os
import re
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from tasks.core.errors import ClosecastError
from tasks.core.logs import DETAIL_KEY

# Chatter a user can do nothing about.
_NOISE = ("Stopping temporary server",)
# A task run's success line (one per task): detail, shown at --verbose and in the UI.
_TASK_DONE = ("Finished in state Completed(", "Finished in state Cached(")


def expected(error: BaseException | None) -> bool:
    """Errors reported as one line: a user's mistake, or an I/O fault after its retries."""
    return isinstance(error, ClosecastError | OSError)


def first_line(error: BaseException) -> str:
    """The head of an error's message (what identifies it in later log records)."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


_FAILED_STATE = re.compile(r"^Finished in state Failed\((?P<text>(['\"]).*\2)\)$", re.S)
_STATE_ERROR = re.compile(r"encountered an exception (?P<type>\w+): (?P<text>.*)", re.S)


def _names(cls: type) -> set[str]:
    return {cls.__name__}.union(*(_names(sub) for sub in cls.__subclasses__()))


def _failed_state_error(message: str) -> tuple[str, str] | None:
    """(type, first line) of an expected error named by a "Finished in state Failed" line."""
    state = _FAILED_STATE.match(message)
    if state is None:
        return None
    try:
        text = ast.literal_eval(state["text"])
    except (ValueError, SyntaxError):
        return None
    error = _STATE_ERROR.search(text)
    if error is None or error["type"] not in _names(ClosecastError) | _names(OSError):
        return None
    head = error["text"].strip()
    return error["type"], head.splitlines()[0] if head else error["type"]


class ConsoleFilter(logging.Filter):
    """Strip tracebacks of expected errors, drop repeats of them, and hide detail unless asked."""

    def __init__(self, debug: bool = False, verbose: bool = False) -> None:
        super().__init__("")
        self.debug, self.verbose = debug, verbose
        self.reported: list[str] = []

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.verbose and (getattr(record, DETAIL_KEY, False) or (
                record.name == "prefect.task_runs" and str(record.msg).startswith(_TASK_DONE))):
            return False
        if self.debug:
            return True
        error = record.exc_info[1] if record.exc_info else None
        if expected(error):
            key = first_line(error)
            if key in self.reported:
                return False
            self.reported.append(key)
            # The console handler runs after Prefect's API handler (root vs run loggers), so
            # the UI has already received the full record.
            record.exc_info, record.exc_text, record.stack_info = None, None, None
            record.msg, record.args = f"failed: {type(error).__name__}: {key}", ()
            return True
        message = record.getMessage()
        failed = _failed_state_error(message)
        if failed is not None and failed[1] not in self.reported:
            # A task that was not retried logs its failure only as a state, without exc_info.
            self.reported.append(failed[1])
            record.msg, record.args = f"failed: {failed[0]}: {failed[1]}", ()
            return True
        if any(key in message or repr(key)[1:-1] in message for key in self.reported):
            return False
        return not message.startswith(_NOISE)

    def seen(self, error: BaseException) -> bool:
        """Whether an ERROR line about this error was already shown."""
        return first_line(error) in self.reported


def install(debug: bool = False, verbose: bool = False) -> ConsoleFilter:
    """Put one ConsoleFilter on every console handler of the root logger (set up by Prefect)."""
    from prefect.logging.configuration import ensure_logging_setup
    from prefect.logging.handlers import PrefectConsoleHandler

    ensure_logging_setup()
    console = ConsoleFilter(debug, verbose)
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "closecast_fallback", False)]:
        root.removeHandler(old)
    handlers = [h for h in root.handlers if isinstance(h, PrefectConsoleHandler)]
    if not handlers:  # a user's own logging config: give the closing ERROR line somewhere to go
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)-7s | %(name)s - %(message)s"))
        handler.closecast_fallback = True  # type: ignore[attr-defined]
        root.addHandler(handler)
        handlers = [handler]
    for handler in handlers:
        for old in [f for f in handler.filters if isinstance(f, ConsoleFilter)]:
            handler.removeFilter(old)
        handler.addFilter(console)
        _write_to_current_stderr(handler)
    return console


def _write_to_current_stderr(handler: logging.Handler) -> None:
    """Point a console handler at this call's ``sys.stderr``: Prefect's keeps the stream it
    was made with, so a second ``main()`` in one process (tests, an embedding program) wrote
    its lines into the first call's stream, closed by then ("--- Logging error ---")."""
    if isinstance(handler, logging.StreamHandler) and handler.stream is not sys.stderr:
        with handler.lock or contextlib.nullcontext():  # not setStream: it flushes the old one
            handler.stream = sys.stderr
            console = getattr(handler, "console", None)  # Prefect's rich Console writes
            if console is not None:
                console.file = sys.stderr


# TensorFlow's C++ start-up lines (absl, oneDNN): INFO/WARNING only, errors still show.
# TF_CPP_MIN_LOG_LEVEL no longer silences them (TensorFlow 2.19+ logs them through absl before
# reading it), and they are written by C++ straight to file descriptor 2.
_NATIVE_NOISE = re.compile(rb"^(WARNING: All log messages before absl::InitializeLog\(\)"
                           rb"|[IW]\d{4} [\d:.]+\s+\d+ [\w.]+:\d+\] )")


_DRAIN = b"\x1eclosecast-drain\n"  # written to fd 2 to learn that the relay caught up


class _Relay:
    """Copies lines from a pipe (the new fd 2) to the real stderr, dropping native noise."""

    def __init__(self, reader: int, target: int) -> None:
        self.reader, self.target = reader, target
        self.caught_up = threading.Event()
        self.thread = threading.Thread(target=self.run, name="stderr-relay", daemon=True)

    def run(self) -> None:
        with os.fdopen(self.reader, "rb") as pipe:
            for line in pipe:
                drained = line.endswith(_DRAIN)
                line = line.removesuffix(_DRAIN)
                if line and not _NATIVE_NOISE.match(line):
                    os.write(self.target, line)
                if drained:
                    self.caught_up.set()

    def drain(self, timeout: float = 5.0) -> None:
        """Wait until everything written to fd 2 so far is on the real stderr."""
        sys.stderr.flush()
        self.caught_up.clear()
        os.write(2, _DRAIN)
        self.caught_up.wait(timeout)


_relay: _Relay | None = None


def drain_stderr() -> None:
    """Before printing to stdout: let stderr's relayed lines come first (keeps their order)."""
    if _relay is not None:
        _relay.drain()


@contextmanager
def native_noise_filtered() -> Iterator[None]:
    """Relay file descriptor 2 through a pipe that drops TensorFlow's C++ start-up lines."""
    global _relay
    sys.stderr.flush()
    saved = os.dup(2)
    reader, writer = os.pipe()
    os.dup2(writer, 2)
    os.close(writer)
    # A daemon: child processes (a temporary Prefect server) may hold the pipe open until exit.
    _relay = _Relay(reader, saved)
    _relay.thread.start()
    try:
        yield
    finally:
        _relay.drain()
        os.dup2(saved, 2)
        _relay = None
