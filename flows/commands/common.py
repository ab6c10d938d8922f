"""What every command group shares: the ``Command`` record and the home and symbol options."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tasks.core.config import SAMPLE_PATH

DEFAULT_HOME = SAMPLE_PATH.parent.parent  # <checkout>/data


@dataclass(frozen=True)
class Command:
    """One sub-command: its help line, examples, options and handler.

    ``flow``: it runs a Prefect flow that loads Keras; TensorFlow's native noise is filtered
    from the console unless --debug.
    """

    name: str
    help: str
    examples: tuple[str, ...]
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]
    flow: bool = False

    def add_to(self, sub) -> argparse.ArgumentParser:
        """Its parser under ``sub``; the help ends with the examples (kept as written)."""
        parser = sub.add_parser(
            self.name, help=self.help, description=self.help,
            epilog="examples:\n" + "\n".join(f"  {line}" for line in self.examples),
            formatter_class=argparse.RawDescriptionHelpFormatter)
        self.add_arguments(parser)
        return parser


def home_dir(value: str | None) -> Path:
    return Path(value or os.environ.get("CLOSECAST_HOME") or DEFAULT_HOME)


def parse_symbol(value: str, flag: str = "--symbol") -> str:
    from tasks.core.symbols import normalize_symbol

    return normalize_symbol(value, flag)


def add_home(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--home", metavar="DIR", help="root of everything read and written "
                                       "(default: env CLOSECAST_HOME, else data/)")


def add_json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON summary line last")
