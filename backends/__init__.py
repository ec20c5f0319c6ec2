"""Array backends: the small op protocol the DGM and the inference engine are written against.

Requirements: this package never imports a framework at module level. ``get_backend(x)``
dispatches on the array's type (numpy arrays -> the float64 reference, torch tensors -> the torch
backend); the torch backend is created only when torch is already imported by the caller.
"""
from ._errors import ConfigError, DataError, DGMError, InputError, WeightsError
from ._protocol import Backend
from ._dispatch import get_backend, backend_by_name

__all__ = ["Backend", "ConfigError", "DataError", "DGMError", "InputError", "WeightsError", "backend_by_name", "get_backend"]
