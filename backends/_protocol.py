"""The backend protocol: every op the DGM layers and the inference engine call.

Implementors define the ops below with numpy's argument order and semantics. Arrays are
batched NCHW (conv/pool ops) or NF (dense ops). Ops that are not one-liners over ``xp`` are
written once here in terms of the primitive ones, so the numpy reference and torch share them.

Linear ops come in exact adjoint pairs: for every ``op`` with adjoint ``op_adjoint``,
``<op(u), v> == <u, op_adjoint(v)>`` (tested for every stride/padding combination).
"""
from __future__ import annotations

import math
import operator
from typing import Any, Sequence

Array = Any

_OUT_OF_PLACE = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv}
_IN_PLACE = {"+": operator.iadd, "-": operator.isub, "*": operator.imul, "/": operator.itruediv}


class Backend:
    """Base class; subclasses set ``name`` and ``xp`` and implement the framework-specific ops."""

    name: str = "abstract"
    xp: Any = None

    # -- framework-specific primitives -------------------------------------------------------
    def is_array(self, x: object) -> bool:
        raise NotImplementedError

    def asarray(self, data: Any, like: Array) -> Array:
        """``data`` converted to the dtype and device of ``like``."""
        raise NotImplementedError

    def zeros(self, shape: Sequence[int], like: Array) -> Array:
        raise NotImplementedError

    def conv2d(self, x: Array, w: Array, stride: int, padding: int) -> Array:
        """Cross-correlation, x (N,C,H,W), w (O,C,k,k) -> (N,O,H',W'); no bias."""
        raise NotImplementedError

    def conv2d_adjoint(self, g: Array, w: Array, stride: int, padding: int,
                       in_hw: tuple[int, int]) -> Array:
        """Exact adjoint of ``conv2d`` for an input of spatial size ``in_hw``."""
        raise NotImplementedError

    def argmax(self, x: Array, axis: int) -> Array:
        raise NotImplementedError

    def argmin(self, x: Array, axis: int) -> Array:
        raise NotImplementedError

    def take_along_axis(self, x: Array, idx: Array, axis: int) -> Array:
        raise NotImplementedError

    def one_hot(self, idx: Array, n: int, like: Array) -> Array:
        """Float one-hot of integer ``idx`` with a new last axis of size n, dtype of ``like``."""
        raise NotImplementedError

    def to_float(self, x: Array, like: Array) -> Array:
        raise NotImplementedError

    def stop_gradient(self, x: Array) -> Array:
        return x

    def logsumexp(self, x: Array, axis: int) -> Array:
        raise NotImplementedError

    def where(self, cond: Array, a: Array, b: Array) -> Array:
        return self.xp.where(cond, a, b)

    def rng(self, seed: int, like: Array) -> Any:
        """An explicit random generator object (never global state)."""
        raise NotImplementedError

    def normal(self, rng: Any, shape: Sequence[int], like: Array) -> Array:
        raise NotImplementedError

    def uniform(self, rng: Any, shape: Sequence[int], like: Array) -> Array:
        raise NotImplementedError

    def describe(self, x: Array) -> str:
        """Type, dtype and device of ``x`` for error messages."""
        return f"{type(x).__name__}[{x.dtype}]"

    # -- shared ops, written once -------------------------------------------------------------
    def dense(self, x: Array, w: Array) -> Array:
        """x (N,I), w (O,I) -> x Wᵀ (N,O)."""
        return x @ w.T

    def dense_adjoint(self, g: Array, w: Array) -> Array:
        """Adjoint of ``dense``: g (N,O) -> g W (N,I)."""
        return g @ w

    def windows(self, x: Array, k: int) -> Array:
        """Non-overlapping k×k windows: (N,C,H,W) -> (N,C,H/k,W/k,k*k), row-major in-window order."""
        n, c, h, w = x.shape
        if h % k or w % k:
            raise ValueError(f"pool size {k} does not divide the feature map {h}x{w}")
        v = x.reshape(n, c, h // k, k, w // k, k)
        return self.xp_permute(v, (0, 1, 2, 4, 3, 5)).reshape(n, c, h // k, w // k, k * k)

    def unwindows(self, v: Array, k: int) -> Array:
        """Inverse of ``windows`` (it is a permutation, so also its adjoint)."""
        n, c, hp, wp, _ = v.shape
        v = v.reshape(n, c, hp, wp, k, k)
        return self.xp_permute(v, (0, 1, 2, 4, 3, 5)).reshape(n, c, hp * k, wp * k)

    def xp_permute(self, x: Array, axes: tuple[int, ...]) -> Array:
        return self.xp.transpose(x, axes)

    def select(self, v: Array, t: Array) -> Array:
        """P_t: pick entry t of each window. v (...,k*k), t (...) int -> (...)."""
        return self.take_along_axis(v, t[..., None], -1)[..., 0]

    def place(self, g: Array, t: Array, kk: int) -> Array:
        """U_t = P_tᵀ: put g at in-window position t, zeros elsewhere -> (...,k*k)."""
        return self.one_hot(t, kk, g) * g[..., None]

    def fast_layout(self, x: Array) -> Array:
        """``x`` (same values) in the memory layout this backend's map kernels prefer."""
        return x

    # -- k×k pools on the feature map (N,C,H,W); t = in-window positions (N,C,H/k,W/k) ---------
    # Written here through ``windows``; backends override them with fused kernels that give
    # exactly the same values and positions (first extremum in row-major order, as arg-max).
    def max_pool_positions(self, x: Array, k: int) -> tuple[Array, Array]:
        """Window maxima and the position of the first maximum: ``(values, t)``."""
        win = self.windows(x, k)
        t = self.argmax(win, -1)
        return self.select(win, t), t

    def min_pool_positions(self, x: Array, k: int) -> tuple[Array, Array]:
        """Window minima and the position of the first minimum: ``(values, t)``."""
        win = self.windows(x, k)
        t = self.argmin(win, -1)
        return self.select(win, t), t

    def extremum_pool_positions(self, x: Array, up: Array, k: int,
                                overwrite: bool = False) -> tuple[Array, Array]:
        """Per window the first maximum where ``up`` (bool, (N,C,H/k,W/k)) and the first
        minimum elsewhere: ``(values, t)``. ``overwrite``: ``x`` is a temporary of the caller
        that is not read afterwards, so the search may use its memory (its contents are then
        unspecified)."""
        v_max, t_max = self.max_pool_positions(x, k)
        v_min, t_min = self.min_pool_positions(x, k)
        return self.where(up, v_max, v_min), self.where(up, t_max, t_min)

    def pool_select(self, x: Array, t: Array, k: int) -> Array:
        """P_t on the map: entry ``t`` of each k×k window of ``x`` -> (N,C,H/k,W/k)."""
        return self.select(self.windows(x, k), t)

    def pool_place(self, g: Array, t: Array, k: int) -> Array:
        """U_t = P_tᵀ on the map: ``g`` at in-window position ``t``, zeros elsewhere -> (N,C,H,W)."""
        return self.unwindows(self.place(g, t, k * k), k)

    def pool_update(self, x: Array, t: Array, values: Array, k: int) -> Array:
        """``x`` with entry ``t`` of each k×k window replaced by ``values`` (any dtype, e.g. bool)."""
        chosen = self.one_hot(t, k * k, t) > 0
        return self.unwindows(self.where(chosen, values[..., None], self.windows(x, k)), k)

    def needs_grad(self, x: Array) -> bool:
        """Does a gradient flow back through ``x`` here (False for numpy)?"""
        return False

    def forget(self, x: Array) -> None:
        """Drop whatever this backend keeps about ``x`` to save recomputation (e.g. the torch
        backend's flat pool indices of a positions tensor): frees memory, changes no result."""

    def sign(self, x: Array) -> Array:
        """The sign of ``x`` as int8 (−1, 0, +1): all that the exact block steps read of a
        rendering (a quarter of a float32 map's memory)."""
        raise NotImplementedError

    def gate_values(self, z: Array, like: Array, leak: float) -> Array:
        """γ(z): 1 where the switch is on, ``leak`` where off (z boolean), dtype of ``like``."""
        on = self.to_float(z, like)
        return on if leak == 0.0 else on * (1.0 - leak) + leak

    def gate(self, a: Array, z: Array, leak: float, overwrite: bool = False) -> Array:
        """γ(z) ⊙ a: the switch's gated output (AdaReLU with given gates); ``overwrite`` as
        in ``update``."""
        return self.update(a, "*", self.gate_values(z, a, leak), overwrite)

    def update(self, x: Array, op: str, y: Any, overwrite: bool = False) -> Array:
        """``x op y`` for ``op`` in ``+ - * /`` (``y`` an array broadcasting against ``x``, or a
        number). ``overwrite``: ``x`` is a temporary of the caller, so the result is written
        into its memory, done only when no gradient flows through ``x`` or ``y`` (the same
        numbers either way). The one place of the rule "in place only into one's own
        temporaries, and never under autograd"."""
        if overwrite and not (self.needs_grad(x) or self.needs_grad(y)):
            return _IN_PLACE[op](x, y)
        return _OUT_OF_PLACE[op](x, y)

    def plain_gate(self, a: Array, leak: float, overwrite: bool = False) -> tuple[Array, Array]:
        """The plain CNN's switch: ``(γ(z) ⊙ a, z)`` with z = 1[a > 0] (ReLU / leaky ReLU);
        ``overwrite``: ``a`` is a temporary of the caller that the output may be written into."""
        z = a > 0
        return self.gate(a, z, leak, overwrite), z

    def activate(self, a: Array, leak: float, overwrite: bool = False) -> Array:
        """``plain_gate``'s output alone (the gates are not kept); ``overwrite`` as there."""
        return self.plain_gate(a, leak, overwrite)[0]

    def bias_activate(self, x: Array, b: Array, leak: float, overwrite: bool = False) -> Array:
        """``activate(x + b, leak)`` (``b`` broadcasts against ``x``); ``overwrite``: ``x`` is a
        temporary of the caller that the output may be written into."""
        return self.activate(x + b, leak, overwrite=True)

    def max_pool(self, x: Array, k: int) -> Array:
        """``max_pool_positions``' values alone (the positions are not kept)."""
        return self.max_pool_positions(x, k)[0]

    def avg_pool(self, x: Array, k: int) -> Array:
        return self.windows(x, k).mean(-1)

    def avg_pool_adjoint(self, g: Array, k: int) -> Array:
        """Adjoint of the k×k window mean: copy each value to its window, divided by k²."""
        return self.upsample_nearest(g, k) / (k * k)

    def upsample_nearest(self, g: Array, k: int) -> Array:
        """Nearest-neighbour upsampling by k (CNN-F's WRN head feedback: k² × the adjoint)."""
        return self.unwindows(self.xp_repeat_last(g[..., None], k * k), k)

    def xp_repeat_last(self, x: Array, n: int) -> Array:
        return x * self.xp.ones(n, dtype=x.dtype)

    def softplus(self, u: Array) -> Array:
        """Stable log(1 + e^u) = max(u, 0) + log1p(exp(-|u|)) (dgm-math §4.6)."""
        xp = self.xp
        return xp.maximum(u, 0 * u) + xp.log1p(xp.exp(-xp.abs(u)))

    def log_softmax(self, x: Array, axis: int = -1) -> Array:
        return x - self.logsumexp(x, axis)[..., None] if axis in (-1, x.ndim - 1) else \
            x - self.xp.expand_dims(self.logsumexp(x, axis), axis)

    def channel_rms(self, x: Array, eps: float = 1e-8) -> Array:
        """Per-sample, per-channel root-mean-square over spatial axes, shape (N,C,1,1) or (N,C)."""
        if x.ndim == 2:
            return self.xp.sqrt(x * x + eps)
        return self.xp.sqrt((x * x).mean(axis=(2, 3), keepdims=True) + eps)

    def batch_dot(self, a: Array, b: Array) -> Array:
        """Per-example inner product: sum over all axes but the first -> (N,)."""
        return (a * b).reshape(a.shape[0], -1).sum(-1)

    def log_2pi(self) -> float:
        return math.log(2 * math.pi)
