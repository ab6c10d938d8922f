"""An input file's bytes: gzip told by its first bytes and read through; its header line."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from tasks.core.errors import InputError

# A gzip stream starts with these two bytes, whatever the file is called.
GZIP_MAGIC = b"\x1f\x8b"


def plain_or_gzipped(directory: Path, name: str) -> Path | None:
    """``directory/name``, else ``directory/name.gz``; None when neither is a file."""
    for candidate in (directory / name, directory / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def is_gzip(path: Path) -> bool:
    """Whether a file holds a gzip stream (its first bytes, not its name, decide)."""
    with open(path, "rb") as handle:
        return handle.read(2) == GZIP_MAGIC


def input_stem(path: Path) -> str:
    """A file's name without its extension, looking through ``.gz``: AAPL.csv.gz -> AAPL."""
    name = Path(path).name
    if name.lower().endswith(".gz"):
        name = name[:-3]
    return Path(name).stem


def open_input(path: Path) -> BinaryIO:
    """The file's bytes, decompressed when it is gzipped."""
    return gzip.open(path, "rb") if is_gzip(path) else open(path, "rb")


@contextmanager
def readable_gzip(path: Path) -> Iterator[None]:
    """Turn a truncated or corrupt gzip stream into bad input (not an I/O fault to retry)."""
    try:
        yield
    except (EOFError, gzip.BadGzipFile, zlib.error) as error:
        kind = "zlib.error" if isinstance(error, zlib.error) else type(error).__name__
        raise InputError(path, "rule 'readable gzip': the compressed file is truncated or "
                               f"corrupt ({kind}: {str(error).strip()[:200]}); "
                               "re-download it or pass the uncompressed CSV") from None


def read_header(path: Path) -> list[str]:
    """A CSV file's header names; bad input when it is missing, a directory, empty or not text."""
    if not path.exists():
        raise InputError(path, "rule 'file exists': no such file")
    if path.is_dir():
        raise InputError(path, "rule 'file is a CSV': this is a directory")
    with readable_gzip(path), open_input(path) as handle:
        first = handle.readline(4096)
    if not first.strip():
        raise InputError(path, "rule 'not empty': the file is empty")
    try:
        text = first.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(path, "rule 'UTF-8 text CSV': the file is not text",
                         f"first bytes: {first[:40]!r}") from None
    return [column.strip() for column in text.strip().split(",")]
