"""The torch backend: autograd-friendly, any device and floating dtype."""
from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn.functional as F

from ._protocol import Array, Backend


class TorchBackend(Backend):
    name = "torch"
    xp = torch

    def __init__(self):
        self._tables: dict = {}  # index tables of the pool ops, per map size / window / device

    def is_array(self, x: object) -> bool:
        return isinstance(x, torch.Tensor)

    def asarray(self, data: Any, like: Array) -> Array:
        return torch.as_tensor(data, dtype=like.dtype, device=like.device)

    def zeros(self, shape: Sequence[int], like: Array) -> Array:
        return torch.zeros(tuple(shape), dtype=like.dtype, device=like.device)

    def conv2d(self, x: Array, w: Array, stride: int, padding: int) -> Array:
        return F.conv2d(_fast_layout(x), w, stride=stride, padding=padding)

    def conv2d_adjoint(self, g: Array, w: Array, stride: int, padding: int,
                       in_hw: tuple[int, int]) -> Array:
        k = w.shape[-1]
        out_pad = [in_hw[i] - ((g.shape[2 + i] - 1) * stride - 2 * padding + k) for i in (0, 1)]
        return F.conv_transpose2d(_fast_layout(g), w, stride=stride, padding=padding,
                                  output_padding=tuple(out_pad))

    def fast_layout(self, x: Array) -> Array:
        return _fast_layout(x)

    # -- fused pools on (N,H,W,C) views: F.max_pool2d's first-maximum indices for arg-max/min,
    # gather for P_t, scatter for U_t, bitwise ops for bools ------------------------------------
    def max_pool_positions(self, x: Array, k: int) -> tuple[Array, Array]:
        values, idx = F.max_pool2d(_fast_layout(x), k, return_indices=True)
        return values, self._position(idx, x.shape[-2:], k, not self.needs_grad(x))

    def min_pool_positions(self, x: Array, k: int) -> tuple[Array, Array]:
        values, idx = F.max_pool2d(-_fast_layout(x), k, return_indices=True)  # first max of -x
        return -values, self._position(idx, x.shape[-2:], k, not self.needs_grad(x))

    def extremum_pool_positions(self, x: Array, up: Array, k: int,
                                overwrite: bool = False) -> tuple[Array, Array]:
        # one max-pool of x·m with m = ±1 per window (exact: a sign flip), the first maximum of
        # -x being the first minimum of x, as min_pool_positions; the product is written into
        # x itself when it is a spent temporary in channels-last order
        sign = up.view(torch.uint8).to(x.dtype).mul_(2).sub_(1)  # ±1 (torch.where(up, 1., -1.)
        # is ~10× slower on CPU)
        n, c, h, w = x.shape
        windows = _nhwc(x).view(n, h // k, k, w // k, k, c)
        m = _nhwc(sign)[:, :, None, :, None, :]
        signed = self.update(windows, "*", m,  # (into x only when _nhwc made no copy)
                             overwrite and windows.data_ptr() == x.data_ptr())
        values, idx = F.max_pool2d(_from_windows(signed), k, return_indices=True)
        values = self.update(values, "*", sign, True)
        return values, self._position(idx, (h, w), k, not self.needs_grad(x))

    def needs_grad(self, x: Array) -> bool:
        return torch.is_grad_enabled() and isinstance(x, torch.Tensor) and x.requires_grad

    def plain_gate(self, a: Array, leak: float, overwrite: bool = False) -> tuple[Array, Array]:
        if leak != 0.0:
            return super().plain_gate(a, leak, overwrite)
        z = a > 0  # (before the ReLU, which may write into a)
        return self.activate(a, leak, overwrite), z  # relu(a) = a·1[a > 0], same gradient

    def activate(self, a: Array, leak: float, overwrite: bool = False) -> Array:
        if leak != 0.0:
            return super().activate(a, leak, overwrite)
        return F.relu(a, inplace=overwrite and not self.needs_grad(a))

    def bias_activate(self, x: Array, b: Array, leak: float, overwrite: bool = False) -> Array:
        if leak != 0.0 or x.device.type != "cpu" or self.needs_grad(x) or self.needs_grad(b):
            return super().bias_activate(x, b, leak, overwrite)  # (aten's add+ReLU is CPU-only)
        # one fused pass: max(x + b, 0), the same numbers as the sum then the ReLU (except that
        # a NaN sum, only possible after an overflow to ±inf, gives 0 where F.relu keeps NaN)
        if overwrite:
            return torch.ops.aten._add_relu_(x, b)
        return torch.ops.aten._add_relu(x, b)

    def max_pool(self, x: Array, k: int) -> Array:
        return F.max_pool2d(_fast_layout(x), k)

    def pool_select(self, x: Array, t: Array, k: int) -> Array:
        known = _recall(x, "_dgm_selected", (t, k))
        if known is not None:
            return known
        n, c, hp, wp = t.shape
        idx = self._flat_index(t, x.shape[-2:], k).view(n, hp * wp, c)
        out = _nhwc(x).reshape(n, -1, c).gather(1, idx)
        return out.view(n, hp, wp, c).permute(0, 3, 1, 2)

    def pool_place(self, g: Array, t: Array, k: int) -> Array:
        if torch.is_grad_enabled() and g.requires_grad:
            return _PoolPlace.apply(g, t, k, self)
        return self._place(g, t, k)

    def _place(self, g: Array, t: Array, k: int) -> Array:
        # a scatter into zeros (the one-hot product's values; its zeros are all +0)
        n, c, hp, wp = t.shape
        hw = (hp * k, wp * k)
        out = g.new_zeros((n, hw[0] * hw[1], c))
        out.scatter_(1, self._flat_index(t, hw, k).view(n, hp * wp, c),
                     _nhwc(g).view(n, hp * wp, c))
        return out.view(n, hw[0], hw[1], c).permute(0, 3, 1, 2)

    def pool_update(self, x: Array, t: Array, values: Array, k: int) -> Array:
        if torch.is_grad_enabled() and (x.requires_grad or values.requires_grad):
            return super().pool_update(x, t, values, k)
        # a copy of x with the chosen entries scattered in (channels-last, as the pools)
        n, c, hp, wp = t.shape
        out = x.permute(0, 2, 3, 1).clone(memory_format=torch.contiguous_format)
        values = values.to(x.dtype)
        out.view(n, -1, c).scatter_(1, self._flat_index(t, x.shape[-2:], k).view(n, hp * wp, c),
                                    _nhwc(values).view(n, hp * wp, c))
        out = out.permute(0, 3, 1, 2)
        if not values.requires_grad:  # P_t of the result is ``values``: no gather needed later
            _remember(out, "_dgm_selected", (t, k), values)
        return out

    def _window_tables(self, hw, k: int, device) -> tuple[Array, Array, Array]:
        """For an H×W map: flat index of each window's top-left entry (H/k, W/k); the offset of
        in-window position p (k²,); the in-window position of an offset d ((k-1)W + k,), as
        uint8 when k² ≤ 256 (so positions take an eighth of int64's memory and traffic)."""
        key = (int(hw[0]), int(hw[1]), k, device)
        tables = self._tables.get(key)
        if tables is None:
            h, w = key[:2]
            start = torch.arange(0, h, k, device=device)[:, None] * w + \
                torch.arange(0, w, k, device=device)
            r, c = torch.arange(k, device=device).repeat_interleave(k), \
                torch.arange(k, device=device).repeat(k)
            offset = r * w + c
            dtype = torch.uint8 if k * k <= 256 else torch.int64
            position = torch.zeros((k - 1) * w + k, dtype=dtype, device=device)
            position[offset] = torch.arange(k * k, device=device).to(dtype)
            tables = self._tables[key] = (start, offset, position)
        return tables

    def _position(self, idx: Array, hw, k: int, spent: bool) -> Array:
        """Flat H·W index inside window (i, j) -> row-major in-window position 0..k²-1
        (computed on the (N,H',W',C) view; returned channels-last); ``spent``: ``idx`` is not
        read afterwards (autograd does not keep it for a max-pool's backward), so the
        arithmetic is done in its memory."""
        start, _, position = self._window_tables(hw, k, idx.device)
        local = _nhwc(idx)  # (a view for max-pool indices of a channels-last map, else a copy)
        local = self.update(local, "-", start[:, :, None], spent)
        return torch.take(position, local).permute(0, 3, 1, 2)

    def _flat_index(self, t: Array, hw, k: int) -> Array:
        """Inverse of ``_position``: in-window position -> flat H·W index, as (N,H',W',C).

        Kept on ``t`` itself (as ``t._dgm_flat``), since one state's positions are placed and
        selected several times a cycle (the memo rule of ``dgm.traverse``)."""
        key = (int(hw[0]), int(hw[1]), k)
        flat = _recall(t, "_dgm_flat", key)
        if flat is None:
            start, offset, _ = self._window_tables(hw, k, t.device)
            flat = _remember(t, "_dgm_flat", key, torch.take(offset, _long(_nhwc(t))).add_(
                start[:, :, None]))
        return flat

    def xp_permute(self, x: Array, axes: tuple[int, ...]) -> Array:
        return x.permute(*axes)

    def xp_repeat_last(self, x: Array, n: int) -> Array:
        return x.expand(*x.shape[:-1], n)

    def argmax(self, x: Array, axis: int) -> Array:
        return torch.argmax(x, dim=axis)

    def argmin(self, x: Array, axis: int) -> Array:
        return torch.argmin(x, dim=axis)

    def take_along_axis(self, x: Array, idx: Array, axis: int) -> Array:
        return torch.take_along_dim(x, _long(idx), dim=axis)

    def one_hot(self, idx: Array, n: int, like: Array) -> Array:
        return F.one_hot(_long(idx), n).to(like.dtype)

    def to_float(self, x: Array, like: Array) -> Array:
        if x.dtype == torch.bool:  # uint8 -> float has a vectorised kernel, bool -> float not
            x = x.view(torch.uint8)
        return x.to(like.dtype)

    def forget(self, x: Array) -> None:
        for name in _MEMOS:
            x.__dict__.pop(name, None)

    def sign(self, x: Array) -> Array:
        return torch.sign(x.detach()).to(torch.int8)

    def stop_gradient(self, x: Array) -> Array:
        return x.detach()

    def logsumexp(self, x: Array, axis: int) -> Array:
        return torch.logsumexp(x, dim=axis)

    def where(self, cond: Array, a: Array, b: Array) -> Array:
        if _bit_select_applies(cond, a, b) and not (self.needs_grad(a) or self.needs_grad(b)):
            return _bit_select(cond, a, b)
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


_CHANNELS_LAST_DTYPES = (torch.float32, torch.bfloat16, torch.float16)


# -- torch.where on CPU runs 5-6× slower than a few integer passes: for same-shape, same-dtype
# operands the selection is done on their bits instead, b ^ ((b ^ a) & mask) with mask all
# ones where cond holds — the same bits as torch.where, NaN payloads and signed zeros included
_BITS = {torch.float32: torch.int32, torch.float64: torch.int64, torch.int64: torch.int64,
         torch.int32: torch.int32, torch.int16: torch.int16, torch.int8: torch.int8,
         torch.uint8: torch.uint8}


def _bit_select_applies(cond: Array, a: Array, b: Array) -> bool:
    return isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and \
        a.dtype == b.dtype and a.dtype in _BITS and cond.dtype == torch.bool and \
        a.shape == b.shape == cond.shape and a.device.type == "cpu" == b.device.type == \
        cond.device.type


def _bit_select(cond: Array, a: Array, b: Array) -> Array:
    bits = _BITS[a.dtype]
    mask = cond.view(torch.uint8).to(bits)  # 0 / 1
    mask = mask.mul_(255) if bits == torch.uint8 else mask.neg_()  # 0 / all ones
    a_bits, b_bits = a.view(bits), b.view(bits)
    return (b_bits ^ a_bits).bitwise_and_(mask).bitwise_xor_(b_bits).view(a.dtype)


def _long(idx: Array) -> Array:
    """Integer positions as the int64 that torch's indexing ops take (uint8 positions are
    this backend's own, any integer dtype is accepted)."""
    return idx if idx.dtype == torch.int64 else idx.long()


# -- facts remembered on a tensor (flat pool indices of positions, P_t of a pool_update result),
# with the version counters of the tensors involved: the memo rule, stated in dgm.traverse
_MEMOS = ("_dgm_flat", "_dgm_selected")


def _versions(tensors: tuple) -> tuple:
    return tuple(-1 if t.is_inference() else t._version for t in tensors)


def _recall(x: Array, name: str, key: tuple):
    """The value remembered on ``x`` under ``name`` for ``key`` (tensors in ``key`` compared
    by identity), or None."""
    memo = getattr(x, name, None)
    if memo is None or len(memo[0]) != len(key) or \
            any(a is not b if isinstance(b, torch.Tensor) else a != b
                for a, b in zip(memo[0], key)):
        return None
    tensors = (x,) + tuple(k for k in key if isinstance(k, torch.Tensor))
    return memo[2] if memo[1] == _versions(tensors) else None


def _remember(x: Array, name: str, key: tuple, value: Array) -> Array:
    tensors = (x,) + tuple(k for k in key if isinstance(k, torch.Tensor))
    setattr(x, name, (key, _versions(tensors), value))
    return value


def _fast_layout(x: Array) -> Array:
    """``x`` in channels-last memory order where CPU kernels are faster in it (oneDNN
    convolutions ~2×, max-pooling ~10× on NCHW float32 maps); values are unchanged, and float64
    (the reference precision, not run by oneDNN) and non-CPU tensors are left as they are."""
    if x.ndim != 4 or x.device.type != "cpu":
        return x
    if x.dtype not in _CHANNELS_LAST_DTYPES:  # keep float64 on the NCHW kernels (bit-stable)
        return x.contiguous()
    return x.contiguous(memory_format=torch.channels_last)


def _nhwc(x: Array) -> Array:
    """(N,C,H,W) -> its (N,H,W,C) view, contiguous (free for channels-last tensors)."""
    return x.permute(0, 2, 3, 1).contiguous()


def _from_windows(v: Array) -> Array:
    """(N,H',k,W',k,C) contiguous -> the (N,C,H,W) map, as a channels-last view."""
    n, hp, k, wp, _, c = v.shape
    return v.reshape(n, hp * k, wp * k, c).permute(0, 3, 1, 2)


class _PoolPlace(torch.autograd.Function):
    """U_t with its exact adjoint P_t as the backward (a gather, instead of autograd's window
    sum of the one-hot product, which is the same numbers computed ~10× slower)."""

    @staticmethod
    def forward(ctx, g, t, k, ops):
        ctx.save_for_backward(t)
        ctx.k, ctx.ops = k, ops
        return ops._place(g, t, k)

    @staticmethod
    def backward(ctx, grad):
        (t,) = ctx.saved_tensors
        return ctx.ops.pool_select(grad, t, ctx.k), None, None, None
