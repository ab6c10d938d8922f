"""A version's network file: its own model.keras, or a global network stored once by its hash."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import uuid
import zipfile
from pathlib import Path

import numpy as np

from tasks.core.errors import RegistryError
from tasks.core.hashing import file_sha256, file_state
from tasks.core.paths import confined
from tasks.registry.registry import fsync_path

MODEL_FILE = "model.keras"
MODEL_REF = "model-ref.json"  # a version of a shared (global) model: {"sha256": ...}
SHARED = "_shared"  # models/_shared/<sha256>.keras; "_" cannot start a symbol


def network_sha256(path: Path) -> str:
    """sha256 of what a saved network *is*: its architecture (config.json) and every array
    of its weights file by name, dtype, shape and value; not of the file's bytes, which
    differ from save to save (Keras stamps the second in metadata.json and writes Python
    object ids as ``shared_object_id``), so the same network trained again in another process
    is the same network here. Hashed once per file as it is (a global network's file is
    every symbol's of a run)."""
    return _network_sha256(str(path), *file_state(path))


@functools.lru_cache(maxsize=64)
def _network_sha256(path: str, inode: int, size: int, mtime_ns: int) -> str:
    """``network_sha256`` of the file at ``path`` with that inode, size and modification time
    (a file saved again is hashed again)."""
    import io

    import h5py

    digest = hashlib.sha256()
    with zipfile.ZipFile(path) as archive:
        digest.update(_canonical_config(json.loads(archive.read("config.json"))).encode())
        with h5py.File(io.BytesIO(archive.read("model.weights.h5")), "r") as weights:
            arrays: list[tuple[str, object]] = []
            weights.visititems(lambda name, item: arrays.append((name, item[()]))
                               if isinstance(item, h5py.Dataset) else None)
            for name, value in sorted(arrays, key=lambda pair: pair[0]):
                value = np.asarray(value)
                digest.update(f"{name}|{value.dtype.str}|{value.shape}".encode())
                digest.update(np.ascontiguousarray(value).tobytes())
    return digest.hexdigest()


def _canonical_config(config: object) -> str:
    """A Keras config as JSON with its ``shared_object_id`` values (object ids of the saving
    process) renumbered in order of first appearance."""
    ids: dict[object, int] = {}

    def walk(node: object) -> object:
        if isinstance(node, dict):
            return {k: (ids.setdefault(v, len(ids)) if k == "shared_object_id" else walk(v))
                    for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    return json.dumps(walk(config), sort_keys=True)


def shared_model_path(models: Path, sha256: str) -> Path:
    """Where the shared model with this content hash lives."""
    if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
        raise RegistryError(f"{sha256!r} is not a sha256 of a shared model")
    return confined(models, SHARED, f"{sha256}.keras")


def store_shared_model(models: Path, source: Path) -> str:
    """Store a trained model once under its content hash (idempotent, atomic); its sha256."""
    sha = file_sha256(source)
    target = shared_model_path(models, sha)
    if target.is_file() and file_sha256(target) == sha:
        return sha
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".tmp-{uuid.uuid4().hex}.keras"
    try:
        shutil.copyfile(source, tmp)
        fsync_path(tmp)
        os.replace(tmp, target)
    except OSError as error:
        tmp.unlink(missing_ok=True)
        raise RegistryError(f"could not store the shared model {target}: {error}") from error
    fsync_path(target.parent)
    return sha


def model_file(path: Path) -> Path:
    """A version's network: its own model.keras, or the shared file its model-ref.json names."""
    ref = path / MODEL_REF
    if not ref.is_file():
        return path / MODEL_FILE
    try:
        sha = str(json.loads(ref.read_text())["sha256"])
    except (OSError, ValueError, TypeError, KeyError) as error:
        raise RegistryError(f"{ref} is unreadable ({error.__class__.__name__})") from error
    return shared_model_path(path.parent.parent, sha)
