"""Backend dispatch on the array type (as einops does it): a cached type lookup, lazy framework
imports."""
from __future__ import annotations

import sys
from typing import Any

from ._errors import DGMError
from ._protocol import Backend

_BY_TYPE: dict[type, Backend] = {}
_BY_NAME: dict[str, Backend] = {}


def _candidates() -> list[Backend]:

    found: list[Backend] = [backend_by_name("numpy")]
    if "torch" in sys.modules:  # only a caller that already uses torch can hold a tensor
        found.append(backend_by_name("torch"))
    return found


def backend_by_name(name: str) -> Backend:
    """The backend called ``name`` ("numpy" or "torch"); importing torch only for "torch"."""
    if name not in _BY_NAME:
        if name == "numpy":
            from ._numpy import NumpyBackend as cls
        elif name == "torch":
            from ._torch import TorchBackend as cls
        else:
            raise DGMError(f"backend must be 'numpy' or 'torch', got {name!r}")
        _BY_NAME[name] = cls()
    return _BY_NAME[name]


def get_backend(x: Any) -> Backend:
    """The backend owning array ``x``; raises DGMError for anything that is not an array."""
    cached = _BY_TYPE.get(type(x))
    if cached is not None:
        return cached
    for backend in _candidates():
        if backend.is_array(x):
            _BY_TYPE[type(x)] = backend
            return backend
    raise DGMError(f"expected a numpy array or torch tensor, got {type(x).__name__}")
