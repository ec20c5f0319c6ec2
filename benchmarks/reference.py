"""The reference: a plain PyTorch CNN with the layer shapes of a DGM's plain pass, written with
ordinary modules (``nn.Conv2d``, ``nn.ReLU``/``nn.LeakyReLU``, ``nn.MaxPool2d``, ``nn.AvgPool2d``,
``nn.Linear``) — what a well-written PyTorch CNN of the same architecture costs.

Mapping: a Conv2d/Dense followed (possibly through a Norm) by a Switch gets that switch's bias
(``bias=True``); the Switch becomes the ReLU; a Norm is the original CNN-F's instance RMS norm
(``x / sqrt(mean(x²) + eps)`` per sample and channel); Residual blocks keep their DAG; the head
is ``nn.Linear(d_L, K)``. Weights are freshly initialised: only shapes and cost matter here.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from dgm import DGM
from dgm import layers as L


class InsNorm(nn.Module):
    """Per-sample, per-channel RMS scaling (no centring, no affine), as ``dgm.layers.Norm``."""

    def __init__(self, eps: float = 1e-8):
        super().__init__()
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 2:
            return x / torch.sqrt(x * x + self.eps)
        return x / torch.sqrt(x.pow(2).mean(dim=(2, 3), keepdim=True) + self.eps)


class ResidualBlock(nn.Module):
    """``a = preact(x)``; ``body(a) + (x | projection(a))``."""

    def __init__(self, preact: nn.Module, body: nn.Module, projection: nn.Module | None):
        super().__init__()
        self.preact, self.body, self.projection = preact, body, projection

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.preact(x)
        return self.body(a) + (x if self.projection is None else self.projection(a))


def _switch_follows(layers: Sequence[L.Layer], i: int) -> bool:
    """Is layer i followed by a Switch, possibly through one Norm?"""
    rest = [layer for layer in layers[i + 1:i + 3]]
    if rest and isinstance(rest[0], L.Norm):
        rest = rest[1:]
    return bool(rest) and isinstance(rest[0], L.Switch)


def _modules(layers: Sequence[L.Layer]) -> nn.Sequential:
    out = []
    for i, layer in enumerate(layers):
        if isinstance(layer, L.Conv2d):
            out.append(nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size,
                                 layer.stride, layer.padding, bias=_switch_follows(layers, i)))
        elif isinstance(layer, L.Dense):
            out.append(nn.Linear(layer.in_features, layer.out_features,
                                 bias=_switch_follows(layers, i)))
        elif isinstance(layer, L.Switch):
            out.append(nn.ReLU() if layer.leak == 0 else nn.LeakyReLU(layer.leak))
        elif isinstance(layer, L.MaxPool):
            out.append(nn.MaxPool2d(layer.kernel_size))
        elif isinstance(layer, L.AvgPool):
            out.append(nn.AvgPool2d(layer.kernel_size))
        elif isinstance(layer, L.Flatten):
            out.append(nn.Flatten())
        elif isinstance(layer, L.Norm):
            out.append(InsNorm())
        elif isinstance(layer, L.Residual):
            proj = None if layer.projection is None else _modules([layer.projection])[0]
            out.append(ResidualBlock(_modules(layer.preact), _modules(layer.body), proj))
        else:
            raise TypeError(f"no reference module for {type(layer).__name__}")
    return nn.Sequential(*out)


def reference_cnn(model: DGM) -> nn.Sequential:
    """The plain PyTorch CNN of ``model``'s plain pass (encoder, layers, head), float32, CPU.

    Example:
        >>> ref = reference_cnn(fashion_dgm())
        >>> ref(torch.zeros(2, 1, 28, 28)).shape
        torch.Size([2, 10])
    """
    return nn.Sequential(_modules(list(model.encoder) + list(model.layers)),
                         nn.Linear(model.top_features, model.classes))
