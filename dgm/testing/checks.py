"""Property checks a user runs on their own DGM (usually inside a hypothesis test, on the
``Problem`` values of ``dgm.testing.problems_for``). Each raises ``AssertionError`` naming what
failed, by how much and the tolerance; each compares two independent computations.

* :func:`check_trajectory`: the log joint J never decreases along an inference trajectory, step
  by step (dgm-math §4: every exact block step is a maximiser), up to ε of §4.6;
* :func:`check_program`: the generative program's traced log density (``dgm.program``) equals
  the closed-form log joint (``DGM.log_joint``) in total and site by site, and — when Pyro is
  installed — so does Pyro's trace of the same program (``dgm.pyro_adapter``);
* :func:`check_backends`: the numpy float64 reference and the torch backend (float64) agree.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import numpy as np

from ..program import program_log_joint
from ..pyro_adapter import pyro_data, to_pyro
from .strategies import Problem, to_torch, tolerance

NORMALISATIONS = ("G", "B")


def check_trajectory(problem: Problem, trajectory: Any) -> None:
    """J after every recorded step ≥ J before it − ε, per example.

    Args:
        problem: the model, parameters and observation the trajectory was computed on.
        trajectory: the engine's record (``inference.alternating_map(..., record="step")``
            ``.trajectory``, or any object whose ``steps`` have ``objective`` (N,), ``state``,
            ``cycle`` and ``name``).
    """
    steps = list(trajectory.steps)
    if len(steps) < 2:
        raise AssertionError("the trajectory records fewer than 2 steps (record='step'?)")
    eps = [tolerance(problem, s.state) for s in steps]
    for i, (before, after) in enumerate(zip(steps, steps[1:])):
        drop = np.asarray(before.objective) - np.asarray(after.objective)
        bound = np.maximum(eps[i], eps[i + 1])
        if not (drop <= bound).all():
            raise AssertionError(f"J decreased at step {after.cycle}:{after.name} by "
                                 f"{drop.max():.3e} (ε {bound.max():.1e}); steps "
                                 f"{[f'{s.cycle}:{s.name}' for s in steps]}")


def _site_terms(model, normalisation: str) -> dict[str, list[str]]:
    """Program site -> the closed-form terms that make up its log density."""
    sites = {"y": ["class"], "h": ["gauss"]}
    if math.isfinite(model.tau2):
        sites["x"] = ["obs"]
    if normalisation == "B":
        sites.update({f"z:{p}": [f"switch:{p}"] for p in model.switch_sites})
        sites.update({f"t:{p}": [f"pool:{p}"] for p in model.pool_sites})
    return sites


def check_program(problem: Problem, normalisations: Sequence[str] = NORMALISATIONS, *,
                  log_z: Any = None, pyro: bool | None = None, rtol: float = 1e-10) -> None:
    """Program ≡ closed form (≡ Pyro) on ``problem``'s observation and state.

    Args:
        normalisations: "G" (globally normalised) and/or "B" (Bernoulli).
        log_z: log Z_G for "G" (``dgm.enumerate.log_z_g`` on tiny nets); None leaves it out.
        pyro: also compare Pyro's trace (True), not (False), or when Pyro imports (None).
        rtol: tolerance relative to 1 + Σ|terms| per example (Pyro: 100 × that).
    """
    model, params, x, state = problem.model, problem.params, problem.x, problem.state
    if pyro is None:
        try:
            import pyro as _  # noqa: F401
            pyro = True
        except ImportError:
            pyro = False
    for nrm in normalisations:
        lj = model.log_joint(params, x, state, nrm, log_z=log_z, observed="level0")
        eps = rtol * (1.0 + sum(np.abs(v) for v in lj.terms.values()))
        total, trace = program_log_joint(model, params, x, state, nrm, log_z=log_z)
        _close(f"{nrm}: program total", total, lj.total, eps)
        log_probs = trace.log_probs()
        for site, names in _site_terms(model, nrm).items():
            _close(f"{nrm}: program site {site!r}", log_probs[site],
                   sum(lj.terms[n] for n in names), eps)
        if pyro:
            _close(f"{nrm}: Pyro trace", _pyro_log_joint(problem, nrm, log_z), lj.total,
                   100 * eps)


def _pyro_log_joint(problem: Problem, normalisation: str, log_z: Any) -> np.ndarray:
    """Per-example log density of Pyro's trace of the program, conditioned on the state."""
    from pyro import poutine
    model, state = problem.model, problem.state
    fn = to_pyro(model, to_torch(problem.params), normalisation, log_z=log_z)
    data = pyro_data(model, to_torch(state), to_torch(problem.x))
    tr = poutine.trace(poutine.condition(fn, data=data)).get_trace(
        state.batch_size, to_torch(dict(state.norm_scales)))
    tr.compute_log_prob()
    return sum(site["log_prob"] for name, site in tr.nodes.items()
               if site["type"] == "sample" and name != "batch").numpy()


def _default_outputs(model, params, x, state) -> dict[str, Any]:
    """The closed-form log joint (total and terms), the rendering g_0 and the gated logits."""
    lj = model.log_joint(params, x, state, "G", observed="level0")
    g0, _ = model.render(params, state)
    return {"log_joint": lj.total, **{f"term {k}": v for k, v in lj.terms.items()},
            "g0": g0, "logits": model.logits(params, state)}


def check_backends(problem: Problem, fn: Callable | None = None, *,
                   rtol: float = 1e-9, atol: float = 1e-9) -> None:
    """numpy ≡ torch: ``fn(model, params, x, state)`` on the numpy float64 values and on the
    same values as torch float64 tensors agree (``allclose``; dicts compared key by key).
    Default ``fn``: the log joint and its terms, the rendering g_0 and the logits. Pass e.g.
    ``lambda m, p, x, s: inference.alternating_map(m, p, x, cycles=2, observed="level0",
    initial_state=s).logits[-1]`` to compare the engine."""
    fn = fn or _default_outputs
    model = problem.model
    ours = fn(model, problem.params, problem.x, problem.state)
    theirs = fn(model, to_torch(problem.params), to_torch(problem.x), to_torch(problem.state))
    if not isinstance(ours, dict):
        ours, theirs = {"output": ours}, {"output": theirs}
    for key in ours:
        a = np.asarray(ours[key], dtype=np.float64)
        b = np.asarray(theirs[key].detach().cpu().numpy(), dtype=np.float64)
        if a.shape != b.shape or not np.allclose(a, b, rtol=rtol, atol=atol):
            diff = np.abs(a - b).max() if a.shape == b.shape else "shapes differ"
            raise AssertionError(f"numpy and torch disagree on {key}: max |Δ| = {diff} "
                                 f"(shapes {a.shape} / {b.shape})")


def _close(what: str, value, reference, eps) -> None:
    gap = np.abs(np.asarray(value) - np.asarray(reference))
    if not (gap <= eps).all():
        raise AssertionError(f"{what} differs from the closed form by {gap.max():.3e} "
                             f"(tolerance {np.max(eps):.1e})")
