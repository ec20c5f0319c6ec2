"""dgm.testing: the README's example runs and passes, and every check fails on a planted bug
(a trajectory that goes down, a closed form that is off, a backend that disagrees)."""
from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, settings

from dgm import DGM, layers as L
from dgm.testing import check_backends, check_program, check_trajectory, problems_for

README = Path(__file__).resolve().parents[2] / "README.md"
MODEL = DGM([L.Conv2d(1, 2, 3, padding=1), L.Switch(2), L.MaxPool(2), L.Flatten(),
             L.Dense(18, 3), L.Switch(3)], classes=3, tau2=0.5, input_shape=(1, 6, 6))


def test_the_readme_example_runs_and_passes():
    text = README.read_text().split("## Testing your own DGM", 1)[1]
    code = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    namespace: dict = {}
    exec(compile(code, str(README), "exec"), namespace)
    namespace["test_my_dgm"]()


@settings(max_examples=5, deadline=None)
@given(problems_for(MODEL))
def test_a_decreasing_trajectory_is_caught(p):
    step = lambda j, name: SimpleNamespace(objective=np.full(len(p.x), j), state=p.state,  # noqa: E731
                                           cycle=1, name=name)
    check_trajectory(p, SimpleNamespace(steps=[step(0.0, "h"), step(0.0, "y")]))
    with pytest.raises(AssertionError, match="J decreased at step 1:y"):
        check_trajectory(p, SimpleNamespace(steps=[step(0.0, "h"), step(-1e-3, "y")]))


class OffByOne(DGM):
    """A closed form with a planted error in the class prior term."""

    def class_log_prior(self, params, y):
        return super().class_log_prior(params, y) + 1e-6


@settings(max_examples=5, deadline=None)
@given(problems_for(OffByOne(MODEL.layers, classes=3, tau2=0.5, input_shape=(1, 6, 6))))
def test_a_wrong_closed_form_is_caught(p):
    with pytest.raises(AssertionError, match="program total differs"):
        check_program(p, ("B",), pyro=False)


@settings(max_examples=5, deadline=None)
@given(problems_for(MODEL))
def test_disagreeing_backends_are_caught(p):
    def render(model, params, x, state):
        g0, _ = model.render(params, state)
        return g0 + (1e-6 if isinstance(g0, np.ndarray) else 0.0)
    check_backends(p)
    with pytest.raises(AssertionError, match="numpy and torch disagree"):
        check_backends(p, render)
