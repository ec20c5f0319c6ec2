"""JSON lines files: one JSON object per line."""
from __future__ import annotations

import json
import os
from typing import Any, Iterable


def write_jsonl(path: str | os.PathLike, records: Iterable[Any]) -> None:
    """Write ``records`` to ``path``, one per line: dicts as they are, other objects through
    their ``to_dict()``."""
    with open(path, "w") as f:
        for r in records:
            f.write(json.dumps(r.to_dict() if hasattr(r, "to_dict") else r) + "\n")
