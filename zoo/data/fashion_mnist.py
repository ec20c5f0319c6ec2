"""Fashion-MNIST loader: locate the four idx files, validate them, return scaled arrays."""

import os
from pathlib import Path

import numpy as np

from ._errors import DataError
from ._idx import read_idx
from ._locate import ENV_VAR, candidate_dirs, describe, named
from ._scale import to_signed_unit

FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
INSTALL_HINT = "apt-get update && apt-get install -y dataset-fashion-mnist"
_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def _find(directory: Path, stem: str) -> Path | None:
    """``stem.gz`` if present, else the uncompressed ``stem``, else None."""
    for path in (directory / f"{stem}.gz", directory / stem):
        if path.is_file():
            return path
    return None


def load_fashion_mnist(split: str = "train", data_dir: str | os.PathLike | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Load a Fashion-MNIST split (``"train"``: 60000 items, ``"test"``: 10000).

    Searches ``data_dir`` and ``data_dir/fashion-mnist`` when given, else ``$DGM_DATA_DIR``
    and ``$DGM_DATA_DIR/fashion-mnist`` when set, else ``/usr/share/datasets/fashion-mnist``;
    the first directory holding both files of the split wins. A named directory is never
    replaced by the system one: missing or empty, it is a ``DataError`` naming it.
    Returns ``(x, y)``: x float32 (N, 1, 28, 28) in [-1, 1] (``x / 255 * 2 - 1``), y int64 (N,).
    """
    if split not in _FILES:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    stems = _FILES[split]
    dirs = candidate_dirs(data_dir, "fashion-mnist", SYSTEM_DIR)
    for directory in dirs:
        paths = [_find(directory, stem) for stem in stems]
        if all(paths):
            break
    else:
        hint = ("check the directory" if named(data_dir) else
                f"install them with `{INSTALL_HINT}`, or pass --data-dir / set ${ENV_VAR}")
        raise DataError(
            f"Fashion-MNIST {split} files not found: expected {stems[0]}.gz and {stems[1]}.gz "
            f"(or uncompressed, without .gz) in one of: {describe(dirs)}; {hint}"
        )
    images_path, labels_path = paths
    images = read_idx(images_path, 3)
    labels = read_idx(labels_path, 1)
    if images.shape[1:] != (28, 28):
        raise DataError(f"{images_path}: images are {images.shape[1:]}, expected (28, 28)")
    if len(images) != len(labels):
        raise DataError(f"{images_path} has {len(images)} images but {labels_path} has {len(labels)} labels")
    if labels.size and labels.max() >= len(FASHION_MNIST_CLASSES):
        raise DataError(f"{labels_path}: label {labels.max()} out of range 0..{len(FASHION_MNIST_CLASSES) - 1}")
    return to_signed_unit(images[:, None]), labels.astype(np.int64)
