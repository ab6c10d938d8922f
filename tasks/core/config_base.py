"""The base of every config model: frozen, unknown keys refused, a short stable fingerprint."""

from __future__ import annotations

import hashlib
import json

from pydantic import BaseModel, ConfigDict


class FrozenConfig(BaseModel):
    """Frozen, no unknown keys, and a fingerprint of its values."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    def fingerprint(self) -> str:
        """Short, stable hash of this config's values (used in cache keys and paths)."""
        blob = json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:12]
