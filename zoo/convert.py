"""Convert the original CNN-F checkpoints (yjhuangcd/CNNF, original-cnnf.md §A.5) to our names.

The original state dict stores every tied conv twice (``<name>.conv.weight`` and the same
tensor as ``<name>.conv_t.weight``), every linear three times (``<name>.weight``,
``<name>.linear.weight`` and its transpose ``<name>.linear_t.weight``) and biases as
``<name>_bias.bias`` of shape (1, C, 1, 1) or (1, C). We keep one tensor per weight (the
aliases are checked to agree, then dropped), biases become (C,), and the names are those of
``DGM.param_shapes`` for the chosen feedback level ``ind``:

* WRN (121 entries for WRN-40-2): ``conv1`` → the stem; ``block{g}.layer.{i}`` → residual
  block 1 + (g−1)·n + i with ``conv1`` → ``body.0``, ``ins2_bias`` → ``body.2`` (switch),
  ``conv2`` → ``body.3``, ``ins1_bias`` → ``preact.1`` (switch), ``conv_shortcut`` →
  ``projection``; the top-level ``ins1_bias`` → the head switch; ``fc``/``fc_bias`` → the
  DGM head ``head.weight``/``head.bias``. Depth, width and classes are read off the shapes.
* Fashion-MNIST (24 entries): ``conv1..4`` and ``fc1, fc2`` → the convs and dense layers in
  order, ``ins1..4_bias``, ``fc1_bias``, ``fc2_bias`` → the switches in order, ``fc3`` → head.

Layers below ``ind`` land in ``encoder.*``, the rest in ``layers.*`` (see ``zoo.models.wrn``
and ``zoo.models.fashion``); every name and shape is verified against the target model.
"""
from __future__ import annotations

import os
import re
from typing import Any, Mapping

import torch

from backends import DGMError
from dgm import layers as L

ARCHS = ("wrn", "fashion")
_WRN_KEY = re.compile(r"block(\d)\.layer\.(\d+)\.(conv1|conv2|conv_shortcut|ins1_bias|ins2_bias)"
                      r"\.(conv\.weight|conv_t\.weight|bias)$")
_WRN_SUB = {"conv1": "body.0", "conv2": "body.3", "conv_shortcut": "projection",
            "ins1_bias": "preact.1", "ins2_bias": "body.2"}


def load_official(state_dict_or_path: Mapping[str, Any] | str | os.PathLike
                  ) -> dict[str, torch.Tensor]:
    """The raw state dict: read with ``torch.load(weights_only=True)`` when given a path;
    unwraps ``{"state_dict": ...}``/``{"model": ...}`` and strips DataParallel's ``module.``."""
    sd = state_dict_or_path
    if isinstance(sd, (str, os.PathLike)):
        if not os.path.isfile(sd):
            raise FileNotFoundError(f"checkpoint {os.fspath(sd)!r} does not exist")
        try:
            sd = torch.load(sd, map_location="cpu", weights_only=True)
        except Exception as err:  # torch raises several types for corrupt or unsafe pickles
            raise DGMError(f"checkpoint {os.fspath(state_dict_or_path)!r} could not be read "
                           f"with weights_only=True ({type(err).__name__}: {err})") from None
    for wrapper in ("state_dict", "model"):
        if isinstance(sd, Mapping) and isinstance(sd.get(wrapper), Mapping):
            sd = sd[wrapper]
    if not isinstance(sd, Mapping) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise DGMError("state_dict_or_path must be a state dict of tensors (or a path to one)")
    return {k.removeprefix("module."): v for k, v in sd.items()}


def convert_official_cnnf(state_dict_or_path: Mapping[str, Any] | str | os.PathLike,
                          arch: str = "wrn", *, ind: int | None = None
                          ) -> dict[str, torch.Tensor]:
    """Map an original CNN-F checkpoint to our parameter dict (float32, contiguous).

    Args:
        state_dict_or_path: the state dict or a ``.pt`` path (loaded with weights_only=True).
        arch: "wrn" (CIFAR-10 WideResNet) or "fashion" (Fashion-MNIST CNN-F).
        ind: feedback level of the target model; default: the released one (WRN: n − 1 = 5
            for WRN-40; Fashion-MNIST: 2).
    Returns:
        ``{name: tensor}`` with exactly the names and shapes of the target ``DGM``.
    Raises:
        DGMError naming the offending key for unknown keys, disagreeing aliases or shapes.
    """
    if arch not in ARCHS:
        raise DGMError(f"arch must be one of {ARCHS}, got {arch!r}")
    sd = load_official(state_dict_or_path)
    if arch == "wrn":
        canonical, model = _wrn(sd, ind)
    else:
        canonical, model = _fashion(sd, ind)
    cut = len(model.encoder)
    params = {recut(k, cut): v.detach().to(torch.float32).contiguous()
              for k, v in canonical.items()}
    _verify(params, model.param_shapes(), arch)
    return params


def official_arch(state_dict_or_path, arch: str = "wrn") -> dict[str, int]:
    """Architecture read off an original checkpoint: WRN ``{"depth", "widen", "num_classes"}``,
    Fashion-MNIST ``{"num_classes"}``."""
    sd = load_official(state_dict_or_path)
    if arch == "fashion":
        return {"num_classes": int(_get(sd, "fc3.weight").shape[0])}
    n = 1 + max((int(m.group(2)) for k in sd if (m := _WRN_KEY.match(k)) and m.group(1) == "1"),
                default=-1)
    if n < 1:
        raise DGMError("not a CNN-F WideResNet checkpoint: no 'block1.layer.<i>.*' keys")
    widen = int(_get(sd, "block1.layer.0.conv1.conv.weight").shape[0]) // 16
    return {"depth": 6 * n + 4, "widen": widen, "num_classes": int(_get(sd, "fc.weight").shape[0])}


def recut(name: str, cut: int) -> str:
    """Rename a parameter of the encoder-free model (all layers in ``layers.*``) for a model
    whose first ``cut`` top-level layers form the encoder."""
    prefix, _, rest = name.partition(".")
    if prefix != "layers" or cut == 0:
        return name
    index, _, tail = rest.partition(".")
    i = int(index)
    return f"encoder.{i}.{tail}" if i < cut else f"layers.{i - cut}.{tail}"


def _wrn(sd: dict, ind: int | None):
    from .models.wrn import wrn_dgm
    arch = official_arch(sd, "wrn")
    n = (arch["depth"] - 4) // 6
    out: dict[str, torch.Tensor] = {}
    for key, value in sd.items():
        m = _WRN_KEY.match(key)
        if m:
            g, i, part, kind = int(m.group(1)), int(m.group(2)), m.group(3), m.group(4)
            if kind == "conv_t.weight":
                _same(sd, key, key.replace("conv_t", "conv"), value)
                continue
            out[f"layers.{1 + (g - 1) * n + i}.{_WRN_SUB[part]}.{kind.split('.')[-1]}"] = \
                _bias(key, value) if kind == "bias" else value
        elif key == "conv1.conv.weight":
            out["layers.0.weight"] = value
        elif key == "conv1.conv_t.weight":
            _same(sd, key, "conv1.conv.weight", value)
        elif key == "ins1_bias.bias":
            out[f"layers.{3 * n + 2}.bias"] = _bias(key, value)
        elif not _head(sd, key, value, "fc", out):
            raise DGMError(f"unexpected key {key!r} in a CNN-F WideResNet checkpoint")
    model = wrn_dgm(arch["depth"], arch["widen"], ind, arch["num_classes"])
    return out, model


def _fashion(sd: dict, ind: int | None):
    from .models.fashion import fashion_dgm, fashion_layers
    leaves = [layer for block in fashion_layers() for layer in block]
    linear = [i for i, layer in enumerate(leaves) if isinstance(layer, (L.Conv2d, L.Dense))]
    switches = [i for i, layer in enumerate(leaves) if isinstance(layer, L.Switch)]
    names = [f"conv{k}" for k in range(1, 5)] + ["fc1", "fc2"]
    biases = [f"ins{k}_bias" for k in range(1, 5)] + ["fc1_bias", "fc2_bias"]
    out: dict[str, torch.Tensor] = {}
    for key, value in sd.items():
        stem, _, kind = key.partition(".")
        if stem in names[:4] and kind == "conv.weight":
            out[f"layers.{linear[names.index(stem)]}.weight"] = value
        elif stem in names[:4] and kind == "conv_t.weight":
            _same(sd, key, f"{stem}.conv.weight", value)
        elif stem in names[4:] and kind in ("weight", "linear.weight", "linear_t.weight"):
            if kind == "weight":
                out[f"layers.{linear[names.index(stem)]}.weight"] = value
            else:
                _linear_alias(sd, key, stem, value)
        elif stem in biases and kind == "bias":
            out[f"layers.{switches[biases.index(stem)]}.bias"] = _bias(key, value)
        elif not _head(sd, key, value, "fc3", out):
            raise DGMError(f"unexpected key {key!r} in a CNN-F Fashion-MNIST checkpoint")
    ind = 2 if ind is None else ind
    return out, fashion_dgm(ind, "frozen")


def _head(sd: dict, key: str, value: torch.Tensor, fc: str, out: dict) -> bool:
    """The classifier ``fc``: weight → head.weight, bias → head.bias, aliases checked."""
    if key == f"{fc}.weight":
        out["head.weight"] = value
    elif key in (f"{fc}.linear.weight", f"{fc}.linear_t.weight"):
        _linear_alias(sd, key, fc, value)
    elif key == f"{fc}_bias.bias":
        out["head.bias"] = _bias(key, value)
    else:
        return False
    return True


def _linear_alias(sd: dict, key: str, stem: str, value: torch.Tensor) -> None:
    weight = _get(sd, f"{stem}.weight")
    _same(sd, key, f"{stem}.weight", value.T if key.endswith("linear_t.weight") else value,
          weight)


def _same(sd: dict, key: str, main: str, value: torch.Tensor, ref: torch.Tensor | None = None
          ) -> None:
    ref = _get(sd, main) if ref is None else ref
    if value.shape != ref.shape or not torch.equal(value, ref):
        raise DGMError(f"alias {key!r} disagrees with {main!r}: the checkpoint is not a "
                       f"tied CNN-F state dict")


def _bias(key: str, value: torch.Tensor) -> torch.Tensor:
    if value.ndim not in (2, 4) or value.shape[0] != 1 or any(s != 1 for s in value.shape[2:]):
        raise DGMError(f"{key!r} must have shape (1, C, 1, 1) or (1, C), got "
                       f"{tuple(value.shape)}")
    return value.reshape(-1)


def _get(sd: dict, key: str) -> torch.Tensor:
    if key not in sd:
        raise DGMError(f"checkpoint has no {key!r}")
    return sd[key]


def _verify(params: dict, expected: dict, arch: str) -> None:
    missing = sorted(set(expected) - set(params))
    extra = sorted(set(params) - set(expected))
    if missing or extra:
        raise DGMError(f"converted {arch} checkpoint does not match the model: missing "
                       f"{missing[:5]}, unexpected {extra[:5]}")
    for name, shape in expected.items():
        if tuple(params[name].shape) != tuple(shape):
            raise DGMError(f"converted {name!r} has shape {tuple(params[name].shape)}, the "
                           f"model expects {tuple(shape)}")
