"""Exact enumeration over the discrete latents (y, z, t) of tiny DGMs (dgm-math §1.5, §2.2, §4.6).

Requirements: never imports torch; every configuration is one example of a batch, so each
quantity below is one vectorised ``DGM.log_joint`` evaluation (one batched rendering) followed by
a logsumexp. A budget of ``MAX_CONFIGURATIONS`` (y, z, t) configurations guards against nets
that are too large (DGMError).

* ``log_z_g``: log Z_G = logsumexp_{y,z,t} [T_y + Σ_ℓ ⟨b_ℓ ⊙ γ(z_ℓ), ĝ_ℓ⟩ + ‖g_0‖²/(2σ²)].
* ``b_normaliser``: Σ_{z,t} p_B(z, t | y) (must be 1).
* ``posterior_g`` / ``posterior_b``: the enumerated tables log p(y | h, z, t) for every (z, t).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from backends import DGMError

from ._validate import check_array
from .model import DGM
from .program import norm_paths
from .state import State

MAX_CONFIGURATIONS = 2 ** 16


@dataclass(frozen=True)
class Configurations:
    """All latent configurations as one batch of M: ``y`` (M,) (None without classes),
    ``z`` path → bool (M, *unit shape), ``t`` path → int (M, C, H', W')."""
    y: Any
    z: Mapping[str, Any]
    t: Mapping[str, Any]
    count: int


def count_configurations(model: DGM, *, with_classes: bool = True) -> int:
    """K^[with_classes] · Π_ℓ 2^{units_ℓ} · Π_ℓ (k_ℓ²)^{n_ℓ}, as an exact int."""
    count = model.classes if with_classes else 1
    for radix, size in _radices(model):
        count *= radix ** size
    return count


def configurations(model: DGM, like: Any, *, with_classes: bool = True) -> Configurations:
    """Every (y, z, t) (or (z, t)) on the backend/device of ``like``, y slowest, then the sites in
    model order (mixed-radix counting). Raises DGMError beyond ``MAX_CONFIGURATIONS``."""
    if model.norm != "none" and norm_paths(model):
        raise DGMError(f"enumeration needs a model without active Norm layers (norm={model.norm!r}"
                       f" makes the rendering depend on per-example scales); use norm='none'")
    count = count_configurations(model, with_classes=with_classes)
    if count > MAX_CONFIGURATIONS:
        raise DGMError(f"enumeration needs {count} configurations (K, switch units and pool "
                       f"windows of the model), more than the budget {MAX_CONFIGURATIONS}; use a "
                       f"smaller model")
    radices = ([model.classes] if with_classes else []) + [
        radix for radix, size in _radices(model) for _ in range(size)]
    digits = np.unravel_index(np.arange(count), radices) if radices else ()
    digits = iter(digits)
    ops = check_array("like", like)
    int_like = ops.argmax(ops.zeros((1, 1), like), -1)

    def take(shape):
        block = [next(digits) for _ in range(math.prod(shape))]
        data = np.stack(block, -1) if block else np.zeros((count, 0), dtype=np.int64)
        return ops.asarray(data.reshape((count,) + tuple(shape)), int_like)

    y = take(()) if with_classes else None
    z, t = {}, {}
    for path in model.switch_sites:
        z[path] = take(model.shapes[path]) > 0
    for path in model.pool_sites:
        t[path] = take(_pooled_shape(model, path))
    return Configurations(y=y, z=z, t=t, count=count)


def log_z_g(model: DGM, params: Mapping[str, Any]) -> Any:
    """log Z_G of model G (a 0-d array): logsumexp of the prior exponent over all (y, z, t)."""
    ops, like = model.check_params(params)
    conf = configurations(model, like)
    terms = _terms(model, params, conf.y, conf, ops.zeros((conf.count,) + model.level0_shape, like),
                   "G")
    keep = [v for k, v in terms.items() if k in ("class", "render") or k.startswith("switch:")]
    return ops.logsumexp(sum(keep[1:], keep[0]), 0)


def b_normaliser(model: DGM, params: Mapping[str, Any], y: int) -> Any:
    """Σ_{z,t} p_B(z, t | y) by enumeration (a 0-d array; 1 up to rounding)."""
    if not 0 <= int(y) < model.classes:
        raise DGMError(f"y must be a class index in [0, {model.classes}), got {y}")
    ops, like = model.check_params(params)
    conf = configurations(model, like, with_classes=False)
    ys = ops.argmax(ops.zeros((conf.count, 1), like), -1) + int(y)
    terms = _terms(model, params, ys, conf, ops.zeros((conf.count,) + model.level0_shape, like),
                   "B")
    keep = [v for k, v in terms.items() if k.startswith(("switch:", "pool:"))]
    total = sum(keep[1:], keep[0]) if keep else ops.zeros((conf.count,), like)
    return ops.xp.exp(ops.logsumexp(total, 0))


@dataclass(frozen=True)
class PosteriorTable:
    """``log_probs`` (N, M, K): log p(y | h_n, z_m, t_m) for every example n, configuration m and
    class y; ``configurations``: the M (z, t) configurations."""
    log_probs: Any
    configurations: Configurations


def posterior_g(model: DGM, params: Mapping[str, Any], h: Any) -> PosteriorTable:
    """Enumerated class posterior of model G, log p_G(y | h, z, t) (rendering-form joint)."""
    return _posterior(model, params, h, "G")


def posterior_b(model: DGM, params: Mapping[str, Any], h: Any) -> PosteriorTable:
    """Enumerated class posterior of model B, log p_B(y | h, z, t)."""
    return _posterior(model, params, h, "B")


def _posterior(model, params, h, normalisation):
    ops, like = model.check_params(params)
    check_array("h", h, shape_tail=model.level0_shape, like=like)
    n, k = int(h.shape[0]), model.classes
    conf = configurations(model, like, with_classes=False)
    m = conf.count
    if n * m * k > MAX_CONFIGURATIONS:
        raise DGMError(f"posterior table needs N·M·K = {n}·{m}·{k} evaluations, more than "
                       f"{MAX_CONFIGURATIONS}; pass fewer examples")
    int_like = ops.argmax(ops.zeros((1, 1), like), -1)
    idx_n, idx_m, idx_y = (ops.asarray(a.ravel(), int_like)
                           for a in np.meshgrid(np.arange(n), np.arange(m), np.arange(k),
                                                indexing="ij"))
    tiled = Configurations(y=idx_y, z={p: v[idx_m] for p, v in conf.z.items()},
                           t={p: v[idx_m] for p, v in conf.t.items()}, count=n * m * k)
    terms = _terms(model, params, idx_y, tiled, h[idx_n], normalisation)
    total = sum(terms.values()).reshape(n, m, k)
    return PosteriorTable(log_probs=ops.log_softmax(total, -1), configurations=conf)


def _terms(model, params, y, conf: Configurations, h, normalisation) -> Mapping[str, Any]:
    """Per-term log joint of the batch of configurations at level-0 value h (x̃ = h)."""
    state = State(h=h, y=y, z=conf.z, t=conf.t)
    return model.log_joint(params, h, state, normalisation, observed="level0").terms


def _radices(model: DGM) -> list[tuple[int, int]]:
    """(radix, how many digits) per latent site in model order: 2 per switch unit, k² per window."""
    out = [(2, math.prod(model.shapes[p])) for p in model.switch_sites]
    out += [(model.site_layer[p].kernel_size ** 2, math.prod(_pooled_shape(model, p)))
            for p in model.pool_sites]
    return out


def _pooled_shape(model: DGM, path: str) -> tuple[int, ...]:
    c, h, w = model.shapes[path]
    k = model.site_layer[path].kernel_size
    return (c, h // k, w // k)
