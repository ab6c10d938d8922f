"""What a Prefect result record in ``cache/`` names: home paths read without unpickling."""

from __future__ import annotations

import base64
import json
import os
import pickletools
import re
from pathlib import Path, PurePosixPath

# Top directories of a home that a record's result may name (paths outside them are inputs).
NAMED = ("staging", "work", "validation", "lake", "models", "predictions")


def record_paths(record: Path, home: Path) -> set[str] | None:
    """Home-relative paths that a record's result names; None when the record cannot be read.

    The result's pickle is read with ``pickletools`` (opcodes only; nothing is unpickled, no
    code runs): every string in it that is a path under the home counts.
    """
    try:
        data = json.loads(record.read_bytes())
        kind = data["metadata"]["serializer"]["type"]
        result = data["result"]
        if kind == "pickle":
            strings = [arg for _, arg, _ in pickletools.genops(base64.b64decode(result))
                       if isinstance(arg, str)]
        else:  # e.g. the json serializer: its text holds the paths
            strings = re.findall(r"[^\"'\s]+", result if isinstance(result, str)
                                 else json.dumps(result))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    roots = (home.absolute(), home.resolve())
    return {rel for text in strings if (rel := home_relative(text, roots, home.name))}


def home_relative(text: str, roots: tuple[Path, ...], name: str) -> str | None:
    """``text`` as a path relative to the home if it names something under one of its
    NAMED directories: absolute under a root, or relative as ``[...]/<home name>/<dir>/...``
    (a home given as a relative path), else None."""
    if "/" not in text or "\n" in text or len(text) > 4096:
        return None
    path = PurePosixPath(os.path.normpath(text))
    if path.is_absolute():
        for root in roots:
            try:
                rel = path.relative_to(root)
            except ValueError:
                continue
            return rel.as_posix() if rel.parts and rel.parts[0] in NAMED else None
        return None
    parts = path.parts
    for i, part in enumerate(parts):
        if part in NAMED and (i == 0 or parts[i - 1] == name):
            return "/".join(parts[i:])
    return None
