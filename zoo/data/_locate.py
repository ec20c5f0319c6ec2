"""Directories to search for a dataset. Nothing is substituted: a directory the user named
(``data_dir``, else ``$DGM_DATA_DIR``) is the only place searched, and must be a directory;
the system/shared fallbacks are searched only when neither is given."""

import os
from pathlib import Path

from ._errors import DataError

ENV_VAR = "DGM_DATA_DIR"


def candidate_dirs(data_dir: str | os.PathLike | None, subdir: str | None, *fallbacks: Path) -> list[Path]:
    """``[root, root/subdir]`` for the named root (``data_dir``, else ``$DGM_DATA_DIR`` when set),
    else ``fallbacks``. A named root that does not exist or is not a directory is a
    ``DataError`` naming it."""
    if data_dir is not None:
        root, source = Path(data_dir).expanduser(), "data directory"
    elif os.environ.get(ENV_VAR):
        root, source = Path(os.environ[ENV_VAR]).expanduser(), f"${ENV_VAR}"
    else:
        return list(dict.fromkeys(d.expanduser() for d in fallbacks))
    if not root.is_dir():
        what = "is a file, not a directory" if root.exists() else "does not exist"
        raise DataError(f"{source} {str(root)!r} {what}")
    return [root] + ([root / subdir] if subdir is not None else [])


def named(data_dir: str | os.PathLike | None) -> bool:
    """Whether the user named a data directory (argument or ``$DGM_DATA_DIR``)."""
    return data_dir is not None or bool(os.environ.get(ENV_VAR))


def describe(dirs: list[Path]) -> str:
    """The searched directories, for one-line error messages."""
    return ", ".join(str(d) for d in dirs) or "(none)"
