"""Model registry (timm-style): ``@register_model`` records a factory under its function name;
``create_model(name, pretrained=...)`` builds it and loads its weights.

Weights of a registered model ``NAME`` are the file ``NAME.safetensors`` resolved as in
``zoo.weights.resolve_weights`` (explicit path, bundled ``zoo/weights/``, ``$DGM_WEIGHTS_DIR``),
sha256-checked against its card. A pretrained model is built with the architecture arguments of
its card (``card["arch"]``, overridden by explicit keyword arguments), so the weights and the
inference mode they were trained with travel together. Other modules register their models by
importing :func:`register_model` (e.g. ``zoo.models.wrn``).

Example:
    >>> net = create_model("fashion_cnnf", pretrained=True)   # bundled weights, sha256 checked
    >>> net.card["metrics"]["test"]["accuracy"]
"""
from __future__ import annotations

import difflib
import os
from typing import Any, Callable, Union

import torch

from backends import DGMError
from zoo.models.fashion import fashion_cnnf as _fashion_cnnf
from zoo.weights import load_weights, read_card, resolve_weights

_MODELS: dict[str, Callable[..., torch.nn.Module]] = {}


def register_model(fn: Callable[..., torch.nn.Module]) -> Callable[..., torch.nn.Module]:
    """Record ``fn`` under ``fn.__name__`` (a duplicate name is an error); returns ``fn``."""
    if fn.__name__ in _MODELS:
        raise DGMError(f"model {fn.__name__!r} is already registered")
    _MODELS[fn.__name__] = fn
    return fn


def weights_file(name: str) -> str:
    """The weights file name of registered model ``name``."""
    return f"{name}.safetensors"


def has_weights(name: str) -> bool:
    """Whether ``name``'s weights resolve locally (bundled or ``$DGM_WEIGHTS_DIR``)."""
    try:
        resolve_weights(weights_file(name))
    except FileNotFoundError:
        return False
    return True


def list_models(pretrained: bool = False) -> list[str]:
    """Sorted registered names; ``pretrained=True``: only those whose weights resolve."""
    return sorted(n for n in _MODELS if not pretrained or has_weights(n))


def create_model(name: str, *, pretrained: Union[bool, str, os.PathLike] = False,
                 **kwargs: Any) -> torch.nn.Module:
    """Build registered model ``name`` in eval mode, with ``.card`` set.

    Args:
        name: a name from :func:`list_models` (unknown names get close-match suggestions).
        pretrained: False (seeded random init, ``card = {}``), True (the registry's weights
            file ``name.safetensors``) or a path to a weights file.
        kwargs: architecture arguments for the factory (override the card's ``arch``).
    """
    if name not in _MODELS:
        close = difflib.get_close_matches(name, list(_MODELS), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
        raise DGMError(f"unknown model {name!r}{hint} (known: {', '.join(list_models())})")
    card: dict[str, Any] = {}
    if pretrained is not False:
        source = weights_file(name) if pretrained is True else pretrained
        path = resolve_weights(source)
        kwargs = {**read_card(path).get("arch", {}), **kwargs}
    model = _MODELS[name](**kwargs)
    if pretrained is not False:
        card = load_weights(model, path)
    model.card = card
    return model.eval()


@register_model
def fashion_cnn(**kwargs: Any) -> torch.nn.Module:
    """The Fashion-MNIST CNN baseline: the CNN-F architecture with 0 feedback cycles."""
    return _fashion_cnnf(**{**kwargs, "cycles": 0})


@register_model
def fashion_cnnf(**kwargs: Any) -> torch.nn.Module:
    """The Fashion-MNIST CNN-F with 5 feedback cycles (ind 2, frozen norm by default)."""
    return _fashion_cnnf(**{"cycles": 5, **kwargs})


import zoo.models.wrn  # noqa: E402,F401  (registers the CIFAR-10 WRN models, zoo.models.wrn)
