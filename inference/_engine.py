"""Alternating MAP over (y, h, z, t) (dgm-math §4.2–4.4): one cycle is
render → S_h → S_1 … S_L → S_y, repeated for ``cycles`` or until a fixed point.

With exact options every single step is the maximiser of J_G over its block, so J never
decreases (Theorem §4.3(a)); with the keep-current tie rule a fixed point is reached in finitely
many cycles (§4.3(c)). The CNN-F heuristics are options (``Options.original()``).
"""
from __future__ import annotations

import math
from typing import Any, Mapping

from backends import DGMError, get_backend
from dgm import DGM, State
from dgm.hooks import FixedLatents
from dgm._validate import check_latent
from dgm import traverse as T

from . import _blocks as B
from ._options import Options
from ._sweep import Sweep
from ._trajectory import Result, Step, Trajectory

RECORD = ("none", "cycle", "step")


def class_distribution(ops, logits):
    """q = softmax(s) (N, K), normalised to sum to 1: exp(log_softmax) alone carries the
    rounding of logsumexp(s) as a common factor (1 ± 4e-7 at logits ~1e10), which F = Σ q_y J_y
    + H(q) multiplies by J ~ s (a fall of thousands); dividing by the sum removes it."""
    q = ops.xp.exp(ops.log_softmax(logits, -1))
    return q / q.sum(-1)[:, None]


def alternating_map(model: DGM, params: Mapping[str, Any], x, *, cycles: int = 5,
                    until_fixed_point: bool = False, options: Options | None = None,
                    record: str = "cycle", observed: str = "input",
                    initial_state: State | None = None, renderings: bool = True,
                    converged: bool = True, observed_y: Any = None) -> Result:
    """Run the alternating-MAP engine on a batch.

    Args:
        model, params: the DGM and its parameters (any backend; autograd flows on torch).
        x: input batch (N, *model.input_shape), or x̃ (N, *model.level0_shape) when
            ``observed="level0"``.
        cycles: number of cycles; with ``until_fixed_point`` the maximum number.
        options: exact by default; ``Options.original()`` for CNN-F's heuristics.
        record: "none", "cycle" (objective after every cycle) or "step" (after every single step).
        initial_state: start here instead of at the plain CNN state (its logits are recomputed).
        renderings: keep g_0 of every cycle in ``Result.renderings`` (False: an empty list,
            which saves one level-0 map per cycle when only the logits are wanted).
        converged: test the last cycle for a fixed point (False: ``Result.converged`` is
            None, unless ``until_fixed_point`` needs the test anyway).
        observed_y: the class is observed, int (N,): y = observed_y from the start and the
            y-step keeps it (the other steps are unchanged, so J still never decreases). The
            E-step of supervised learning and the per-class runs of the generative
            classifier; hard feedback only ("onehot" or "logits").
    Returns:
        ``Result`` with the final state, the logits of every pass, states and trajectory.
    Example:
        >>> res = alternating_map(model, params, x, cycles=5, record="step")
        >>> res.trajectory.objectives()   # non-decreasing per example with exact options
    """
    options = Options() if options is None else options
    if not isinstance(options, Options):
        raise TypeError(f"options must be inference.Options, got {type(options).__name__}")
    if record not in RECORD:
        raise DGMError(f"record must be one of {RECORD}, got {record!r}")
    if int(cycles) != cycles or cycles < 0:
        raise DGMError(f"cycles must be a non-negative integer, got {cycles}")
    if observed not in ("input", "level0"):
        raise DGMError(f"observed must be 'input' or 'level0', got {observed!r}")
    model.check_params(params, finite=True)   # NaN/inf parameters: InputError naming one
    if observed == "input" and initial_state is None:
        x_obs, state, logits = model.encode_and_plain_state(params, x)
    elif initial_state is None:
        x_obs = x
        state, logits = model.plain_state(params, x_obs)
    else:
        x_obs = model.encode(params, x) if observed == "input" else x
        model.check_state(initial_state, model.check_params(params)[1], x_obs=x_obs)
        state = initial_state
        logits = model.logits(params, state)
    ops = get_backend(x_obs)
    if observed_y is not None:
        if options.feedback == "softmax":
            raise DGMError("observed_y needs hard feedback (Options.feedback 'onehot' or "
                           "'logits'); the soft class variant infers q")
        check_latent("observed_y", observed_y, (state.batch_size,), "integer",
                     model.check_params(params)[1], model.classes)
        state = state.replace(y=observed_y)
    if options.feedback == "softmax" and state.q is None:
        state = State(h=state.h, y=state.y, z=state.z, t=state.t,
                      q=class_distribution(ops, logits), norm_scales=state.norm_scales,
                      unplaced=state.unplaced)
    engine = _Engine(model, params, x_obs, options, record, ops, keep_renderings=renderings,
                     observed_y=observed_y is not None)
    engine.record(0, "init", state)
    # (without recording, no earlier state is kept: its latents would stay alive to the end)
    all_logits, states, rendered = [logits], ([state] if record != "none" else []), []
    test = converged or until_fixed_point
    converged = None
    if test:
        converged = ops.xp.zeros(state.batch_size, dtype=bool) if ops.name == "numpy" else \
            ops.xp.zeros(state.batch_size, dtype=ops.xp.bool, device=x_obs.device)
    n = 0
    fixed_at = None  # per example: the first cycle that left its state unchanged (0: none yet)
    # the engine owns the current state from here: a cycle drops the previous one as soon as
    # its h-step is done, unless it is kept for the fixed-point test or the record
    engine.state, state = state, None
    for n in range(1, cycles + 1):
        tested = until_fixed_point or (test and n == cycles)  # only the last test is reported
        previous = engine.state if tested else None
        logits, g0 = engine.cycle(n, all_logits[-1])
        all_logits.append(logits)
        if renderings:
            rendered.append(g0)
        del g0  # (it is the new state's h: no second reference into the next cycle)
        if record != "none":
            states.append(engine.state)
        if tested:
            converged = _same_state(ops, previous, engine.state)
        if until_fixed_point:  # (bool × int is an int array on every backend)
            first = converged if fixed_at is None else converged & (fixed_at == 0)
            fixed_at = first * n if fixed_at is None else fixed_at + first * n
        if until_fixed_point and bool(converged.all()):
            break
    return Result(state=engine.state, logits=all_logits, states=states, trajectory=engine.trajectory,
                  cycles=n if cycles else 0, converged=converged, renderings=rendered,
                  x_obs=x_obs, fixed_at=fixed_at)


class _Engine:
    def __init__(self, model: DGM, params, x_obs, options: Options, record: str, ops,
                 keep_renderings: bool = True, observed_y: bool = False):
        self.model, self.params, self.x_obs, self.options = model, params, x_obs, options
        self.observed_y = observed_y
        self.record_mode, self.ops = record, ops
        self.trajectory = Trajectory()
        t2, s2 = model.tau2, model.sigma2
        self.lam = 1.0 if math.isinf(t2) else t2 / (s2 + t2)
        self.keep_ghat, self.signs = Sweep.reads(model, options)
        self.state: State | None = None  # the current state, owned by the engine while cycling
        # g_0 is the engine's own temporary (the h-step may be written into it) unless it is
        # handed out as a rendering or read twice (the guard's second h-step)
        self.owns_g0 = not (keep_renderings or options.guard)

    # -- recording ------------------------------------------------------------------------------
    def objective(self, state: State):
        return self.model.objective(self.params, self.x_obs, state)

    def record(self, cycle: int, name: str, state: State, force: bool = False) -> None:
        if self.record_mode == "step" or (force and self.record_mode == "cycle") or \
                (name == "init" and self.record_mode != "none"):
            self.trajectory.add(Step(cycle, name, self.objective(state), state.y, state))

    # -- one cycle -------------------------------------------------------------------------------
    def top(self, state: State, prev_logits):
        fb = self.options.feedback
        if fb == "onehot":
            return self.model.top_vector(self.params, state.y)
        return self.model.top_vector(self.params, q=state.q if fb == "softmax" else prev_logits)

    def cycle(self, n: int, prev_logits):
        """One cycle from ``self.state`` (replaced by the new state); returns the logits of
        the cycle's forward pass and its rendering g_0."""
        model, params, ops, opt, state = self.model, self.params, self.ops, self.options, \
            self.state
        g0, rendered = model.render(params, state, self.top(state, prev_logits), self.keep_ghat,
                                    self.signs)
        # the exact steps' rendering: the feedback's own (one-hot or soft), one-hot for logits
        g0_exact, exact_render = g0, rendered
        if opt.guard and opt.feedback == "logits":
            g0_exact, exact_render = model.render(params, state, keep_ghat=self.keep_ghat,
                                                  signs=True)
        state = self.state = self.h_step(n, state, g0, g0_exact)  # (the old state can go)
        sweep = Sweep(ops, model, state.z, state.t, rendered.ghat, rendered.gpool, opt,
                      model.norm_policy(ops, state), self._on_step(n, state, exact_render))
        h = T.over_sigma2(state.h, model.sigma2)
        u = T.forward(ops, model.layers, params, h, sweep, "layers.")
        logits = model.head(params, u)
        state = state.replace(z=sweep.z, t=sweep.t, unplaced=sweep.unplaced)
        state = self.state = self.y_step(n, state, logits)
        if self.record_mode == "cycle":
            self.record(n, "cycle", state, force=True)
        return logits, g0

    def h_step(self, n: int, state: State, g0, g0_exact) -> State:
        """S_h (§3.4): exact h* = x̃ + λ(g_0 − x̃); damped toward h*; or CNN-F's h + η(g_0 − h).

        ``g0_exact`` is the rendering of the exact feedback (differs from ``g0`` only for
        logit feedback); the guard falls back to its exact target."""
        opt, h, owned = self.options, state.h, self.owns_g0
        if opt.h_update == "exact":
            new = self.h_star(g0, owned)
        elif opt.h_update == "damped":
            new = self._toward(h, self.h_star(g0, owned), opt.eta, owned or self.lam != 1.0)
        else:
            new = self._toward(h, g0, opt.eta, owned)
        if opt.guard and not opt.is_exact:
            exact = self.h_star(g0_exact)
            new = self._guarded(state, state.replace(h=new), state.replace(h=exact))
        else:
            new = state.replace(h=new)
        self.record(n, "h", new)
        return new

    def h_star(self, g0, owned: bool = False):
        """h* = x̃ + λ(g_0 − x̃), λ = τ²/(σ² + τ²); exactly g_0 when τ² = ∞ (λ = 1).
        ``owned``: g_0 is the engine's temporary, so h* may be written into it."""
        if self.lam == 1.0:  # (under autograd x̃ stays in the graph, with its zero gradient)
            return g0 + 0.0 * self.x_obs if self.ops.needs_grad(self.x_obs) else g0
        return self._toward(self.x_obs, g0, self.lam, owned)

    def _toward(self, base, target, rate: float, owned: bool):
        """base + rate·(target − base), in ``target``'s memory when ``owned`` (else in one new
        array) and no gradient flows; the same numbers either way (addition commutes)."""
        ops = self.ops
        d = ops.update(target, "-", base, owned)
        return ops.update(ops.update(d, "*", rate, True), "+", base, True)

    def y_step(self, n: int, state: State, logits) -> State:
        """S_y (§3.3): hard arg-max (keep-current ties) or q = softmax(s) for soft feedback."""
        ops, keep = self.ops, self.options.ties == "keep"
        y = state.y if self.observed_y else B.y_step(ops, logits, state.y, keep)
        q = class_distribution(ops, logits) if self.options.feedback == "softmax" else None
        new = State(h=state.h, y=y, z=state.z, t=state.t, q=q, norm_scales=state.norm_scales,
                    unplaced=state.unplaced)
        self.record(n, "y", new)
        return new

    def _on_step(self, n: int, state: State, exact_render):
        opt = self.options
        guard = opt.guard and not opt.is_exact
        if self.record_mode != "step" and not guard:
            return None

        def on_step(name, sites, z, t, unplaced):
            current = state.replace(z=dict(z), t=dict(t),
                                    unplaced={**state.unplaced, **unplaced})
            if guard:
                current = self._guard_sites(state, current, sites, exact_render, z, t)
                z, t = dict(current.z), dict(current.t)
            self.record(n, name, current)
            return (z, t) if guard else None

        return on_step

    def _guard_sites(self, old_full: State, proposal: State, sites, exact_render, z, t) -> State:
        """Accept the heuristic update of ``sites`` per example only if J does not decrease;
        otherwise use the exact block step for those sites (computed from the same a)."""
        # the state before this site's update: the proposal with the old values at ``sites``
        before_z = {k: (old_full.z[k] if k in sites else v) for k, v in proposal.z.items()}
        before_t = {k: (old_full.t[k] if k in sites else v) for k, v in proposal.t.items()}
        before = proposal.replace(z=before_z, t=before_t)
        exact = self._exact_site_update(before, sites, exact_render)
        return self._guarded(before, proposal, exact)

    def _exact_site_update(self, before: State, sites, exact_render) -> State:
        """Exact block step at ``sites`` from ``before`` (fresh pre-activations via a forward)."""
        model, ops = self.model, self.ops
        exact_opt = Options(block=self.options.block)
        probe = Sweep(ops, model, before.z, before.t, exact_render.ghat, exact_render.gpool,
                      exact_opt, model.norm_policy(ops, before))
        frozen = _FrozenExcept(probe, set(sites), before)
        h = T.over_sigma2(before.h, model.sigma2)
        T.forward(ops, model.layers, self.params, h, frozen, "layers.")
        return before.replace(z=frozen.z, t=frozen.t)

    def _guarded(self, old: State, proposal: State, fallback: State) -> State:
        """Per example: ``proposal`` where J(proposal) ≥ J(old), else ``fallback``."""
        ops = self.ops
        ok = self.objective(proposal) >= self.objective(old)
        pick = lambda a, b: ops.where(ok.reshape((-1,) + (1,) * (a.ndim - 1)), a, b)
        return old.replace(h=pick(proposal.h, fallback.h),
                           z={k: pick(proposal.z[k], fallback.z[k]) for k in proposal.z},
                           t={k: pick(proposal.t[k], fallback.t[k]) for k in proposal.t})


class _FrozenExcept:
    """Forward hooks that keep every latent of ``state`` except at ``sites``, where the exact
    block step of ``sweep`` is applied (used by the guard to compute the exact fallback)."""

    def __init__(self, sweep: Sweep, sites: set, state: State):
        self.sweep, self.sites, self.norm = sweep, sites, sweep.norm
        self.z, self.t = dict(state.z), dict(state.t)
        self.fixed = FixedLatents(sweep.ops, self.z, self.t, sweep.norm)

    def switch(self, path, layer, a):
        if path in self.sites:
            out = self.sweep.switch(path, layer, a)
            self.z[path] = self.sweep.z[path]
            for pool in self.sweep.joint_done:
                self.t[pool] = self.sweep.t[pool]
            return out
        return self.fixed.switch(path, layer, a)

    def pool(self, path, layer, x):
        if path in self.sites:  # (a joint block's pool: the sweep's pooled output)
            out = self.sweep.pool(path, layer, x)
            self.t[path] = self.sweep.t[path]
            return out
        return self.fixed.pool(path, layer, x)


def _same_state(ops, a: State, b: State):
    """Per-example: is ``b`` the same state as ``a``? (fixed-point test).

    The discrete latents (y, z, t) must be identical; h, the only continuous part, equal up to
    64 units of round-off (|Δh| ≤ 64·eps·(1 + |h|)), so that backends whose kernels round
    differently in the last bit agree on convergence."""
    n = a.batch_size
    eps = 64 * float(ops.xp.finfo(a.h.dtype).eps)
    close = ops.xp.abs(a.h - b.h) <= eps * (1 + ops.xp.abs(a.h))
    same = (a.y == b.y) & close.reshape(n, -1).all(-1)
    for k in a.z:
        same = same & (a.z[k] == b.z[k]).reshape(n, -1).all(-1)
    for k in a.t:
        same = same & (a.t[k] == b.t[k]).reshape(n, -1).all(-1)
    return same
