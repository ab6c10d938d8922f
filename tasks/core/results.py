"""Where task results are kept: Prefect's local result storage, with records written atomically.

Prefect's ``LocalFileSystem.write_path`` opens the record with ``"wb"`` and writes into it, so a
process killed mid-write leaves a truncated record under the cache key. Prefect reads such a
record as a miss today (its JSON does not parse), but a record is only trustworthy if it is
whole: here every record is written to a temp file beside it, fsynced and renamed over the key
(``tasks.core.atomic``), so a reader sees the previous record, the new one, or none.
"""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

from prefect._internal.compatibility.async_dispatch import async_dispatch
from prefect.filesystems import LocalFileSystem

from tasks.core.atomic import atomic_write_bytes

T = TypeVar("T")
RECORD_TEMP_PREFIX = ".tmp-"  # a killed write leaves at most such a file; gc removes old ones


class AtomicLocalFileSystem(LocalFileSystem):
    """``LocalFileSystem`` whose ``write_path`` is write-temp, fsync, ``os.replace``."""

    _block_type_name = "Closecast Atomic Local File System"

    def _write_atomically(self, path: str, content: bytes) -> str:
        target: Path = self._resolve_path(path)
        target.parent.mkdir(exist_ok=True, parents=True)
        if target.exists() and not target.is_file():
            raise ValueError(f"Path {target} already exists and is not a file.")
        return str(atomic_write_bytes(target, content, RECORD_TEMP_PREFIX))

    async def awrite_path(self, path: str, content: bytes) -> str:
        return self._write_atomically(path, content)

    @async_dispatch(awrite_path)
    def write_path(self, path: str, content: bytes) -> str:
        return self._write_atomically(path, content)


def result_storage(cache: Path) -> AtomicLocalFileSystem:
    """The storage of a home's task results (``<home>/cache``), one record file per cache key."""
    return AtomicLocalFileSystem(basepath=str(cache))


def stored_in(cache: Path, task: T) -> T:
    """A copy of ``task`` whose results are kept in ``cache``, each record written atomically.

    Given a ``Path``, Prefect makes an unsaved ``LocalFileSystem`` of it when the task runs
    (``resolve_result_storage``); ``Task.with_options`` refuses any other unsaved block,
    because a block it cannot ship is one a remote worker would have to load by id. This one
    is shipped pickled with the task (Dask and process-pool workers included), exactly as the
    Path's block is, so the copy is made for the path and then given the atomic block.
    Don't call ``with_options`` on the copy again: give it the path and call this instead.
    """
    copy = task.with_options(result_storage=cache)
    copy.result_storage = result_storage(cache)
    return copy
