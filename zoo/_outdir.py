"""Output directories: checked writable before any work, so nothing is computed for nothing."""
from __future__ import annotations

from pathlib import Path

from backends import ConfigError


def check_writable(directory: str | Path, option: str = "--out") -> Path:
    """Create ``directory`` (and parents) and write/delete a probe file in it; ``ConfigError``
    naming ``option`` when that fails (read-only, a file in the way, no permission, disk full)."""
    directory = Path(directory)
    probe = directory / ".dgm-write-probe"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"x")
        probe.unlink()
    except OSError as err:
        raise ConfigError(f"{option} {directory} is not a writable directory "
                          f"({err.strerror or err})") from None
    return directory
