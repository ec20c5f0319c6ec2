"""The model zoo: pretrained CNN-F models, training, attacks and evaluation (``dgm`` CLI).

Top-level names are imported lazily (torch and the registry load on first use).
"""
from __future__ import annotations

import importlib

__all__ = ["cnnf_wrn", "create_model", "fashion_cnnf", "list_models"]

_SOURCES = {"cnnf_wrn": "zoo.models.wrn", "create_model": "zoo.registry",
            "list_models": "zoo.registry", "fashion_cnnf": "zoo.models.fashion"}


def __getattr__(name: str):
    if name in _SOURCES:
        return getattr(importlib.import_module(_SOURCES[name]), name)
    raise AttributeError(f"module 'zoo' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
