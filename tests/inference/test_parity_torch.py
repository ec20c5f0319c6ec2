"""The whole engine on the torch backend (float64) agrees with the numpy reference to 1e-10
(catalogue §5, issue 3 "numpy vs torch"): every recorded objective, the logits of every pass,
the renderings and the final state, for exact, soft, CNN-F and guarded options — on the CPU and,
where one is present, on a CUDA device.

Values are continuous (no rounding grid): exact ties would be broken by last-bit differences
between the backends' summation orders, which is not a disagreement of the engines.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings

from inference import Options, alternating_map
from dgm.testing import problems, to_torch

OPTIONS = {
    "exact_joint": Options(),
    "exact_z_then_t": Options(block="z_then_t"),
    "soft": Options(feedback="softmax"),
    "original": Options.original(),
    "original+guard": Options.original().with_(guard=True),
    "damped+blend+guard": Options(h_update="damped", eta=0.5, blend=0.2, guard=True),
}


DEVICES = [pytest.param("cpu"),
           pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(),
                                                         reason="no CUDA device"))]


def num(t):
    return t.detach().cpu().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)


def close(t, a, scale):
    t = num(t)
    a = np.asarray(a)
    assert t.shape == a.shape
    np.testing.assert_allclose(t, a, rtol=1e-10, atol=1e-10 * scale)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", sorted(OPTIONS))
@settings(max_examples=25)
@given(problem=problems(grids=(None,)))
def test_engine_numpy_torch_agree(name, device, problem):
    kw = dict(cycles=3, options=OPTIONS[name], record="step", observed="level0")
    ref = alternating_map(problem.model, problem.params, problem.x,
                          initial_state=problem.state, **kw)
    out = alternating_map(problem.model, to_torch(problem.params, device),
                          to_torch(problem.x, device),
                          initial_state=to_torch(problem.state, device), **kw)
    assert out.trajectory.names() == ref.trajectory.names()
    scale = 1 + max(np.abs(np.asarray(s.objective)).max() for s in ref.trajectory.steps)
    for so, sr in zip(out.trajectory.steps, ref.trajectory.steps):
        close(so.objective, sr.objective, scale)
        np.testing.assert_array_equal(num(so.state.y), sr.state.y)
    for lo, lr in zip(out.logits, ref.logits):
        close(lo, lr, 1 + np.abs(lr).max())
    for go, gr in zip(out.renderings, ref.renderings):
        close(go, gr, 1 + np.abs(gr).max())
    final, want = out.state, ref.state
    close(final.h, want.h, 1 + np.abs(want.h).max())
    for k in want.z:
        np.testing.assert_array_equal(num(final.z[k]), want.z[k])
    for k in want.t:
        np.testing.assert_array_equal(num(final.t[k]), want.t[k])
    if want.q is not None:
        close(final.q, want.q, 1.0)
    np.testing.assert_array_equal(num(out.converged), ref.converged)
