"""The layer vocabulary of a DGM: linear maps, switches, pools, normalisation, residual blocks.

A DGM skeleton is a sequence of these (dgm-math §1.1). Linear layers (``Conv2d``, ``Dense``,
``Flatten``, ``AvgPool``) are bias-free maps ``C`` with an exact adjoint ``Cᵀ`` used for
rendering (weight tying is functional: one parameter serves as ``W`` and ``Wᵀ``). ``Switch``
carries the per-channel bias ``b`` and the binary latent ``z`` (prior logit ``b·ĝ``, §1.3).
``MaxPool`` carries the in-window position latent ``t``. ``Norm`` is a per-channel RMS scale
(frozen or recomputed, §1.6). ``Residual`` is a DAG block whose rendering is the adjoint of its
forward. Layers are immutable descriptions: they hold no parameters and no state.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from backends import DGMError

Shape = tuple[int, ...]

__all__ = ["AvgPool", "Conv2d", "Dense", "Flatten", "Layer", "MaxPool", "Norm", "Residual",
           "Switch"]


class Layer:
    """Base class. ``param_shapes`` and ``out_shape`` take the per-example input shape."""

    def param_shapes(self, in_shape: Shape) -> dict[str, Shape]:
        return {}

    def out_shape(self, in_shape: Shape) -> Shape:
        return in_shape

    def init_param(self, name: str, shape: Shape, init: "Initializer") -> Any:
        """Initial value of parameter ``name`` (``init`` draws from the model's explicit RNG)."""
        raise NotImplementedError(f"{type(self).__name__} has no parameter {name!r}")


class Initializer:
    """Draws initial parameter values with an explicit backend RNG (no global state)."""

    def __init__(self, ops, rng, like):
        self.ops, self.rng, self.like = ops, rng, like

    def normal(self, shape: Shape, std: float):
        return self.ops.normal(self.rng, shape, self.like) * std

    def uniform(self, shape: Shape, bound: float):
        return (self.ops.uniform(self.rng, shape, self.like) * 2 - 1) * bound

    def zeros(self, shape: Shape):
        return self.ops.zeros(shape, self.like)


class Linear(Layer):
    """A bias-free linear map with an exact adjoint: ``apply`` = C, ``adjoint`` = Cᵀ."""

    param_names: tuple[str, ...] = ()

    def apply(self, ops, p: dict, x):
        raise NotImplementedError

    def adjoint(self, ops, p: dict, g, in_shape: Shape):
        raise NotImplementedError


@dataclass(frozen=True)
class Conv2d(Linear):
    """Bias-free 2-d convolution; rendering is its transposed convolution (exact adjoint).

    Init: normal(0, sqrt(2 / (k·k·out_channels))) (fan-out He, as the original CNN-F).
    """
    in_channels: int
    out_channels: int
    kernel_size: int
    stride: int = 1
    padding: int = 0
    param_names = ("weight",)

    def param_shapes(self, in_shape: Shape) -> dict[str, Shape]:
        _check_channels(self, in_shape, self.in_channels)
        return {"weight": (self.out_channels, self.in_channels, self.kernel_size, self.kernel_size)}

    def out_shape(self, in_shape: Shape) -> Shape:
        _check_channels(self, in_shape, self.in_channels)
        k, s, p = self.kernel_size, self.stride, self.padding
        h, w = ((d + 2 * p - k) // s + 1 for d in in_shape[1:])
        if h <= 0 or w <= 0:
            raise DGMError(f"{self} produces an empty map from input {in_shape}")
        return (self.out_channels, h, w)

    def init_param(self, name, shape, init):
        return init.normal(shape, math.sqrt(2.0 / (self.kernel_size ** 2 * self.out_channels)))

    def apply(self, ops, p, x):
        return ops.conv2d(x, p["weight"], self.stride, self.padding)

    def adjoint(self, ops, p, g, in_shape):
        return ops.conv2d_adjoint(g, p["weight"], self.stride, self.padding, in_shape[1:])


@dataclass(frozen=True)
class Dense(Linear):
    """Bias-free dense map ``x ↦ W x`` (W: out × in); rendering ``g ↦ Wᵀ g``.

    Init: uniform(±1/sqrt(in_features)) (torch's Linear default, as the original).
    """
    in_features: int
    out_features: int
    param_names = ("weight",)

    def param_shapes(self, in_shape: Shape) -> dict[str, Shape]:
        if tuple(in_shape) != (self.in_features,):
            raise DGMError(f"{self} expects a flat input of {self.in_features} features, "
                           f"got shape {tuple(in_shape)} (add Flatten() or fix in_features)")
        return {"weight": (self.out_features, self.in_features)}

    def out_shape(self, in_shape: Shape) -> Shape:
        self.param_shapes(in_shape)
        return (self.out_features,)

    def init_param(self, name, shape, init):
        return init.uniform(shape, 1.0 / math.sqrt(self.in_features))

    def apply(self, ops, p, x):
        return ops.dense(x, p["weight"])

    def adjoint(self, ops, p, g, in_shape):
        return ops.dense_adjoint(g, p["weight"])


@dataclass(frozen=True)
class Flatten(Linear):
    """(C,H,W) → (C·H·W,); its adjoint is the reshape back."""

    def out_shape(self, in_shape: Shape) -> Shape:
        return (math.prod(in_shape),)

    def apply(self, ops, p, x):
        return x.reshape(x.shape[0], -1)

    def adjoint(self, ops, p, g, in_shape):
        return g.reshape(g.shape[0], *in_shape)


@dataclass(frozen=True)
class AvgPool(Linear):
    """k×k average pooling, a fixed linear map with no latent (§1.6).

    ``render="adjoint"`` renders with the exact adjoint (copy ÷ k²); ``render="nearest"`` is
    CNN-F's WRN head (nearest upsampling, k² × the adjoint — a heuristic, not the adjoint).
    """
    kernel_size: int
    render: str = "adjoint"

    def __post_init__(self):
        if self.render not in ("adjoint", "nearest"):
            raise DGMError(f"AvgPool render must be 'adjoint' or 'nearest', got {self.render!r}")

    def out_shape(self, in_shape: Shape) -> Shape:
        _check_pool(self, in_shape)
        return (in_shape[0], in_shape[1] // self.kernel_size, in_shape[2] // self.kernel_size)

    def apply(self, ops, p, x):
        return ops.avg_pool(x, self.kernel_size)

    def adjoint(self, ops, p, g, in_shape):
        if self.render == "nearest":
            return ops.upsample_nearest(g, self.kernel_size)
        return ops.avg_pool_adjoint(g, self.kernel_size)


@dataclass(frozen=True)
class Switch(Layer):
    """Per-channel bias ``b`` plus the binary switch latent ``z`` (AdaReLU's gate).

    Forward: ``a = x + b``, output ``γ(z) ⊙ a`` with gate value γ = 1 when on, ``leak`` when off
    (leak 0: ReLU-style switch). Prior (model B): ``p(z=1 | ĝ) = sigmoid(b·ĝ)`` per unit (§1.3).
    Biases never enter the rendering: its adjoint is ``g ↦ γ(z) ⊙ g``.
    """
    channels: int
    leak: float = 0.0

    def __post_init__(self):
        if not 0.0 <= self.leak < 1.0:
            raise DGMError(f"Switch leak must be in [0, 1), got {self.leak}")

    def param_shapes(self, in_shape: Shape) -> dict[str, Shape]:
        _check_channels(self, in_shape, self.channels)
        return {"bias": (self.channels,)}

    def init_param(self, name, shape, init):
        return init.zeros(shape)


def switch_log_normaliser(ops, u, leak: float):
    """log Σ_{z∈{0,1}} e^{γ(z)u} = log(e^{αu} + e^{u}) = softplus((1−α)u) + αu per unit, with
    α the Switch's leak: the normaliser of the switch prior with logit u = b·ĝ (§1.3)."""
    if leak == 0.0:  # (the same values without the two no-op passes over u)
        return ops.softplus(u)
    return ops.softplus(u * (1 - leak)) + leak * u


@dataclass(frozen=True)
class MaxPool(Layer):
    """k×k max-pool position latent ``t`` (uniform prior over the k² positions, §1.3).

    With the gates it selects entry ``t`` of each window (AdaPool, §2.3); rendering places the
    pooled value back at ``t`` (U_t = P_tᵀ).
    """
    kernel_size: int

    def out_shape(self, in_shape: Shape) -> Shape:
        _check_pool(self, in_shape)
        return (in_shape[0], in_shape[1] // self.kernel_size, in_shape[2] // self.kernel_size)


@dataclass(frozen=True)
class Norm(Layer):
    """Per-sample, per-channel RMS scaling (CNN-F's InsNorm: no centring, no affine).

    Not part of the DGM unless frozen (§1.6): the engine's ``norm`` option chooses
    ``"none"`` (identity), ``"frozen"`` (scale of the first pass, a fixed diagonal map in both
    directions — exact) or ``"original"`` (recomputed at every pass in both directions — CNN-F).
    """


@dataclass(frozen=True)
class Residual(Layer):
    """Pre-activation residual block: ``a = preact(x)``; ``out = body(a) + shortcut``.

    ``projection=None``: identity shortcut from the block input ``x``; otherwise a 1×1 (or any)
    ``Conv2d`` applied to ``a`` (as WRN's projection blocks). Rendering is the exact adjoint:
    ``g_x = [g] + preactᵀ(bodyᵀ g + projectionᵀ g)``.
    """
    body: tuple = ()
    preact: tuple = ()
    projection: Conv2d | None = None

    def __post_init__(self):
        object.__setattr__(self, "body", tuple(self.body))
        object.__setattr__(self, "preact", tuple(self.preact))


def _check_channels(layer, in_shape: Shape, expected: int) -> None:
    if len(in_shape) < 1 or in_shape[0] != expected:
        raise DGMError(f"{layer} expects {expected} channels, got input shape {tuple(in_shape)}")


def _check_pool(layer, in_shape: Shape) -> None:
    k = layer.kernel_size
    if len(in_shape) != 3 or in_shape[1] % k or in_shape[2] % k:
        raise DGMError(f"{layer} needs a (C,H,W) input with H, W divisible by {k}, "
                       f"got {tuple(in_shape)}")
