"""The torch backend: autograd-friendly, any device and floating dtype."""
from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn.functional as F

from ._protocol import Array, Backend


class TorchBackend(Backend):
    name = "torch"
    xp = torch

    def is_array(self, x: object) -> bool:
        return isinstance(x, torch.Tensor)

    def asarray(self, data: Any, like: Array) -> Array:
        return torch.as_tensor(data, dtype=like.dtype, device=like.device)

    def zeros(self, shape: Sequence[int], like: Array) -> Array:
        return torch.zeros(tuple(shape), dtype=like.dtype, device=like.device)

    def conv2d(self, x: Array, w: Array, stride: int, padding: int) -> Array:
        return F.conv2d(x, w, stride=stride, padding=padding)

    def conv2d_adjoint(self, g: Array, w: Array, stride: int, padding: int,
                       in_hw: tuple[int, int]) -> Array:
        k = w.shape[-1]
        out_pad = [in_hw[i] - ((g.shape[2 + i] - 1) * stride - 2 * padding + k) for i in (0, 1)]
        return F.conv_transpose2d(g, w, stride=stride, padding=padding,
                                  output_padding=tuple(out_pad))

    def xp_permute(self, x: Array, axes: tuple[int, ...]) -> Array:
        return x.permute(*axes)

    def xp_repeat_last(self, x: Array, n: int) -> Array:
        return x.expand(*x.shape[:-1], n)

    def argmax(self, x: Array, axis: int) -> Array:
        return torch.argmax(x, dim=axis)

    def argmin(self, x: Array, axis: int) -> Array:
        return torch.argmin(x, dim=axis)

    def take_along_axis(self, x: Array, idx: Array, axis: int) -> Array:
        return torch.take_along_dim(x, idx, dim=axis)

    def one_hot(self, idx: Array, n: int, like: Array) -> Array:
        return F.one_hot(idx, n).to(like.dtype)

    def to_float(self, x: Array, like: Array) -> Array:
        return x.to(like.dtype)

    def stop_gradient(self, x: Array) -> Array:
        return x.detach()

    def logsumexp(self, x: Array, axis: int) -> Array:
        return torch.logsumexp(x, dim=axis)

    def where(self, cond: Array, a: Array, b: Array) -> Array:
        return torch.where(cond, a, b)

    def softplus(self, u: Array) -> Array:
        return F.softplus(u, beta=1.0, threshold=20.0) if u.dtype != torch.float64 else \
            torch.clamp(u, min=0) + torch.log1p(torch.exp(-u.abs()))

    def channel_rms(self, x: Array, eps: float = 1e-8) -> Array:
        if x.ndim == 2:
            return torch.sqrt(x * x + eps)
        return torch.sqrt(x.pow(2).mean(dim=(2, 3), keepdim=True) + eps)

    def rng(self, seed: int, like: Array) -> torch.Generator:
        return torch.Generator(device=like.device).manual_seed(seed)

    def normal(self, rng: torch.Generator, shape: Sequence[int], like: Array) -> Array:
        return torch.randn(tuple(shape), generator=rng, dtype=like.dtype, device=like.device)

    def uniform(self, rng: torch.Generator, shape: Sequence[int], like: Array) -> Array:
        return torch.rand(tuple(shape), generator=rng, dtype=like.dtype, device=like.device)

    def describe(self, x: Array) -> str:
        return f"torch.Tensor[{x.dtype}, {x.device}]"
