"""Brute-force block enumeration for the engine's tests (dgm-math §5.6): every value of a block
of latents, the block maximum of J, and J for every class."""
from __future__ import annotations

import itertools
import math

import numpy as np

from dgm import State
from dgm.testing import Problem

BUDGET = 2 ** 12


def tile(state: State, n: int, m: int) -> State:
    """Example ``n`` of ``state`` repeated ``m`` times."""
    rep = lambda a: np.repeat(a[n:n + 1], m, axis=0)
    return State(h=rep(state.h), y=rep(state.y), z={k: rep(v) for k, v in state.z.items()},
                 t={k: rep(v) for k, v in state.t.items()},
                 q=None if state.q is None else rep(state.q),
                 norm_scales={k: rep(v) for k, v in state.norm_scales.items()})


def block_configs(model, sites):
    """All values of the block ``sites`` as {path: (M, *shape)} arrays, or None over budget."""
    axes = []
    for path in sites:
        if path in model.switch_sites:
            shape = tuple(model.shapes[path])
            axes.append(("z", path, shape, 2))
        else:
            layer = model.site_layer[path]
            shape = tuple(layer.out_shape(model.shapes[path]))
            axes.append(("t", path, shape, layer.kernel_size ** 2))
    sizes = [n ** math.prod(shape) for _, _, shape, n in axes]
    if math.prod(sizes) > BUDGET:
        return None
    per_axis = [np.array(list(itertools.product(range(n), repeat=math.prod(shape))))
                .reshape((-1,) + shape) for _, _, shape, n in axes]
    grids = np.meshgrid(*[np.arange(len(v)) for v in per_axis], indexing="ij")
    out = {"z": {}, "t": {}}
    for (kind, path, _, _), values, idx in zip(axes, per_axis, grids):
        v = values[idx.ravel()]
        out[kind][path] = v.astype(bool) if kind == "z" else v
    return out


def enumerated_max(problem: Problem, before: State, sites, n: int) -> float | None:
    """max of J over all values of the block ``sites`` for example ``n``, the rest of ``before``
    held fixed (None when the block has more than ``BUDGET`` configurations)."""
    configs = block_configs(problem.model, sites)
    if configs is None:
        return None
    m = len(next(iter({**configs["z"], **configs["t"]}.values())))
    base = tile(before, n, m)
    cand = State(h=base.h, y=base.y, z={**base.z, **configs["z"]}, t={**base.t, **configs["t"]},
                 norm_scales=base.norm_scales)
    x = np.repeat(problem.x[n:n + 1], m, axis=0)
    return problem.model.objective(problem.params, x, cand).max()


def class_objectives(problem: Problem, state: State) -> np.ndarray:
    """J(h, y, z, t) for every class y (N, K), the rest of ``state`` fixed."""
    n = state.h.shape[0]
    return np.stack([problem.model.objective(problem.params, problem.x, state,
                                             y=np.full(n, k))
                     for k in range(problem.model.classes)], -1)
