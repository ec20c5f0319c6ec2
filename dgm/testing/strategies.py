"""Hypothesis strategies (dgm-math §5 "Strategies"): tiny DGM skeletons — or the user's own
model (:func:`problems_for`) — with random parameters, observations and *arbitrary* valid
latent states.

Skeletons: 1–3 gated layers, each dense (≤ ``max_units`` outputs) or conv (≤ 2 channels on maps
≤ ``max_side``², kernel 1–3, stride 1–2, padding 0–1), optionally followed by a max/avg pool
(window 1 or 2), a frozen ``Norm``, a pre-activation ``Residual`` block (identity or 1×1
projection shortcut), and a dense top; leak 0 or 0.1; K ∈ {2, 3}; σ² ∈ [0.25, 4];
τ² ∈ [0.1, 10] ∪ {∞}. Values (parameters, h, x̃) are float64 in [−2, 2]; with probability ½
they are rounded to a grid so that exact zeros and ties (a·ĝ = 0, equal window entries, equal
logits) are common — the tie rules are part of what is tested.

Helpers: ``tolerance`` (ε of dgm-math §4.6) and ``to_torch`` (numpy values, dicts and
states as torch tensors; imports torch when called).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from hypothesis import strategies as st

from dgm import DGM, State, layers as L

LEAKS = st.sampled_from([0.0, 0.1])
SIGMA2 = st.floats(0.25, 4.0)
TAU2 = st.one_of(st.floats(0.1, 10.0), st.just(math.inf))


@dataclass
class Problem:
    """A model, its parameters, an observation ``x`` = x̃ (N, *level0_shape) and an arbitrary
    valid state ``state`` for the same batch; ``rng`` draws further random values."""
    model: DGM
    params: dict
    x: np.ndarray
    state: State
    rng: np.random.Generator
    grid: float | None

    def values(self, shape) -> np.ndarray:
        return values(self.rng, shape, self.grid)


def values(rng: np.random.Generator, shape, grid: float | None) -> np.ndarray:
    """Uniform float64 values in [−2, 2], rounded to multiples of ``grid`` when given."""
    v = rng.uniform(-2.0, 2.0, size=tuple(shape))
    return np.round(v / grid) * grid if grid else v


@st.composite
def dense_skeletons(draw, max_units: int = 6):
    """(layers, input_shape): 1–3 Dense+Switch layers on a flat input of ≤ 4 features."""
    d = draw(st.integers(1, 4))
    shape, layers = (d,), []
    for _ in range(draw(st.integers(1, 3))):
        out = draw(st.integers(1, max_units))
        layers += [L.Dense(d, out), L.Switch(out, leak=draw(LEAKS))]
        d = out
    return layers, shape


@st.composite
def conv_skeletons(draw, max_side: int = 6, max_units: int = 6, pool: bool = True,
                   residual: bool = True, norm: bool = True, stages: tuple[int, int] = (1, 2)):
    """(layers, input_shape): 1–2 conv stages (conv [Norm] Switch [pool]), an optional residual
    block, Flatten and an optional Dense+Switch top."""
    c, h, w = draw(st.integers(1, 2)), draw(st.integers(1, max_side)), \
        draw(st.integers(1, max_side))
    shape, layers = (c, h, w), []
    for _ in range(draw(st.integers(*stages))):
        p = draw(st.integers(0, 1))
        k = draw(st.integers(1, min(3, shape[1] + 2 * p, shape[2] + 2 * p)))
        conv = L.Conv2d(shape[0], draw(st.integers(1, 2)), k, draw(st.integers(1, 2)), p)
        layers.append(conv)
        shape = conv.out_shape(shape)
        if norm and draw(st.booleans()):
            layers.append(L.Norm())
        layers.append(L.Switch(shape[0], leak=draw(LEAKS)))
        kinds = ["none"] + (["max1", "max", "avg"] if pool and shape[1] % 2 == 0
                            and shape[2] % 2 == 0 else ["max1"] if pool else [])
        kind = draw(st.sampled_from(kinds))
        if kind != "none":
            k = 1 if kind == "max1" else 2
            layer = L.AvgPool(k) if kind == "avg" else L.MaxPool(k)
            layers.append(layer)
            shape = layer.out_shape(shape)
    if residual and draw(st.booleans()):
        kr = draw(st.sampled_from([1, 3]))
        body = (L.Conv2d(shape[0], shape[0], kr, 1, kr // 2),)
        proj = L.Conv2d(shape[0], draw(st.integers(1, 2)), 1) if draw(st.booleans()) else None
        if proj is not None:
            body = (L.Conv2d(shape[0], proj.out_channels, kr, 1, kr // 2),)
        layers.append(L.Residual(body=body, preact=(L.Switch(shape[0], leak=draw(LEAKS)),),
                                 projection=proj))
        shape = (body[0].out_channels,) + tuple(shape[1:])
    layers.append(L.Flatten())
    if draw(st.booleans()):
        out = draw(st.integers(1, max_units))
        layers += [L.Dense(math.prod(shape), out), L.Switch(out, leak=draw(LEAKS))]
    return layers, (c, h, w)


def random_state(model: DGM, x: np.ndarray, rng: np.random.Generator,
                 grid: float | None) -> State:
    """An arbitrary valid state for batch ``x``: random h, y, z, t (and frozen norm scales)."""
    n = x.shape[0]
    z = {p: rng.random((n,) + tuple(model.shapes[p])) < 0.5 for p in model.switch_sites}
    t = {}
    for p in model.pool_sites:
        layer = model.site_layer[p]
        pooled = layer.out_shape(model.shapes[p])
        t[p] = rng.integers(0, layer.kernel_size ** 2, size=(n,) + tuple(pooled))
    scales = {p: rng.uniform(0.5, 2.0, size=(n, model.shapes[p][0], 1, 1))
              for p, layer in model.site_layer.items() if isinstance(layer, L.Norm)}
    return State(h=values(rng, x.shape, grid), y=rng.integers(0, model.classes, size=n), z=z,
                 t=t, norm_scales=scales)


def random_params(model: DGM, rng: np.random.Generator, grid: float | None) -> dict:
    return {name: values(rng, shape, grid) for name, shape in model.param_shapes().items()}


GRIDS = (None, None, 0.5, 1.0)


@st.composite
def problems_for(draw, model: DGM, *, max_batch: int = 3, grids=GRIDS) -> Problem:
    """Problems on a given ``model`` (e.g. the user's own DGM): random parameters, an
    observation x̃ (1..``max_batch`` examples) and an arbitrary valid state; ``grids``: rounding
    grids to draw from (None = continuous values, ties unlikely)."""
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    grid = draw(st.sampled_from(list(grids)))
    x = values(rng, (draw(st.integers(1, max_batch)),) + tuple(model.level0_shape), grid)
    return Problem(model, random_params(model, rng, grid), x, random_state(model, x, rng, grid),
                   rng, grid)


@st.composite
def problems(draw, kind: str | None = None, *, max_side: int = 6, max_units: int = 6,
             pool: bool = True, residual: bool = True, norm: bool = True,
             max_batch: int = 3, tau2=TAU2, stages: tuple[int, int] = (1, 2),
             grids=GRIDS):
    """A ``Problem`` on a tiny skeleton (``kind`` "dense", "conv" or None for either);
    ``grids``: rounding grids to draw from (None = continuous values, ties unlikely)."""
    kind = kind or draw(st.sampled_from(["dense", "conv"]))
    if kind == "dense":
        layers, shape = draw(dense_skeletons(max_units))
    else:
        layers, shape = draw(conv_skeletons(max_side, max_units, pool, residual, norm, stages))
    has_norm = any(isinstance(layer, L.Norm) for layer in layers)
    model = DGM(layers, classes=draw(st.integers(2, 3)), sigma2=draw(SIGMA2), tau2=draw(tau2),
                input_shape=shape, norm="frozen" if has_norm else "none")
    return draw(problems_for(model, max_batch=max_batch, grids=grids))


@st.composite
def real_conv_problems(draw, tau2=TAU2):
    """The shapes of a small real conv net on 8×8 (conv-switch-pool ×2, dense-switch, K = 3),
    He-initialised weights (``DGM.init``) with random biases, inputs in [−2, 2]."""
    layers = [L.Conv2d(1, 4, 3, padding=1), L.Switch(4), L.MaxPool(2),
              L.Conv2d(4, 4, 3, padding=1), L.Switch(4, leak=draw(LEAKS)), L.MaxPool(2),
              L.Flatten(), L.Dense(16, 8), L.Switch(8)]
    model = DGM(layers, classes=3, sigma2=draw(SIGMA2), tau2=draw(tau2), input_shape=(1, 8, 8))
    seed = draw(st.integers(0, 2 ** 32 - 1))
    rng = np.random.default_rng(seed)
    params = model.init("numpy", seed=seed % 2 ** 31)
    for name in params:
        if name.endswith("bias"):
            params[name] = rng.uniform(-0.5, 0.5, size=params[name].shape)
    x = values(rng, (draw(st.integers(1, 2)), 1, 8, 8), None)
    return Problem(model, params, x, random_state(model, x, rng, None), rng, None)


def tolerance(problem: Problem, state: State) -> np.ndarray:
    """ε = 1e-10·(1 + Σ|terms of J|) per example (dgm-math §4.6), terms from the G log joint."""
    lj = problem.model.log_joint(problem.params, problem.x, state, "G", observed="level0")
    return 1e-10 * (1.0 + sum(np.abs(v) for v in lj.terms.values()))


def to_torch(value, device: str = "cpu"):
    """numpy → torch on ``device`` (float64 stays float64) for arrays, dicts of arrays, States."""
    import torch
    if isinstance(value, State):
        return State(h=to_torch(value.h, device), y=to_torch(value.y, device),
                     z=to_torch(value.z, device), t=to_torch(value.t, device),
                     q=None if value.q is None else to_torch(value.q, device),
                     norm_scales=to_torch(value.norm_scales, device))
    if isinstance(value, dict):
        return {k: to_torch(v, device) for k, v in value.items()}
    return torch.from_numpy(np.ascontiguousarray(value)).to(device)
