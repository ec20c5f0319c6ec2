"""Property tests for your own DGMs: hypothesis strategies and the checks this project runs on
its own models (dgm-math §5). Needs ``hypothesis`` (the ``dev`` extra); ``dgm`` itself never
imports this package.

Strategies (``dgm.testing.strategies``): :func:`problems_for` (random parameters, an
observation x̃ and an arbitrary valid state for *your* model), :func:`problems` (random tiny
skeletons: conv / dense / pool / norm / residual), :func:`real_conv_problems`; a drawn
:class:`Problem` holds ``model, params, x, state`` (numpy float64; values rounded to a grid
half of the time, so ties are common).

Checks (``dgm.testing.checks``), each comparing two independent computations and raising
``AssertionError`` with the gap and the tolerance:

* :func:`check_trajectory` — the log joint never decreases along an inference trajectory;
* :func:`check_program` — program ≡ closed form (≡ Pyro, when installed);
* :func:`check_backends` — numpy ≡ torch (the closed form, the rendering, the logits, or any
  function you pass, e.g. the engine).

Example (a user-defined residual DGM; the README's example)::

    @given(problems_for(model))
    def test_my_dgm(p):
        result = inference.alternating_map(p.model, p.params, p.x, cycles=2, record="step",
                                           observed="level0", initial_state=p.state)
        check_trajectory(p, result.trajectory)
        check_program(p)
        check_backends(p)
"""
from .checks import check_backends, check_program, check_trajectory
from .strategies import (TAU2, Problem, problems, problems_for, random_params, random_state,
                         real_conv_problems, to_torch, tolerance, values)

__all__ = ["Problem", "TAU2", "check_backends", "check_program", "check_trajectory",
           "problems", "problems_for", "random_params", "random_state", "real_conv_problems",
           "to_torch", "tolerance", "values"]
