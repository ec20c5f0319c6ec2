"""Reader for the idx format (uint8 payload) used by MNIST-style datasets, gzipped or plain."""

import gzip
import zlib
from pathlib import Path

import numpy as np

from ._errors import DataError

IDX_UBYTE_TYPE = 0x08


def read_idx(path: Path, ndim: int) -> np.ndarray:
    """Read an idx file holding uint8 data with ``ndim`` dimensions (gzip if the name ends in .gz).

    Checks the magic number (``0x0000 08 ndim``, i.e. 2049 for 1-d labels, 2051 for 3-d images)
    and that the payload size equals the product of the header dimensions.
    Returns a uint8 array shaped by the header.
    """
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                raw = f.read()
        else:
            raw = path.read_bytes()
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"{path}: cannot read ({type(e).__name__}: {e}); the file is truncated or corrupt") from e
    expected_magic = (IDX_UBYTE_TYPE << 8) | ndim
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: {len(raw)} bytes is shorter than the {header}-byte idx header")
    magic = int.from_bytes(raw[:4], "big")
    if magic != expected_magic:
        raise DataError(f"{path}: bad magic number {magic}, expected {expected_magic} (uint8 idx, {ndim}-d)")
    dims = tuple(int(d) for d in np.frombuffer(raw, ">u4", ndim, 4))
    payload = len(raw) - header
    if payload != int(np.prod(dims)):
        raise DataError(f"{path}: header dims {dims} need {int(np.prod(dims))} data bytes, file has {payload}")
    return np.frombuffer(raw, np.uint8, offset=header).reshape(dims)
