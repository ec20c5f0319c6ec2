"""The DGM: a skeleton of layers plus a class head, its parameters, gated forward, rendering and
the closed-form log joint (dgm-math §1.5, normalisations G and B).

Notation (dgm-math §1): level 0 holds ``h`` (latent clean feature) and the observation
``x̃ = f(x)`` (``f`` = the fixed ``encoder`` layers, identity by default); ``σ²`` is the Gaussian
variance of ``h`` around the rendering ``g_0``; ``τ²`` the observation noise (``inf``: no
observation term). The head is ``s = A u_L + β`` with ``β_y`` the (unnormalised) log prior.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Collection, Mapping, Sequence

from backends import DGMError, backend_by_name, get_backend

from . import traverse as T
from .distributions import gaussian_log_density
from .hooks import FixedLatents, NormPolicy, PlainPass
from ._validate import check_array, check_latent
from .layers import Dense, Initializer, Layer, MaxPool, Switch, switch_log_normaliser
from .state import State

NORM_MODES = ("none", "frozen", "original")


@dataclass(frozen=True)
class LogJoint:
    """``total`` (N,) and the per-term breakdown ``terms`` (name → (N,)); they sum to total."""
    total: Any
    terms: Mapping[str, Any]


class DGM:
    """A deconvolutional generative model (dgm-math §1) over a layer skeleton.

    Args:
        layers: the generative skeleton (level 0 → top), ending in a flat feature of size d_L.
        classes: K, the number of classes; the head ``A`` (K × d_L) and ``β`` (K,) are added.
        encoder: fixed layers ``f`` run once on the input to give ``x̃`` (CNN-F's levels below
            ``ind``; plain ReLU/max gates, never inferred).
        sigma2: σ², variance of ``h`` around the rendering.
        tau2: τ², observation noise of ``x̃`` around ``h``; ``math.inf`` drops ``T_obs``.
        input_shape: per-example input shape (C,H,W) or (F,); needed for shape inference.
        norm: how ``Norm`` layers act: "none", "frozen" or "original" (§1.6).

    Example:
        >>> from dgm import layers as L, DGM
        >>> m = DGM([L.Conv2d(1, 4, 3, padding=1), L.Switch(4), L.MaxPool(2), L.Flatten(),
        ...          L.Dense(4 * 2 * 2, 6), L.Switch(6)], classes=3, input_shape=(1, 4, 4))
        >>> p = m.init("numpy", seed=0)
    """

    def __init__(self, layers: Sequence[Layer], classes: int, *, encoder: Sequence[Layer] = (),
                 sigma2: float = 1.0, tau2: float = math.inf,
                 input_shape: Sequence[int] | None = None, norm: str = "none"):
        if not layers:
            raise DGMError("layers must not be empty")
        for i, layer in enumerate(list(encoder) + list(layers)):
            if not isinstance(layer, Layer):
                raise TypeError(f"layer {i} must be a dgm.layers.Layer, got {type(layer).__name__}")
        if int(classes) < 2:
            raise DGMError(f"classes must be >= 2, got {classes}")
        if not sigma2 > 0 or not math.isfinite(sigma2):
            raise DGMError(f"sigma2 must be a positive finite number, got {sigma2}")
        if not tau2 > 0:
            raise DGMError(f"tau2 must be positive (math.inf drops the observation), got {tau2}")
        if norm not in NORM_MODES:
            raise DGMError(f"norm must be one of {NORM_MODES}, got {norm!r}")
        self.layers, self.encoder = tuple(layers), tuple(encoder)
        self.classes, self.sigma2, self.tau2, self.norm = int(classes), float(sigma2), \
            float(tau2), norm
        self.input_shape = tuple(input_shape) if input_shape is not None else \
            _guess_input_shape(self.encoder + self.layers)
        self.encoder_shapes, self.level0_shape = T.infer_shapes(self.encoder, self.input_shape)
        self.shapes, top = T.infer_shapes(self.layers, self.level0_shape)
        if len(top) != 1:
            raise DGMError(f"the skeleton must end in a flat feature (add Flatten/Dense); "
                           f"it ends with shape {top}")
        self.top_features = top[0]
        self.param_shapes()  # every layer checks its input (e.g. a Switch's channel count)
        leaves = list(T.iter_layers(self.layers))
        self.switch_sites = tuple(p for p, layer in leaves if isinstance(layer, Switch))
        self.pool_sites = tuple(p for p, layer in leaves if isinstance(layer, MaxPool))
        self.site_layer = dict(leaves)
        self.pool_partner = _pool_partners(leaves)

    @property
    def program(self):
        """The generative program bound to this model (``dgm.program.Program``): trace, log
        joint by the interpreters, ancestral sampling."""
        from .program import Program  # program.py imports this module
        return Program(self)

    # -- parameters ---------------------------------------------------------------------------
    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        """Every parameter name and shape (per-example shapes, no batch axis)."""
        out = {}
        for prefix, layers, shapes in (("encoder.", self.encoder, self.encoder_shapes),
                                       ("layers.", self.layers, self.shapes)):
            for path, layer in T.iter_layers(layers):
                for name, shape in layer.param_shapes(shapes[path]).items():
                    out[f"{prefix}{path}.{name}"] = tuple(shape)
        out["head.weight"] = (self.classes, self.top_features)
        out["head.bias"] = (self.classes,)
        return out

    def init(self, backend: str = "numpy", seed: int = 0, *, dtype: Any = None,
             device: Any = None) -> dict[str, Any]:
        """Fresh parameters as a flat dict of arrays (numpy float64 by default, or torch)."""
        ops = backend_by_name(backend)
        if backend == "numpy":
            import numpy as np
            like = np.zeros(0, dtype=dtype or np.float64)
        else:
            import torch
            like = torch.zeros(0, dtype=dtype or torch.get_default_dtype(), device=device)
        init = Initializer(ops, ops.rng(seed, like), like)
        head = Dense(self.top_features, self.classes)
        params = {}
        for prefix, layers, shapes in (("encoder.", self.encoder, self.encoder_shapes),
                                       ("layers.", self.layers, self.shapes)):
            for path, layer in T.iter_layers(layers):
                for name, shape in layer.param_shapes(shapes[path]).items():
                    params[f"{prefix}{path}.{name}"] = layer.init_param(name, shape, init)
        params["head.weight"] = head.init_param("weight", (self.classes, self.top_features), init)
        params["head.bias"] = init.zeros((self.classes,))
        return params

    def check_params(self, params: Mapping[str, Any], finite: bool = False):
        """Validate names, shapes and one common backend/dtype (``finite``: and no NaN/inf, a
        pass over every parameter); returns (ops, reference array)."""
        expected = self.param_shapes()
        missing = sorted(set(expected) - set(params))
        extra = sorted(set(params) - set(expected))
        if missing or extra:
            raise DGMError(f"params do not match the model: missing {missing[:5]}, "
                           f"unexpected {extra[:5]}")
        like = params["head.weight"]
        ops = check_array("params['head.weight']", like, finite=False)
        for name, shape in expected.items():
            value = params[name]
            check_array(f"params[{name!r}]", value, like=like, finite=finite)
            if tuple(value.shape) != shape:
                raise DGMError(f"params[{name!r}] must have shape {shape}, got {tuple(value.shape)}")
        return ops, like

    # -- encoder, plain pass --------------------------------------------------------------------
    def encode(self, params: Mapping[str, Any], x) -> Any:
        """x̃ = f(x): the fixed encoder with plain gates (identity when there is no encoder)."""
        ops, like = self.check_params(params)
        check_array("x", x, shape_tail=self.input_shape, like=like)
        return self._encode(ops, params, x)

    def _encode(self, ops, params, x):
        if not self.encoder:
            return x
        mode = "none" if self.norm == "none" else "original"
        return T.forward(ops, self.encoder, params, x,
                         PlainPass(ops, NormPolicy(ops, mode), record=False), "encoder.")

    def plain_state(self, params: Mapping[str, Any], x_obs) -> tuple[State, Any]:
        """The initial state (§4.2): h = x̃, plain ReLU/max gates, y = argmax of the plain logits.

        Returns ``(state, logits)``; frozen norm scales are taken on this pass.
        """
        ops, like = self.check_params(params)
        check_array("x_obs", x_obs, shape_tail=self.level0_shape, like=like)
        return self._plain_state(ops, params, x_obs)

    def _plain_state(self, ops, params, x_obs) -> tuple[State, Any]:
        """``plain_state`` on a checked ``x_obs``."""
        norm = NormPolicy(ops, self.norm)
        hooks = PlainPass(ops, norm)
        u = T.forward(ops, self.layers, params, T.over_sigma2(x_obs, self.sigma2), hooks,
                      "layers.")
        logits = self.head(params, u)
        state = State(h=x_obs, y=ops.argmax(logits, -1), z=hooks.z, t=hooks.t,
                      norm_scales=norm.scales)
        return state, logits

    def encode_and_plain_state(self, params: Mapping[str, Any], x) -> tuple[Any, State, Any]:
        """``(x̃, *plain_state(params, encode(params, x)))`` with the input checked once (x̃ is
        a function of the checked x, so it is not re-scanned)."""
        ops, like = self.check_params(params)
        check_array("x", x, shape_tail=self.input_shape, like=like)
        x_obs = self._encode(ops, params, x)
        return (x_obs,) + self._plain_state(ops, params, x_obs)

    def plain_logits(self, params: Mapping[str, Any], x) -> Any:
        """The plain CNN's logits s (N, K) on the input ``x``: ``plain_state(params,
        encode(params, x))[1]``, the same values, without keeping x̃ or any latent."""
        ops, like = self.check_params(params)
        check_array("x", x, shape_tail=self.input_shape, like=like)
        hooks = PlainPass(ops, NormPolicy(ops, self.norm), record=False)
        # x̃ is passed on unnamed, so the walk frees it after its first layer
        return self.head(params, T.forward(ops, self.layers, params, T.over_sigma2(
            self._encode(ops, params, x), self.sigma2), hooks, "layers."))

    def head(self, params, u):
        """s = A u_L + β  (N, K)."""
        return u @ params["head.weight"].T + params["head.bias"]

    # -- fixed-latent forward and rendering (Theorem A) -------------------------------------------
    def norm_policy(self, ops, state: State) -> NormPolicy:
        return NormPolicy(ops, self.norm, dict(state.norm_scales))

    def logits(self, params: Mapping[str, Any], state: State, h=None):
        """Gated-forward logits s(h; z, t) (N, K) with the state's latents (h defaults to state.h)."""
        ops = get_backend(state.h)
        h = state.h if h is None else h
        hooks = FixedLatents(ops, state.z, state.t, self.norm_policy(ops, state))
        return self.head(params, T.forward(ops, self.layers, params, h / self.sigma2, hooks,
                                           "layers."))

    def top_vector(self, params, y=None, q=None):
        """Aᵀ e_y (hard class) or Aᵀ q (class mixture / logits), shape (N, d_L)."""
        A = params["head.weight"]
        if q is not None:
            return q @ A
        ops = get_backend(A)
        return ops.one_hot(y, self.classes, A) @ A

    def render(self, params: Mapping[str, Any], state: State, top=None,
               keep_ghat: Collection[str] | None = None,
               signs: bool = False) -> tuple[Any, FixedLatents]:
        """Top-down rendering g_0 from ``top`` (default Aᵀe_y) with the state's gates (§1.2).

        Returns ``(g_0, hooks)``; ``hooks.ghat[path]`` is ĝ at each Switch (only at the paths
        in ``keep_ghat`` when given, which saves their full-resolution maps) and
        ``hooks.gpool[path]`` the pooled rendering at each MaxPool; with ``signs`` both hold
        only the signs (int8), which is all the exact block steps read.
        """
        ops = get_backend(state.h)
        top = self.top_vector(params, state.y) if top is None else top
        hooks = FixedLatents(ops, state.z, state.t, self.norm_policy(ops, state), keep_ghat,
                             signs, dict(state.unplaced))
        g0 = T.render(ops, self.layers, params, top, hooks, "layers.", self.shapes)
        return g0, hooks

    # -- log joint ------------------------------------------------------------------------------
    def objective(self, params: Mapping[str, Any], x_obs, state: State, y=None):
        """J_G(h, y, z, t) = s_y − ‖h‖²/(2σ²) − ‖x̃ − h‖²/(2τ²)  (N,), dgm-math §4.1.

        Equals log p_G up to a parameter-only constant; the engine's monotone quantity.
        With ``state.q`` set and ``y`` None: the free energy Σ_y q_y J_y + H(q) (§4.4).
        """
        ops = get_backend(state.h)
        s = self.logits(params, state)
        h = state.h
        rest = -ops.batch_dot(h, h) / (2 * self.sigma2)
        if math.isfinite(self.tau2):
            d = x_obs - h
            rest = rest - ops.batch_dot(d, d) / (2 * self.tau2)
        if y is None and state.q is not None:
            q = state.q
            logq = ops.xp.log(ops.where(q > 0, q, q * 0 + 1))
            return (q * s).sum(-1) - (q * logq).sum(-1) + rest
        y = state.y if y is None else y
        return ops.take_along_axis(s, y[:, None], -1)[:, 0] + rest

    def log_joint(self, params: Mapping[str, Any], x, state: State, normalisation: str = "G",
                  *, log_z: Any = None, observed: str = "input") -> LogJoint:
        """The closed-form log joint log p(x̃, h, y, z, t) with its per-term breakdown (§1.5).

        Args:
            x: the input image (``observed="input"``) or x̃ itself (``observed="level0"``).
            normalisation: "G" (globally normalised, the inference default) or "B" (Bernoulli).
            log_z: for G, log Z_G (``dgm.enumerate.log_z_g`` for tiny nets); when None the
                term ``log_Z`` is omitted and the total is log p_G + log Z_G.
        Terms (each (N,)): ``class`` T_y; ``switch:<path>`` T_bias (G) or T_bias + T_norm (B);
        ``pool:<path>`` T_trans (B); ``render`` ‖g_0‖²/(2σ²) (G); ``gauss``; ``obs``; ``log_Z``.
        """
        if normalisation not in ("G", "B"):
            raise DGMError(f"normalisation must be 'G' or 'B', got {normalisation!r}")
        if observed not in ("input", "level0"):
            raise DGMError(f"observed must be 'input' or 'level0', got {observed!r}")
        ops, like = self.check_params(params)
        x_obs = self.encode(params, x) if observed == "input" else x
        self.check_state(state, like, x_obs=x_obs)
        g0, hooks = self.render(params, state)
        terms = {"class": self.class_log_prior(params, state.y)}
        for path in self.switch_sites:
            terms[f"switch:{path}"] = self._switch_term(ops, params, path, state.z[path],
                                                        hooks.ghat[path], normalisation)
        if normalisation == "B":
            for path in self.pool_sites:
                kk = self.site_layer[path].kernel_size ** 2
                n = math.prod(state.t[path].shape[1:])
                terms[f"pool:{path}"] = ops.zeros((state.batch_size,), like) - n * math.log(kk)
        else:
            terms["render"] = ops.batch_dot(g0, g0) / (2 * self.sigma2)
        terms["gauss"] = gaussian_log_density(ops, state.h, g0, self.sigma2)
        if math.isfinite(self.tau2):
            terms["obs"] = gaussian_log_density(ops, x_obs, state.h, self.tau2)
        if normalisation == "G" and log_z is not None:
            terms["log_Z"] = ops.zeros((state.batch_size,), like) - log_z
        total = sum(terms.values())
        return LogJoint(total=total, terms=terms)

    def class_log_prior(self, params, y):
        """T_y = β_y − logsumexp(β)  (N,)."""
        beta = params["head.bias"]
        ops = get_backend(beta)
        log_pi = beta - ops.logsumexp(beta, 0)
        return log_pi[y]

    def _switch_term(self, ops, params, path, z, ghat, normalisation):
        """⟨b ⊙ γ(z), ĝ⟩ (G); minus the Bernoulli normaliser (B), both (N,)."""
        u = self._prior_logit(params, path, ghat)
        term = ops.batch_dot(ops.gate_values(z, u, self.site_layer[path].leak), u)
        if normalisation == "B":
            term = term - self._bernoulli_normaliser(ops, path, u)
        return term

    @staticmethod
    def _prior_logit(params, path: str, ghat):
        """u = b·ĝ, the switch prior's logit per unit (dgm-math §1.3)."""
        return ghat * T.channel_view(params[f"layers.{path}.bias"], ghat.ndim)

    def _bernoulli_normaliser(self, ops, path: str, u):
        """Σ_units log(e^{αu} + e^{u}) = Σ sp((1−α)u) + αu per example (N,); α = the leak."""
        norm = switch_log_normaliser(ops, u, self.site_layer[path].leak)
        return norm.reshape(norm.shape[0], -1).sum(-1)

    def corrected_logits(self, params: Mapping[str, Any], state: State):
        """Model B's class posterior logits s_y − R_y(z, t) (N, K), dgm-math §2.2:
        R_y = ‖g_0(y)‖²/(2σ²) + Σ sp(b ĝ(y)), rendering all K classes (one batched pass each)."""
        ops = get_backend(state.h)
        s = self.logits(params, state)
        cols = []
        for k in range(self.classes):
            yk = state.y * 0 + k
            g0, hooks = self.render(params, state, self.top_vector(params, yk))
            r = ops.batch_dot(g0, g0) / (2 * self.sigma2)
            for path in self.switch_sites:
                u = self._prior_logit(params, path, hooks.ghat[path])
                r = r + self._bernoulli_normaliser(ops, path, u)
            cols.append(s[:, k] - r)
        return ops.xp.stack(cols, -1)

    def check_state(self, state: State, like, x_obs=None) -> None:
        """Shapes, dtypes, value ranges and completeness of ``state`` against this model; with
        ``x_obs``, also the level-0 observation x̃ (shape, backend, finite, same batch).

        The state comes from outside a walk, so whatever the backend remembers about its
        latents is forgotten (the memo rule of ``dgm.traverse``: they may have been edited in
        place where no version counter shows it, under ``torch.inference_mode``)."""
        if not isinstance(state, State):
            raise TypeError(f"state must be a dgm.State, got {type(state).__name__}")
        check_array("state.h", state.h, shape_tail=self.level0_shape, like=like)
        n = state.batch_size
        check_latent("state.y", state.y, (n,), "integer", like, self.classes)
        for path in self.switch_sites:
            if path not in state.z:
                raise DGMError(f"state.z has no entry for switch {path!r}")
            check_latent(f"state.z[{path!r}]", state.z[path], (n,) + tuple(self.shapes[path]),
                         "bool", like)
        for path in self.pool_sites:
            if path not in state.t:
                raise DGMError(f"state.t has no entry for pool {path!r}")
            layer = self.site_layer[path]
            check_latent(f"state.t[{path!r}]", state.t[path],
                         (n,) + tuple(layer.out_shape(self.shapes[path])), "integer", like,
                         layer.kernel_size ** 2)
        ops = get_backend(like)
        for latent in (state.h, *state.z.values(), *state.t.values()):
            ops.forget(latent)
        if x_obs is not None:
            check_array("x", x_obs, shape_tail=self.level0_shape, like=like)
            if x_obs.shape[0] != n:
                raise DGMError(f"x has batch size {x_obs.shape[0]} but the state has {n}")


def _guess_input_shape(layers: Sequence[Layer]) -> tuple[int, ...]:
    first = layers[0]
    if isinstance(first, Dense):
        return (first.in_features,)
    raise DGMError("input_shape is required unless the first layer is Dense")


def _pool_partners(leaves: list[tuple[str, Layer]]) -> dict[str, str]:
    """Switch path → the MaxPool that directly follows it in the same sequence (joint block)."""
    out = {}
    for (p1, l1), (p2, l2) in zip(leaves, leaves[1:]):
        same_seq = p1.rsplit(".", 1)[0] == p2.rsplit(".", 1)[0] if "." in p1 else "." not in p2
        if isinstance(l1, Switch) and isinstance(l2, MaxPool) and same_seq:
            out[p1] = p2
    return out
