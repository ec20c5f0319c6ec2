"""Model registry (timm-style): ``@register_model`` records a factory under its function name;
``create_model(name, pretrained=...)`` builds it and loads its weights.

Weights of a registered model ``NAME`` are the file ``NAME.safetensors`` resolved as in
``zoo.weights.resolve_weights`` (bundled ``zoo/weights/``, then ``$DGM_WEIGHTS_DIR``), or an
explicit path (which must exist: never replaced by a bundled file), sha256-checked against its
card. A pretrained model is built with the architecture arguments of its card (``card["arch"]``,
required; overridden by explicit keyword arguments), so the weights and the inference mode they
were trained with travel together; a card made for another registered model, or an ``arch`` the
factory cannot build, is a ``WeightsError`` naming the file and both architectures. Other modules register their models by
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

from backends import DGMError, WeightsError
from zoo.models.fashion import fashion_cnnf as _fashion_cnnf
from zoo.models.fashion import fashion_pixel_cnnf as _fashion_pixel_cnnf
from zoo.weights import load_weights, read_card, resolve_weights, weights_path

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
    except WeightsError:
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
    arch: dict[str, Any] = {}
    if pretrained is not False:
        path = resolve_weights(weights_file(name)) if pretrained is True else \
            weights_path(pretrained)
        arch = _card_arch(name, path)
    try:
        model = _MODELS[name](**{**arch, **kwargs})
    except TypeError as err:
        if pretrained is False:
            raise
        raise WeightsError(f"weights file {path} (card arch {arch}) cannot be built as {name!r} "
                           f"({err}): the weights are of another architecture") from None
    if pretrained is not False:
        built = getattr(model, "cycles", None)
        if "cycles" in arch and "cycles" not in kwargs and built not in (None, arch["cycles"]):
            raise WeightsError(f"weights file {path} were trained with cycles={arch['cycles']} "
                               f"(card arch {arch}) but {name!r} has cycles={built}")
        card = load_weights(model, path)
    model.card = card
    return model.eval()


def _card_arch(name: str, path) -> dict[str, Any]:
    """The ``arch`` of the card of weights file ``path``, checked to be made for ``name``."""
    card = read_card(path)
    arch = card.get("arch")
    if not isinstance(arch, dict):
        raise WeightsError(f"the card of weights file {path} has no 'arch' (the architecture and "
                           f"inference mode the weights were trained with); refusing to guess")
    owner = card.get("name")
    if isinstance(owner, str) and owner in _MODELS and owner != name:
        raise WeightsError(f"weights file {path} are {owner!r} weights (card arch {arch}), not "
                           f"{name!r}; load them as {owner!r} or pass the right file")
    return arch


@register_model
def fashion_cnn(**kwargs: Any) -> torch.nn.Module:
    """The Fashion-MNIST CNN baseline: the CNN-F architecture with 0 feedback cycles."""
    return _fashion_cnnf(**{**kwargs, "cycles": 0})


@register_model
def fashion_cnnf(**kwargs: Any) -> torch.nn.Module:
    """The Fashion-MNIST CNN-F with 5 feedback cycles (ind 2, frozen norm by default)."""
    return _fashion_cnnf(**{"cycles": 5, **kwargs})


@register_model
def fashion_dgm(**kwargs: Any) -> torch.nn.Module:
    """The pixel-level Fashion-MNIST DGM (``zoo.models.fashion.fashion_pixel_dgm``), fitted by
    the hybrid objective (CE + λ·generative); its renderings g_0 are images."""
    return _fashion_pixel_cnnf(**kwargs)


import zoo.models.wrn  # noqa: E402,F401  (registers the CIFAR-10 WRN models, zoo.models.wrn)
