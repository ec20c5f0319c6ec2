"""Analysis by synthesis: score every class by the log joint at its own MAP state.

The engine's hard y-step is coordinate ascent started at the plain pass's class, so later
cycles re-select it (issue 15). The generative classifier compares the classes *under the
model* instead (dgm-math §3.3 with y clamped):

    ŷ = argmax_y max_{h,z,t} log p(x̃, h, y, z, t),

approximated by one alternating-MAP run per class with y observed (the gates and positions are
re-inferred for each class, never shared), scored by the closed-form log joint (normalisation
B by default: the exactly normalised model, whose class posterior is not the CNN's).
"""
from __future__ import annotations

import math
from typing import Any, Mapping

from backends import get_backend
from dgm import DGM, State

from ._engine import alternating_map
from ._options import Options


def evidence_state(model: DGM, x_obs, state: State) -> State:
    """The state at which an observation's log joint is scored: the engine's state, with
    h = x̃ when τ² = ∞.

    With τ² = ∞ the observation has no term of its own (x̃ only initialises h, §1.4) and the
    exact h-step sets h = g_0, so log p at the engine's h does not depend on x̃. Scoring at
    h = x̃ is the DGM paper's x̃ ~ N(g_0, σ²I): the image is the clean level-0 feature."""
    return state.replace(h=x_obs) if math.isinf(model.tau2) else state


def class_map_states(model: DGM, params: Mapping[str, Any], x, *, cycles: int = 1,
                     options: Options | None = None, observed: str = "input"
                     ) -> tuple[Any, list[State]]:
    """One alternating-MAP run per class with y observed: ``(x̃, [state_0, …, state_{K−1}])``,
    each state already an ``evidence_state`` (N examples each)."""
    states, x_obs = [], None
    for k in range(model.classes):
        y = _constant_class(model, params, x, k)
        res = alternating_map(model, params, x, cycles=cycles, options=options, record="none",
                              observed=observed, renderings=False, converged=False,
                              observed_y=y)
        x_obs = res.x_obs
        states.append(evidence_state(model, x_obs, res.state))
    return x_obs, states


def class_scores(model: DGM, params: Mapping[str, Any], x, *, cycles: int = 1,
                 options: Options | None = None, normalisation: str = "B",
                 observed: str = "input"):
    """Scores (N, K): log p(x̃, h_y, y, z_y, t_y) at each class's MAP state (see module doc).

    Args:
        cycles: engine cycles per class (0 keeps the plain pass's gates for every class, which
            is not a per-class inference: only the rendering's class changes).
        normalisation: "B" (exact density) or "G" (without log Z_G, a class-independent
            constant, so the arg-max is unaffected).
    Example:
        >>> yhat = class_scores(model, params, x, cycles=2).argmax(-1)
    """
    x_obs, states = class_map_states(model, params, x, cycles=cycles, options=options,
                                     observed=observed)
    cols = [model.log_joint(params, x_obs, s, normalisation, observed="level0").total
            for s in states]
    return get_backend(x_obs).xp.stack(cols, -1)


def _constant_class(model: DGM, params, x, k: int):
    """An integer array (N,) of class ``k`` on the parameters' backend."""
    ops, like = model.check_params(params)
    return ops.argmax(ops.zeros((int(x.shape[0]), 1), like), -1) + k
