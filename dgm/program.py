"""The DGM's generative program, written once with ``sample`` (dgm-math §1.2–1.5).

Requirements: never imports torch. Interpreters give it its meanings: ``dgm.handlers`` (trace,
condition, seed, log density) on any backend, ``dgm.pyro_adapter`` for Pyro.

Sites, per example (the batch axis N is an implicit plate):

* ``y ~ Categorical(β)`` — the class (β the head bias, the unnormalised log prior);
* top-down rendering from ``Aᵀ e_y`` through the skeleton (``traverse.render``): at every Switch
  ``z:<path> ~ Bernoulli(logits = b·ĝ, leak)`` (model B) and at every MaxPool
  ``t:<path> ~ UniformPosition(k²)``; the rendering continues with the drawn latents;
* ``h ~ N(g_0, σ²)`` at level 0, and ``x ~ N(h, τ²)`` (x̃) when τ² is finite.

Normalisation "B" is exactly that program (every factor normalised: an ancestral sampler).
Normalisation "G" draws the switches from the uniform base measure ``Bernoulli(0)`` and adds one
factor site ``G`` = Σ_ℓ ⟨b_ℓ ⊙ γ(z_ℓ), ĝ_ℓ⟩ + ‖g_0‖²/(2σ²) + (log 2)·#switch units
+ Σ_ℓ n_ℓ log k_ℓ² − log Z_G, so the traced log density is log p_G exactly (§1.5); without
``log_z`` the ``− log Z_G`` is left out (as in ``DGM.log_joint``).
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Mapping

from backends import DGMError

from . import traverse as T
from .distributions import Bernoulli, Categorical, Normal, UniformPosition
from .handlers import Trace, condition, log_density, seed, trace
from .hooks import NormPolicy
from .layers import Norm
from .primitives import factor, sample
from .state import State

if TYPE_CHECKING:  # the model imports this module (``DGM.program``)
    from .model import DGM

NORMALISATIONS = ("G", "B")


def generative_program(model: DGM, params: Mapping[str, Any], batch_size: int, *,
                       normalisation: str = "B", log_z: Any = None,
                       norm_scales: Mapping[str, Any] | None = None) -> tuple[State, Any]:
    """Run the program once (under handlers) for ``batch_size`` examples.

    Args:
        params: the model's parameters (any backend).
        normalisation: "B" (Bernoulli switch priors) or "G" (uniform base + the ``G`` factor).
        log_z: for "G", log Z_G (``dgm.enumerate.log_z_g``); None leaves the constant out.
        norm_scales: frozen norm scales (path → array) for models with ``Norm`` layers.
    Returns:
        ``(state, x_obs)``: ``State(h (N, *level0), y (N,), z, t)`` and x̃ (N, *level0), or None
        when τ² is infinite.
    """
    if normalisation not in NORMALISATIONS:
        raise DGMError(f"normalisation must be 'G' or 'B', got {normalisation!r}")
    if int(batch_size) < 1:
        raise DGMError(f"batch_size must be >= 1, got {batch_size}")
    ops, like = model.check_params(params)
    scales = dict(norm_scales or {})
    missing = [p for p in norm_paths(model) if p not in scales]
    if model.norm == "frozen" and missing:
        raise DGMError(f"norm_scales must hold the frozen scale of every Norm layer; missing "
                       f"{missing} (take them from model.plain_state(params, x)[0].norm_scales)")
    beta = params["head.bias"]
    y = sample("y", Categorical(ops.zeros((int(batch_size), model.classes), like) + beta))
    hooks = _SamplingHooks(ops, model, params, normalisation,
                           NormPolicy(ops, model.norm, scales))
    g0 = T.render(ops, model.layers, params, model.top_vector(params, y), hooks, "layers.",
                  model.shapes)
    if normalisation == "G":
        factor("G", hooks.g_factor(g0, log_z))
    h = sample("h", Normal(g0, model.sigma2))
    x_obs = sample("x", Normal(h, model.tau2)) if math.isfinite(model.tau2) else None
    return State(h=h, y=y, z=hooks.z, t=hooks.t, norm_scales=hooks.norm.scales), x_obs


def norm_paths(model: DGM) -> list[str]:
    """Paths of the model's ``Norm`` layers."""
    return [p for p, layer in model.site_layer.items() if isinstance(layer, Norm)]


class _SamplingHooks:
    """Rendering hooks that draw the latents: z at each Switch from the prior logit u = b·ĝ of
    the rendering ĝ arriving there, t at each MaxPool; records u (for the G factor), z and t."""

    def __init__(self, ops, model: DGM, params, normalisation: str, norm: NormPolicy):
        self.ops, self.model, self.params = ops, model, params
        self.normalisation, self.norm = normalisation, norm
        self.z: dict = {}
        self.t: dict = {}
        self.u: dict = {}

    def switch_render(self, path, layer, g, owned: bool = False):
        u = g * T.channel_view(self.params[f"layers.{path}.bias"], g.ndim)
        logits = u if self.normalisation == "B" else u * 0
        z = sample(f"z:{path}", Bernoulli(logits, layer.leak))
        self.u[path], self.z[path] = u, z
        return self.ops.gate(g, z, layer.leak)

    def pool_render(self, path, layer, g):
        t = sample(f"t:{path}", UniformPosition(layer.kernel_size ** 2, g))
        self.t[path] = t
        return t

    def g_factor(self, g0, log_z):
        """Σ⟨b⊙γ(z), ĝ⟩ + ‖g0‖²/(2σ²) + log 2·#units + Σ n log k² (− log Z_G): turns the uniform
        base measures of z and t into p_G (§1.5)."""
        ops, model = self.ops, self.model
        total = ops.batch_dot(g0, g0) / (2 * model.sigma2)
        for path, z in self.z.items():
            u, leak = self.u[path], model.site_layer[path].leak
            total = total + ops.batch_dot(ops.gate_values(z, u, leak), u)
            total = total + math.log(2) * math.prod(z.shape[1:])
        for path, t in self.t.items():
            kk = model.site_layer[path].kernel_size ** 2
            total = total + math.prod(t.shape[1:]) * math.log(kk)
        return total if log_z is None else total - log_z


def program_data(model: DGM, state: State, x_obs: Any = None) -> dict[str, Any]:
    """The site values of ``state`` (and x̃) for conditioning: y, z:<path>, t:<path>, h, x."""
    data = {"y": state.y, "h": state.h}
    data.update({f"z:{path}": state.z[path] for path in model.switch_sites})
    data.update({f"t:{path}": state.t[path] for path in model.pool_sites})
    if math.isfinite(model.tau2):
        if x_obs is None:
            raise DGMError("x_obs is required: the model has a finite tau2 (observation site x)")
        data["x"] = x_obs
    return data


def program_log_joint(model: DGM, params: Mapping[str, Any], x_obs: Any, state: State,
                      normalisation: str = "G", *, log_z: Any = None) -> tuple[Any, Trace]:
    """log p(x̃, h, y, z, t) (N,) as the traced program's log density, and the trace.

    The interpreter counterpart of ``model.log_joint(params, x_obs, state, normalisation,
    log_z=log_z, observed="level0")``.
    """
    return log_density(generative_program, (model, params, state.batch_size),
                       dict(normalisation=normalisation, log_z=log_z,
                            norm_scales=state.norm_scales),
                       program_data(model, state, x_obs))


def sample_b(model: DGM, params: Mapping[str, Any], n: int, rng: Any = 0) -> tuple[State, Any]:
    """Ancestral samples of model B: ``n`` draws of (y, z, t, h[, x̃]).

    Args:
        rng: an int seed (reproducible) or a backend generator (``ops.rng``).
    Returns:
        ``(state, x_obs)`` as ``generative_program``.
    """
    with _seeded(rng):
        return generative_program(model, params, n, normalisation="B")


class Program:
    """The generative program bound to a model (``model.program``): trace, log joint, sampling.

    Example:
        >>> tr = model.program.trace(params, n=4, y=3, rng=0)   # sites y, z:*, t:*, h[, x]
        >>> tr.log_probs()["h"].shape                            # (4,)
    """

    def __init__(self, model: DGM):
        self.model = model

    def trace(self, params: Mapping[str, Any], n: int = 1, *, y: Any = None, rng: Any = 0,
              normalisation: str = "B", log_z: Any = None,
              data: Mapping[str, Any] | None = None) -> Trace:
        """A trace for ``n`` examples: sites in ``data`` fixed (``y`` may also be given as an int
        class for all examples or an int array (n,)), the rest drawn with ``rng``.

        Args:
            rng: an int seed (reproducible) or a backend generator.
        """
        data = dict(data or {})
        if y is not None:
            ops, like = self.model.check_params(params)
            data["y"] = ops.argmax(ops.zeros((int(n), 1), like), -1) + y
        with trace() as tr, _seeded(rng), condition(data=data):
            generative_program(self.model, params, n, normalisation=normalisation, log_z=log_z)
        return tr.trace

    def log_joint(self, params: Mapping[str, Any], x_obs: Any, state: State,
                  normalisation: str = "G", *, log_z: Any = None) -> tuple[Any, Trace]:
        """``program_log_joint`` for this model."""
        return program_log_joint(self.model, params, x_obs, state, normalisation, log_z=log_z)

    def sample(self, params: Mapping[str, Any], n: int, rng: Any = 0) -> tuple[State, Any]:
        """``sample_b`` for this model (ancestral sampling of model B)."""
        return sample_b(self.model, params, n, rng)


def _seeded(rng: Any) -> seed:
    return seed(seed=rng) if isinstance(rng, int) else seed(rng=rng)
