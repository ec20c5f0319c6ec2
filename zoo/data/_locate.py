"""Candidate directories for a dataset: explicit argument first, then ``$DGM_DATA_DIR``."""

import os
from pathlib import Path

ENV_VAR = "DGM_DATA_DIR"


def candidate_dirs(data_dir: str | os.PathLike | None, subdir: str | None, *fallbacks: Path) -> list[Path]:
    """Return ``data_dir``, ``data_dir/subdir``, ``$DGM_DATA_DIR``, ``$DGM_DATA_DIR/subdir``, then
    ``fallbacks``, skipping unset entries and duplicates, in that order."""
    roots = [Path(data_dir)] if data_dir is not None else []
    if os.environ.get(ENV_VAR):
        roots.append(Path(os.environ[ENV_VAR]))
    dirs = []
    for root in roots:
        dirs.append(root)
        if subdir is not None:
            dirs.append(root / subdir)
    dirs.extend(fallbacks)
    return list(dict.fromkeys(d.expanduser() for d in dirs))


def describe(dirs: list[Path]) -> str:
    """One indented line per searched directory, for error messages."""
    return "\n".join(f"  {d}" for d in dirs) or "  (none)"
