"""The canonical CIFAR-10-C files (Hendrycks & Dietterich 2019): ``<corruption>.npy`` uint8
(5·n, 32, 32, 3), severity s in rows ``(s−1)·n .. s·n`` (n = 10,000: the CIFAR-10 test set in
its original order), and ``labels.npy`` (5·n,).

Searched in ``data_dir``, ``data_dir/CIFAR-10-C``, ``$DGM_DATA_DIR``, ``$DGM_DATA_DIR/CIFAR-10-C``;
files are memory-mapped, so reading a subset reads only its rows.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from zoo.data import DataError
from zoo.data._locate import candidate_dirs, describe

from ._api import parse_corruptions, parse_severities

SUBDIR = "CIFAR-10-C"
LABELS = "labels.npy"


def cifar10c_files(data_dir: str | os.PathLike | None = None) -> tuple[Path | None, dict]:
    """``(directory, {corruption: path})`` of the first candidate directory holding
    ``labels.npy``; ``(None, {})`` when there is none. Only names of this suite are listed."""
    for d in candidate_dirs(data_dir, SUBDIR):
        if (d / LABELS).is_file():
            found = {p.stem: p for p in sorted(d.glob("*.npy")) if p.name != LABELS}
            return d, found
    return None, {}


def _open(path: Path) -> np.ndarray:
    try:
        return np.load(path, mmap_mode="r")
    except (OSError, ValueError) as err:
        raise DataError(f"{path}: not a readable .npy file ({err})") from None


def load_cifar10c(name: str, severity: int, data_dir: str | os.PathLike | None = None,
                  indices: Sequence[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Images and labels of corruption ``name`` at ``severity`` from the canonical files.

    Args:
        indices: rows within the severity block (test-set indices); default all.
    Returns:
        ``(x, y)``: float32 (n, 3, 32, 32) in [0, 1] (``pixels / 255``), int64 (n,).
    Raises:
        DataError: files missing, of the wrong shape or dtype, or labels and images disagree.
    """
    (name,), (severity,) = parse_corruptions([name]), parse_severities([severity])
    directory, files = cifar10c_files(data_dir)
    if directory is None or name not in files:
        where = describe(candidate_dirs(data_dir, SUBDIR))
        raise DataError(f"CIFAR-10-C: {LABELS} and {name}.npy not found together in any "
                        f"of:\n{where}\nPass --data-dir / set $DGM_DATA_DIR to the directory "
                        f"holding the canonical CIFAR-10-C files.")
    images, labels = _open(files[name]), _open(directory / LABELS)
    if images.ndim != 4 or images.shape[1:] != (32, 32, 3) or images.dtype != np.uint8:
        raise DataError(f"{files[name]}: expected uint8 (5·n, 32, 32, 3), got {images.dtype} "
                        f"{images.shape}")
    if labels.ndim != 1 or len(labels) != len(images) or len(images) % 5:
        raise DataError(f"{directory / LABELS}: {labels.shape} labels for {images.shape[0]} "
                        f"images in {files[name]}; expected one label per image, 5·n of each")
    n = len(images) // 5
    rows = np.arange(n) if indices is None else np.asarray(indices, dtype=np.int64)
    if rows.size and (rows.min() < 0 or rows.max() >= n):
        raise DataError(f"CIFAR-10-C indices must be in 0..{n - 1}, got {rows.min()}..{rows.max()}")
    block = (severity - 1) * n + rows
    x = np.asarray(images[block], dtype=np.float32).transpose(0, 3, 1, 2) / 255
    return np.ascontiguousarray(x), np.asarray(labels[block], dtype=np.int64)
