"""The ``closecast`` command line: the parser built from the commands of flows/commands/, the
run of one command, its errors and the process's end."""

from __future__ import annotations

import argparse
import atexit
import contextlib
import functools
import logging
import os
import sys
from collections.abc import Sequence

from flows import console
from flows.commands import home, serving, train
from flows.startup import preload
from tasks.core.logs import quiet_libraries

# Every sub-command, in the order of `closecast --help`.
COMMANDS = {command.name: command
            for group in (train, serving, home) for command in group.COMMANDS}


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("closecast")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown (not installed)"


def _console_options(parser: argparse.ArgumentParser, default: object) -> None:
    parser.add_argument("--verbose", action="store_true", default=default,
                        help="also show per-epoch training lines (the Prefect UI always has them)")
    parser.add_argument("--debug", action="store_true", default=default,
                        help="show Python tracebacks of expected errors too")


def build_parser() -> argparse.ArgumentParser:
    """The ``closecast`` parser: the console options, then each command of ``COMMANDS``."""
    parser = argparse.ArgumentParser(
        prog="closecast", description="Forecast tomorrow's close: ingest, validate, train, "
        "evaluate and register models, then predict and monitor.",
        epilog="examples:\n  closecast run\n  closecast predict --symbol AAL\n\n"
               "closecast COMMAND --help shows a command's options and examples.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"closecast {_version()}")
    _console_options(parser, False)
    # The same flags after the command; SUPPRESS keeps a flag given before it.
    common = argparse.ArgumentParser(add_help=False)
    _console_options(common, argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser = functools.partial(sub.add_parser, parents=[common])  # type: ignore[method-assign]
    for command in COMMANDS.values():
        command.add_to(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """The command line's work: parse ``argv``, run the command; its exit status."""
    args = build_parser().parse_args(argv)
    quiet_libraries()
    # The filter stays on after main() returns (Prefect logs the temporary server's stop at
    # exit); the next main() in this process replaces it.
    shown = console.install(debug=args.debug, verbose=args.verbose)
    command = COMMANDS[args.command]
    quiet = command.flow and not args.debug
    try:
        with console.native_noise_filtered() if quiet else contextlib.nullcontext():
            preload(args.command)
            return command.run(args)
    except Exception as error:
        if console.expected(error):
            return _fail(args, error, shown)
        from flows.prefect_api import unreachable_api

        stopped = unreachable_api()  # Prefect's own error for it is a long traceback
        if stopped is None:
            raise  # a bug: its traceback is the report
        return _fail(args, stopped, shown)


def _fail(args: argparse.Namespace, error: Exception, shown: console.ConsoleFilter) -> int:
    """One ERROR log line (unless a task already logged it) and the closing line; exit 1."""
    import traceback

    if args.debug:
        traceback.print_exc()
    if not shown.seen(error):
        logging.getLogger("closecast").error("failed: %s: %s", type(error).__name__,
                                             console.first_line(error))
    print(f"closecast {args.command}: error: {error_text(error)}", file=sys.stderr)
    return 1


def error_text(error: BaseException) -> str:
    """``<file>: what went wrong``; an I/O fault names its file when it has one."""
    if isinstance(error, OSError):
        return (f"{error.filename or 'I/O'}: I/O failed after retries: {error.strerror or error} "
                "(writes are atomic: what was stored before is unchanged)")
    return str(error)


def run() -> None:
    """The ``closecast`` command's process: ``main()``, every exit handler, then the end.

    Exit handlers still run as usual (Prefect drains its log and event workers and stops a
    temporary server; logging flushes); what is skipped is the interpreter's teardown of every
    module after them, ~1.5 s of a run once TensorFlow is loaded and the only thing the user
    still waits for (BENCHMARKS.md (i)). An error that escapes ``main()`` (a bug, Ctrl-C) gets
    the normal exit, traceback included.
    """
    status: list[int] = []
    atexit.register(_end_process, status)  # before main() starts Prefect: runs after its own
    status.append(main())
    sys.exit(status[0])


def _end_process(status: list[int]) -> None:
    if not status:
        return
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(status[0])


if __name__ == "__main__":
    run()
