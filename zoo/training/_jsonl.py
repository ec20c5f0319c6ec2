"""Append-only JSON-lines log: one object per line (a step, a validation, an epoch)."""
from __future__ import annotations

import json
import os
from pathlib import Path


class JsonlLog:
    """Appends ``{"event": ..., **fields}`` lines to ``path``, flushed after each record."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, event: str, **fields) -> None:
        with self.path.open("a") as f:
            f.write(json.dumps({"event": event, **fields}) + "\n")
