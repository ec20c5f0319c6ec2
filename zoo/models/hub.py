"""The model hub (timm-style): one registry of model factories and one loader of their weights.

Model files register their factories with :func:`register_model` (they import this module,
never the reverse); ``zoo/models/__init__.py`` imports every model file, so importing this
module (which first imports its package) sees every model. The decorator returns the public
function: the factory's keyword arguments plus ``pretrained``, built by :func:`create_model`.

Weights are named by **tags**, as timm's ``model.tag``: ``NAME`` (the default weights, file
``NAME.safetensors``) and ``NAME.TAG`` (file ``NAME_TAG.safetensors``; a model declares its
tags when it registers). Files resolve as in ``zoo.weights.resolve_weights`` (the bundled
``zoo/weights/``, then ``$DGM_WEIGHTS_DIR``); a path given explicitly must exist (never
replaced by a bundled file of that name). Every file is sha256-checked against its card. A
pretrained model is built with the architecture arguments of its card (``card["arch"]``,
required; overridden by explicit keyword arguments), so weights and the inference they were
trained with travel together; a card made for another registered model, or an ``arch`` the
factory cannot build, is a ``WeightsError`` naming the file and both architectures.

Example:
    >>> net = create_model("fashion_cnnf", pretrained=True)     # bundled weights, sha256 checked
    >>> exact = create_model("fashion_cnnf.exact", pretrained=True)   # the tagged weights
    >>> net.card["metrics"]["test"]["accuracy"]
"""
from __future__ import annotations

import difflib
import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Union

import torch

from backends import ConfigError, WeightsError
from zoo.weights import ENV_VAR, load_weights, read_card, resolve_weights, weights_path as _given

Pretrained = Union[bool, str, os.PathLike]
"""False (seeded random init), True (the default weights), a tag, or a weights file path."""


@dataclass(frozen=True)
class Entry:
    """A registered model: its factory (untrained, seeded) and the tags of its weights."""
    factory: Callable[..., torch.nn.Module]
    tags: tuple[str, ...] = ()


_MODELS: dict[str, Entry] = {}


def register_model(fn: Callable | None = None, *, tags: tuple[str, ...] = (),
                   name: str | None = None) -> Callable:
    """Record ``fn`` under ``name`` (default ``fn.__name__``; a duplicate name is an error),
    with the weight ``tags`` beyond the default; returns ``fn`` with a ``pretrained`` keyword
    (see :func:`create_model`). Use as ``@register_model`` or
    ``@register_model(tags=("exact",))``."""
    def record(fn: Callable) -> Callable:
        key = name or fn.__name__
        if key in _MODELS:
            raise ConfigError(f"model {key!r} is already registered")
        _MODELS[key] = Entry(fn, tuple(tags))

        @functools.wraps(fn)
        def model(*, pretrained: Pretrained = False, **kwargs: Any) -> torch.nn.Module:
            return create_model(key, pretrained=pretrained, **kwargs)
        return model
    return record if fn is None else record(fn)


def split_tag(name: str) -> tuple[str, str]:
    """``"NAME.TAG"`` -> ``("NAME", "TAG")``; ``"NAME"`` -> ``("NAME", "")``."""
    base, _, tag = name.partition(".")
    return base, tag


def weights_file(name: str) -> str:
    """The weights file name of ``NAME`` (``NAME.safetensors``) or ``NAME.TAG``
    (``NAME_TAG.safetensors``)."""
    base, tag = split_tag(name)
    return f"{base}_{tag}.safetensors" if tag else f"{base}.safetensors"


def has_weights(name: str) -> bool:
    """Whether the weights of ``NAME`` or ``NAME.TAG`` resolve locally (bundled or
    ``$DGM_WEIGHTS_DIR``)."""
    try:
        resolve_weights(weights_file(name))
    except WeightsError:
        return False
    return True


def list_models(pretrained: bool = False) -> list[str]:
    """Sorted registered names; ``pretrained=True``: every ``NAME`` / ``NAME.TAG`` whose weights
    resolve."""
    if not pretrained:
        return sorted(_MODELS)
    tagged = [n for name, e in _MODELS.items() for n in (name, *(f"{name}.{t}" for t in e.tags))]
    return sorted(n for n in tagged if has_weights(n))


def _entry(name: str) -> Entry:
    base, tag = split_tag(name)
    if base not in _MODELS:
        close = difflib.get_close_matches(base, list(_MODELS), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
        raise ConfigError(f"unknown model {base!r}{hint} (known: {', '.join(list_models())})")
    entry = _MODELS[base]
    if tag and tag not in entry.tags:
        raise ConfigError(f"model {base!r} has no weights tag {tag!r} (tags: "
                       f"{', '.join(entry.tags) or 'none'})")
    return entry


def _is_path(pretrained: str | os.PathLike) -> bool:
    return isinstance(pretrained, os.PathLike) or pretrained.endswith(".safetensors") or \
        os.sep in pretrained


def weights_path(name: str, pretrained: Pretrained = True) -> Path:
    """The weights file of ``create_model(name, pretrained=...)``: a path (``os.PathLike``, or
    a string ending in ``.safetensors`` or holding a path separator) must be an existing file
    (``zoo.weights.weights_path``); True or a tag resolves ``weights_file(NAME[.TAG])`` in the
    bundled directory, then ``$DGM_WEIGHTS_DIR`` (``WeightsError`` naming both and how to get
    the file)."""
    base, tag = split_tag(name)
    if not isinstance(pretrained, bool) and _is_path(pretrained):
        return _given(pretrained)
    if not isinstance(pretrained, bool):
        tag = str(pretrained)
    full = f"{base}.{tag}" if tag else base
    _entry(full)
    file = weights_file(full)
    try:
        return resolve_weights(file)
    except WeightsError as err:
        raise WeightsError(
            f"{err}\nNo weights for {full} are bundled. Put {file} (with its .json card) in "
            f"${ENV_VAR}: train them (`dgm train DATASET ... --export ${ENV_VAR}/"
            f"{file.removesuffix('.safetensors')}`) or convert an original CNN-F checkpoint "
            f"(`dgm zoo convert CHECKPOINT.pt ${ENV_VAR}/{file} --arch wrn|fashion`)."
        ) from None


def create_model(name: str, *, pretrained: Pretrained = False,
                 **kwargs: Any) -> torch.nn.Module:
    """Build registered model ``name`` (``NAME`` or ``NAME.TAG``) in eval mode, ``.card`` set.

    Args:
        name: a name from :func:`list_models` (unknown names get close-match suggestions);
            ``NAME.TAG`` means ``pretrained=True`` loads the tagged weights.
        pretrained: False (seeded random init, ``card = {}``), True (the default or named
            tag's weights), a tag (``"exact"``) or a path to a ``.safetensors`` file.
        kwargs: the factory's arguments (they override the card's ``arch``).
    """
    entry = _entry(name)
    if pretrained is False:
        model = entry.factory(**kwargs)
        model.card = {}
        return model.eval()
    path = weights_path(name, pretrained)
    arch = _card_arch(split_tag(name)[0], path)
    try:
        model = entry.factory(**{**arch, **kwargs})
    except TypeError as err:
        raise WeightsError(f"weights file {path} (card arch {arch}) cannot be built as {name!r} "
                           f"({err}): the weights are of another architecture") from None
    built = getattr(model, "cycles", None)
    if "cycles" in arch and "cycles" not in kwargs and built not in (None, arch["cycles"]):
        raise WeightsError(f"weights file {path} were trained with cycles={arch['cycles']} "
                           f"(card arch {arch}) but {name!r} has cycles={built}")
    model.card = load_weights(model, path)
    return model.eval()


def _card_arch(name: str, path: Path) -> dict[str, Any]:
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
