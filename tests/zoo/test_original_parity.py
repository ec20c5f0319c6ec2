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
# Fashion-MNIST: the plain pass is exact and every prediction agrees, but on 13 of the 32 images
# of each fixture the feedback passes differ from ``passes64`` (pass 1: 2e-4 to 9e-3; last pass:
# up to 0.07 / 0.22); on the other images every pass agrees to <= 5e-15. Evidence that this is
# the fixtures' numerical environment, not a semantic difference (measured with one-off probe
# scripts, not kept in the repository):
# * a line-by-line transcription of the original layers (AdaReLU/AdaPool/InsNorm/tied Conv2d and
#   Linear modules, ``.double()``, ``run_cycles``' loop) run in float64 here gives *exactly* this
#   library's logits (difference 0.0 at every pass), on both fixtures;
# * this library equals the fixtures' own float32 run (``passes32``) to 1e-6 on every image of
#   the first fixture, including the 13 that differ from ``passes64``;
# * ``passes64``'s plain pass is not bit-equal to the transcription here (5.8e-16) for any
#   thread count, batch split, input layout or MKL code path (MKL_CBWR) tried: the fixtures
#   were computed with other rounding;
# * the differing images are exactly those with many pool-3 windows whose maximum is an exact
#   tie between two horizontally adjacent positions (fixture 1: >= 136 such windows on every
#   differing image, <= 128 on every other; fixture 2: >= 265 vs <= 100), and the set of
#   differing images is fixed from pass 1 on: consistent with other rounding turning some exact
#   ties of the plain pass into non-ties (torch takes the first of tied positions, so the
#   feedback is placed elsewhere). Which windows were affected could not be identified (no
#   single or pair of other tie positions reproduces image 0: best residual 1.6e-4 of 5.6e-4);
# * nothing else is close to a decision: at pass 1 the smallest |feedback| at a gate is 1e-7
#   (AdaReLU) and 3e-6 (AdaPool), no pool feedback is exactly 0, and forcing any other
#   deterministic tie rule (another fixed position, a per-pattern priority) makes more images
#   differ, not fewer.
# * session 11: emulating the fixtures' conv as this machine's (a sequential fused multiply-add
#   over the im2col inner dimension, bit-equal to the MKL conv here) except for the last 4 of the
#   784 output positions of conv2 (row 27, cols 24-27), computed without FMA - as a 12-wide GEMM
#   kernel with a non-FMA remainder would (784 = 65 * 12 + 4) - breaks exactly the bottom-right
#   ties and makes 16 of the 26 differing images agree to <= 5e-15 at every pass; the other 10
#   still differ (up to 5e-3 at pass 1), all at the pool-3 window beside that corner, so the
#   fixtures' arithmetic is not pinned down. No pool tie-break rule (fixed priority, region
#   limited, per pass) and no MKL_CBWR / OpenBLAS core type reproduces them.
# Regenerating passes64 in the CI environment (or dropping images with exact pool ties) would
# make these two cases a float64 parity check again.
_OPEN = pytest.mark.xfail(strict=True, reason="Fashion-MNIST passes64 were computed with other "
                          "rounding (likely exact pool ties broken differently; see the comment above)")
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


# --- AdaPool windows whose feedback was exactly 0 (the "unplaced" rule, original-cnnf.md §A.1) ---
# A small net on which the masked, un-pooled feedback leaves many pooled positions of the first
# pool with feedback exactly 0; the reference below is written from the original layer
# semantics (AdaReLU, AdaPool with its two gates, InsNorm where the feedback arrives), not from
# this library.

_ETA = 0.1


def _small_original_net():
    from dgm import DGM
    from dgm import layers as L
    from inference import Options
    from zoo.models.cnnf import CNNF

    layers = [L.Conv2d(1, 3, 3, padding=1), L.Norm(), L.Switch(3), L.MaxPool(2),
              L.Conv2d(3, 1, 3, padding=1), L.Norm(), L.Switch(1), L.MaxPool(2),
              L.Flatten(), L.Dense(16, 8), L.Switch(8)]
    model = DGM(layers, classes=3, input_shape=(1, 16, 16), norm="original")
    return CNNF(model, cycles=3, options=Options.original(_ETA), seed=1).double()


def _rms(t):
    return t / torch.sqrt(t.pow(2).mean((2, 3), keepdim=True) + 1e-8)


class _AdaReLU:
    """Plain ReLU until feedback g arrived; then a ← a + η(g − a), on where a·g > 0."""
    hidden = None

    def forward(self, a):
        if self.hidden is not None:
            a = a + _ETA * (self.hidden - a)
            self.on = a * self.hidden > 0
        else:
            self.on = a > 0
        return a * self.on

    def feedback(self, g):
        self.hidden = g
        return g * self.on


class _AdaPool:
    """2×2 max-pool until feedback arrived; then the window max where the previous feedback was
    > 0, the min where it was < 0, and 0 where it was exactly 0 (both gates off). Feedback is
    un-pooled to the arg-max (first pass) or, gated the same way, to the arg-max and arg-min —
    so a window whose previous feedback was 0 receives nothing."""
    hidden = pos = None
    zero_windows = 0

    def forward(self, a):
        self.size = a.shape[-2:]
        hi, self.imax = torch.nn.functional.max_pool2d(a, 2, return_indices=True)
        if self.hidden is None:
            return hi
        lo, self.imin = torch.nn.functional.max_pool2d(-a, 2, return_indices=True)
        self.pos, self.neg = (self.hidden > 0).to(a.dtype), (self.hidden < 0).to(a.dtype)
        self.zero_windows += int((self.hidden == 0).sum())
        return self.pos * hi - self.neg * lo

    def feedback(self, g):
        self.hidden = g
        unpool = torch.nn.functional.max_unpool2d
        if self.pos is None:
            return unpool(g, self.imax, 2, output_size=self.size)
        return (unpool(g * self.pos, self.imax, 2, output_size=self.size)
                + unpool(g * self.neg, self.imin, 2, output_size=self.size))


def _reference_passes(p: dict, x, cycles: int):
    """The original inference on the small net: logits of every pass and the number of pooled
    positions whose feedback was exactly 0 when a forward pass read it."""
    conv, convt = torch.nn.functional.conv2d, torch.nn.functional.conv_transpose2d
    r1, r2, r3, p1, p2 = _AdaReLU(), _AdaReLU(), _AdaReLU(), _AdaPool(), _AdaPool()

    def forward(h):
        a = r1.forward(_rms(conv(h, p["layers.0.weight"], padding=1))
                       + p["layers.2.bias"][:, None, None])
        a = r2.forward(_rms(conv(p1.forward(a), p["layers.4.weight"], padding=1))
                       + p["layers.6.bias"][:, None, None])
        u = r3.forward(p2.forward(a).flatten(1) @ p["layers.9.weight"].T + p["layers.10.bias"])
        return u @ p["head.weight"].T + p["head.bias"]

    def feedback(logits):
        g = r3.feedback(logits @ p["head.weight"]) @ p["layers.9.weight"]
        g = r2.feedback(p2.feedback(_rms(g.reshape(-1, 1, 4, 4))))
        g = convt(g, p["layers.4.weight"], padding=1)
        return convt(r1.feedback(p1.feedback(_rms(g))), p["layers.0.weight"], padding=1)

    h, passes = x, [forward(x)]
    for _ in range(cycles):
        h = h + _ETA * (feedback(passes[-1]) - h)
        passes.append(forward(h))
    return passes, p1.zero_windows + p2.zero_windows


def test_pool_windows_with_zero_feedback_match_the_original_adapool():
    """Windows whose feedback was exactly 0 output 0 and receive no feedback next (both AdaPool
    gates off): every pass equals the reference. Without the rule (placing such a window at its
    max) the last pass differs by 0.048."""
    net = _small_original_net()
    x = torch.rand(16, 1, 16, 16, generator=torch.Generator().manual_seed(0),
                   dtype=torch.float64) * 2 - 1
    params = {k: v.detach() for k, v in net.params().items()}
    expected, zero_windows = _reference_passes(params, x, net.cycles)
    assert zero_windows > 50  # the case this test is about occurs (105 here)
    with torch.no_grad():
        passes = net.forward_passes(x)
    errors = [float((p - e).abs().max()) for p, e in zip(passes, expected)]
    assert max(errors) <= 1e-12, f"max |logit difference| per pass: {errors}"
