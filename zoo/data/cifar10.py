"""CIFAR-10 loader: the canonical python batches, else the JPEG archive (decoded once, cached)."""

import io
import os
import pickle
import warnings
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from ._errors import DataError
from ._locate import candidate_dirs, describe
from ._scale import to_signed_unit

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
PICKLE_DIR = "cifar-10-batches-py"
NPZ_NAME = "cifar10-jpeg-q75.npz"
SHARED_DATA_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "data"
CACHE_ENV_VAR = "DGM_CACHE_DIR"
_BATCHES = {"train": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",)}
_PICKLE_GLOBALS = {
    ("_codecs", "encode"), ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
}


class _BatchUnpickler(pickle.Unpickler):
    """Unpickler that only resolves the globals a CIFAR batch needs (no arbitrary code)."""

    def find_class(self, module: str, name: str):
        if (module, name) not in _PICKLE_GLOBALS:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a CIFAR batch")
        return super().find_class(module, name)


def load_cifar10(
    split: str = "train", data_dir: str | os.PathLike | None = None, *, limit: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Load a CIFAR-10 split (``"train"``: 50000 items, ``"test"``: 10000).

    Sources, first found wins: the python batches in ``ROOT`` or ``ROOT/cifar-10-batches-py``,
    then ``cifar10-jpeg-q75.npz`` in ``ROOT``, where ``ROOT`` is ``data_dir`` when given, else
    ``$DGM_DATA_DIR`` when set; only when neither is named, ``<repo>/../shared/data``'s archive.
    A named directory is never replaced: missing or without the data, a ``DataError`` names it.
    ``limit`` keeps only that many items, class-balanced (round-robin over the classes in file
    order, since the JPEG archive is sorted by class), in file order.
    Returns ``(x, y)``: x float32 (N, 3, 32, 32) in [-1, 1] (``x / 255 * 2 - 1``), y int64 (N,).
    """
    if split not in _BATCHES:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be positive or None, got {limit}")
    pickle_dirs = candidate_dirs(data_dir, PICKLE_DIR)
    npz_dirs = candidate_dirs(data_dir, None, SHARED_DATA_DIR)
    batch_dir = next((d for d in pickle_dirs if all((d / n).is_file() for n in _BATCHES[split])), None)
    npz_path = next((d / NPZ_NAME for d in npz_dirs if (d / NPZ_NAME).is_file()), None)
    if batch_dir is not None:
        pixels, labels = _read_batches([batch_dir / n for n in _BATCHES[split]])
        if limit is not None:
            keep = balanced_subset(labels, limit)
            pixels, labels = pixels[keep], labels[keep]
    elif npz_path is not None:
        pixels, labels = _read_jpeg_npz(npz_path, split, limit)
    else:
        raise DataError(
            f"CIFAR-10 {split} data not found: looked for the python batches "
            f"({', '.join(_BATCHES[split])}) in: {describe(pickle_dirs)}; "
            f"and for the JPEG archive {NPZ_NAME} in: {describe(npz_dirs)}; "
            "pass --data-dir or set $DGM_DATA_DIR to a directory holding either"
        )
    return to_signed_unit(pixels), labels.astype(np.int64)


def balanced_subset(labels: np.ndarray, limit: int) -> np.ndarray:
    """Sorted indices of ``min(limit, N)`` items taken round-robin over classes in file order."""
    counts = np.bincount(labels)
    order = np.argsort(labels, kind="stable")
    rank = np.empty(len(labels), np.int64)
    rank[order] = np.arange(len(labels)) - (np.cumsum(counts) - counts)[labels[order]]
    return np.sort(np.lexsort((labels, rank))[:limit])


def _check_labels(labels: np.ndarray, n: int, where: str) -> np.ndarray:
    """Validate ``labels`` as n integers in 0..9 and return them as int64."""
    labels = np.asarray(labels)
    if labels.shape != (n,) or labels.dtype.kind not in "iu":
        raise DataError(f"{where}: expected {n} integer labels, got shape {labels.shape} dtype {labels.dtype}")
    if n and not 0 <= labels.min() <= labels.max() < len(CIFAR10_CLASSES):
        raise DataError(f"{where}: labels outside 0..{len(CIFAR10_CLASSES) - 1}")
    return labels.astype(np.int64)


def _read_batches(paths: list[Path]) -> tuple[np.ndarray, np.ndarray]:
    """Read python CIFAR batches; returns uint8 (N, 3, 32, 32) and int64 (N,)."""
    images, labels = [], []
    for path in paths:
        try:
            with open(path, "rb") as f:
                batch = _BatchUnpickler(f, encoding="bytes").load()
        except Exception as e:  # a corrupt pickle can fail in many ways
            raise DataError(f"{path}: not a readable CIFAR python batch ({type(e).__name__}: {e})") from e
        data = batch.get(b"data") if isinstance(batch, dict) else None
        if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
            raise DataError(f"{path}: expected a dict with b'data' as uint8 (N, 3072)")
        images.append(data.reshape(-1, 3, 32, 32))
        labels.append(_check_labels(batch.get(b"labels", []), len(data), str(path)))
    return np.concatenate(images), np.concatenate(labels)


def _cache_path(npz_path: Path, split: str) -> Path:
    """Cache file for the fully decoded split, keyed by the archive's size and mtime."""
    st = npz_path.stat()
    root = Path(os.environ.get(CACHE_ENV_VAR) or Path.home() / ".cache" / "dgm")
    return root / f"{npz_path.stem}-{split}-{st.st_size}-{st.st_mtime_ns}.npy"


def _read_jpeg_npz(path: Path, split: str, limit: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Read (and validate) the JPEG archive; returns uint8 (N, 3, 32, 32) and int64 (N,).

    A full decode is cached as .npy (see ``_cache_path``); a ``limit`` decode reuses that cache
    when present and otherwise decodes only the selected items.
    """
    keys = (f"{split}_jpeg", f"{split}_offsets", f"{split}_labels", "classes")
    try:
        with np.load(path, allow_pickle=False) as z:
            blob, offsets, labels, classes = (z[k] for k in keys)
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
        raise DataError(f"{path}: not a readable npz with keys {keys} ({type(e).__name__}: {e})") from e
    n = labels.size
    if tuple(classes.tolist()) != CIFAR10_CLASSES:
        raise DataError(f"{path}: classes {classes.tolist()} differ from {list(CIFAR10_CLASSES)}")
    if blob.dtype != np.uint8 or blob.ndim != 1:
        raise DataError(f"{path}: {keys[0]} must be a 1-d uint8 blob")
    if (offsets.shape != (n + 1,) or offsets.dtype.kind not in "iu" or offsets[0] != 0
            or offsets[-1] != blob.size or np.any(np.diff(offsets) <= 0)):
        raise DataError(f"{path}: {keys[1]} must be {n + 1} increasing offsets from 0 to {blob.size}")
    labels = _check_labels(labels, n, f"{path}: {keys[2]}")
    keep = None if limit is None else balanced_subset(labels, limit)
    cache = _cache_path(path, split)
    pixels = _load_cache(cache, n)
    if pixels is None and keep is not None:
        return _decode(blob, offsets, keep, path, split), labels[keep]
    if pixels is None:
        pixels = _decode(blob, offsets, np.arange(n), path, split)
        _save_cache(cache, pixels)
    return (pixels, labels) if keep is None else (pixels[keep], labels[keep])


def _load_cache(cache: Path, n: int) -> np.ndarray | None:
    """The cached uint8 (n, 3, 32, 32) decode (memory-mapped), or None if absent or unusable."""
    try:
        pixels = np.asarray(np.load(cache, mmap_mode="r", allow_pickle=False))
    except (OSError, ValueError, EOFError):
        return None
    return pixels if pixels.shape == (n, 3, 32, 32) and pixels.dtype == np.uint8 else None


def _save_cache(cache: Path, pixels: np.ndarray) -> None:
    """Write ``pixels`` to ``cache`` atomically; warn (do not fail) if that is impossible."""
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(f".{os.getpid()}.tmp")
        with open(tmp, "wb") as f:
            np.save(f, pixels)
        os.replace(tmp, cache)
    except OSError as e:
        warnings.warn(f"could not write CIFAR-10 cache {cache}: {e}", stacklevel=4)


def _decode(blob: np.ndarray, offsets: np.ndarray, indices: np.ndarray, path: Path, split: str) -> np.ndarray:
    """Decode the JPEGs ``blob[offsets[i]:offsets[i + 1]]`` for ``i`` in indices; uint8 (len, 3, 32, 32)."""
    out = np.empty((len(indices), 32, 32, 3), np.uint8)
    view = memoryview(blob)
    for j, i in enumerate(tqdm(indices, desc=f"decoding CIFAR-10 {split}", unit="img", disable=None)):
        try:
            with Image.open(io.BytesIO(view[offsets[i]:offsets[i + 1]]), formats=["JPEG"]) as im:
                im.load()
                mode, size, arr = im.mode, im.size, np.asarray(im)
        except (OSError, SyntaxError, ValueError) as e:
            raise DataError(f"{path}: {split} item {i} is not a decodable JPEG ({e})") from e
        if mode != "RGB" or size != (32, 32):
            raise DataError(f"{path}: {split} item {i} is {mode} {size}, expected RGB (32, 32)")
        out[j] = arr
    return np.ascontiguousarray(out.transpose(0, 3, 1, 2))
