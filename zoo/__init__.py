"""The model zoo: pretrained CNN-F models, training, attacks and evaluation (``dgm`` CLI).

Top-level names are imported lazily (torch and the model hub load on first use).
"""
from __future__ import annotations

import importlib

__all__ = ["cnnf_wrn", "create_model", "fashion_cnn", "fashion_cnnf", "list_models"]


def __getattr__(name: str):
    if name in __all__:
        return getattr(importlib.import_module("zoo.models"), name)
    raise AttributeError(f"module 'zoo' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
