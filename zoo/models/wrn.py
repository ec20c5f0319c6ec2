"""The CIFAR-10 CNN-F of the original work, a pre-activation wide ResNet (original-cnnf.md §A.3),
built as a DGM from ``dgm.layers``.

WRN-d-w: n = (d − 4) / 6 BasicBlocks per group, widths 16 (stem), 16w, 32w, 64w. BatchNorm is
CNN-F's Norm (per-channel RMS) + Switch (per-channel bias + ReLU switch). Layers:

* stem: Conv 3→16, 3×3, stride 1 (no norm, no switch after it);
* groups 1–3 (strides 1, 2, 2): n blocks ``Residual(preact=[Norm, Switch(in)],
  body=[Conv3×3(in→out, stride), Norm, Switch(out), Conv3×3(out→out)],
  projection=Conv1×1(in→out, stride) when in ≠ out)`` — the shortcut of a projection block takes
  the activated input, as the original; rendering is the residual block's exact adjoint;
* head: Norm, Switch(64w), AvgPool(8) (rendered by the exact adjoint or, ``head="nearest"``, by
  the original's nearest upsampling), Flatten; then the DGM head A (K × 64w) with β.

Feedback level ``ind`` (§A.3; only group 1 honours it): ``ind = 0`` renders down to the pixels
(the DGM has no encoder); ``ind = k`` in 1..n makes the stem and the first k blocks of group 1
the fixed encoder f, so level 0 is the output of block k of group 1 (32·w/2 × 32 × 32);
``ind = n`` is the group-1 output. The released WRN-40-2 model uses ind = 5 = n − 1 (the loop
covers the last block of group 1, groups 2–3 and the head); ``ind=None`` picks n − 1 for any
depth (ind = 1 for WRN-16-2). WRN-40-2 has 2,240,842 unique weights.
"""
from __future__ import annotations

import math

from dgm import DGM
from dgm import layers as L
from inference import preset

from .cnnf import CNNF
from .hub import Pretrained, create_model, register_model

HEADS = ("adjoint", "nearest")


def wrn_blocks(depth: int = 40, widen: int = 2, head: str = "adjoint") -> list[list]:
    """The WRN as a list of pieces: [stem], the 3n residual blocks (one each), [head layers].

    Raises ``ValueError`` unless ``(depth − 4) % 6 == 0`` and ``widen >= 1``.
    """
    if depth < 10 or (depth - 4) % 6:
        raise ValueError(f"depth must be 6n + 4 with n >= 1 (10, 16, 22, 28, 40, ...), got {depth}")
    if int(widen) != widen or widen < 1:
        raise ValueError(f"widen must be a positive integer, got {widen}")
    if head not in HEADS:
        raise ValueError(f"head must be one of {HEADS}, got {head!r}")
    n = (depth - 4) // 6
    widths = (16, 16 * widen, 32 * widen, 64 * widen)
    pieces: list[list] = [[L.Conv2d(3, 16, 3, padding=1)]]
    for g, stride in enumerate((1, 2, 2)):
        for i in range(n):
            cin = widths[g] if i == 0 else widths[g + 1]
            pieces.append([_block(cin, widths[g + 1], stride if i == 0 else 1)])
    pieces.append([L.Norm(), L.Switch(widths[3]), L.AvgPool(8, render=head), L.Flatten()])
    return pieces


def _block(cin: int, cout: int, stride: int) -> L.Residual:
    """Pre-activation BasicBlock (§A.3) with a 1×1 projection shortcut when cin ≠ cout."""
    body = [L.Conv2d(cin, cout, 3, stride=stride, padding=1), L.Norm(), L.Switch(cout),
            L.Conv2d(cout, cout, 3, padding=1)]
    projection = L.Conv2d(cin, cout, 1, stride=stride) if cin != cout or stride != 1 else None
    return L.Residual(body=body, preact=[L.Norm(), L.Switch(cin)], projection=projection)


def default_ind(depth: int) -> int:
    """n − 1: the released configuration's feedback level (5 for WRN-40)."""
    return max((depth - 4) // 6 - 1, 0)


def wrn_dgm(depth: int = 40, widen: int = 2, ind: int | None = None, num_classes: int = 10,
            norm: str = "frozen", head: str = "adjoint", sigma2: float = 1.0,
            tau2: float = math.inf) -> DGM:
    """The WRN-``depth``-``widen`` DGM with feedback level ``ind`` ∈ 0..n (input 3×32×32)."""
    pieces = wrn_blocks(depth, widen, head)
    n = (depth - 4) // 6
    ind = default_ind(depth) if ind is None else ind
    if int(ind) != ind or not 0 <= ind <= n:
        raise ValueError(f"ind must be an integer in 0..{n} for WRN-{depth} (0 = pixels, k = "
                         f"output of block k of group 1), got {ind}")
    cut = 0 if ind == 0 else 1 + ind
    encoder = [layer for p in pieces[:cut] for layer in p]
    layers = [layer for p in pieces[cut:] for layer in p]
    return DGM(layers, classes=num_classes, encoder=encoder, sigma2=sigma2, tau2=tau2,
               input_shape=(3, 32, 32), norm=norm)


def cnnf_wrn(depth: int = 40, widen: int = 2, *, pretrained: Pretrained = False,
             **settings) -> CNNF:
    """The CIFAR-10 wide-ResNet CNN-F (``cycles=0``: its CNN baseline).

    Args:
        depth, widen: WRN-depth-widen; depth = 6n + 4.
        pretrained: False (seeded random init), or the registered model
            ``cnnf_wrn_<depth>_<widen>`` (``cnn_…`` when ``cycles=0``) built by
            ``zoo.models.hub.create_model`` with these weights (True, a tag or a path); the
            settings given here override its card's.
        settings: the arguments of :func:`_build` (cycles, ind, num_classes, norm, mode,
            readout, head, seed); its signature holds their defaults.
    Example:
        >>> net = cnnf_wrn(depth=16, widen=2, cycles=2, ind=1)
        >>> net(torch.zeros(4, 3, 32, 32)).shape
        torch.Size([4, 10])
    """
    if pretrained is False:
        return _build(depth, widen, **settings)
    kind = "cnn" if settings.get("cycles") == 0 else "cnnf"
    return create_model(f"{kind}_wrn_{depth}_{widen}", pretrained=pretrained, **settings)


def _build(depth: int = 40, widen: int = 2, cycles: int = 2, ind: int | None = None,
           num_classes: int = 10, norm: str = "frozen", mode: str = "exact",
           readout: str = "last", head: str = "adjoint", seed: int = 0) -> CNNF:
    """The untrained WRN CNN-F; the defaults of every WRN model.

    Args:
        cycles: feedback cycles after the plain pass (2, as the released WRN-40-2).
        ind: feedback level (see the module docstring); None: n − 1 (5 for WRN-40).
        norm: "none" | "frozen" | "original" (how Norm layers act, dgm-math §1.6).
        mode: an engine preset of ``inference.PRESETS`` ("exact", or "original": CNN-F's
            heuristics).
        readout: "last" or "avg".
        head: "adjoint" (exact adjoint of the 8×8 average pool) or "nearest" (the original).
        seed: parameter initialisation seed.
    """
    return CNNF(wrn_dgm(depth, widen, ind, num_classes, norm, head), cycles=cycles,
                options=preset(mode), readout=readout, seed=seed)


@register_model
def cnnf_wrn_40_2(**kwargs) -> CNNF:
    """WRN-40-2 CNN-F (2 cycles, ind 5: the released configuration); no bundled weights."""
    return _build(**{**kwargs, "depth": 40, "widen": 2})


@register_model
def cnn_wrn_40_2(**kwargs) -> CNNF:
    """WRN-40-2 CNN baseline (the same network, 0 cycles); no bundled weights."""
    return _build(**{**kwargs, "depth": 40, "widen": 2, "cycles": 0})


@register_model
def cnnf_wrn_16_2(**kwargs) -> CNNF:
    """WRN-16-2 CNN-F (2 cycles, ind 1), the CPU-sized model with bundled weights."""
    return _build(**{**kwargs, "depth": 16, "widen": 2})


@register_model
def cnn_wrn_16_2(**kwargs) -> CNNF:
    """WRN-16-2 CNN baseline (0 cycles) with bundled weights."""
    return _build(**{**kwargs, "depth": 16, "widen": 2, "cycles": 0})
