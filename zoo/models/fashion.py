"""The Fashion-MNIST CNN-F of the original work (original-cnnf.md §A.2) as a DGM.

4 conv 3×3 (16, 32, 32, 64; stride 1, padding 1), each followed by Norm + Switch (bias + AdaReLU),
2×2 max-pools after conv3 and conv4, dense 3136→1000→128 with switches, head 128→10:
3,298,962 unique weights. ``ind`` ∈ {0,1,2}: the first ``ind`` conv blocks are the fixed encoder
f (level 0 of the DGM is their output); the original released model uses ind=2.
"""
from __future__ import annotations

import math

from dgm import DGM
from dgm import layers as L
from inference import preset

from .cnnf import CNNF
from .hub import register_model


def _block(cin: int, cout: int, norm: bool, pool: bool) -> list:
    out = [L.Conv2d(cin, cout, 3, padding=1)] + ([L.Norm()] if norm else []) + [L.Switch(cout)]
    return out + ([L.MaxPool(2)] if pool else [])


def fashion_layers(norm: bool = True) -> list[list]:
    """The seven blocks (4 conv, 2 dense + the last switch) as lists of layers."""
    return [_block(1, 16, norm, False), _block(16, 32, norm, False), _block(32, 32, norm, True),
            _block(32, 64, norm, True),
            [L.Flatten(), L.Dense(3136, 1000), L.Switch(1000)],
            [L.Dense(1000, 128), L.Switch(128)]]


def fashion_dgm(ind: int = 2, norm: str = "frozen", sigma2: float = 1.0,
                tau2: float = math.inf) -> DGM:
    """The DGM of the Fashion-MNIST CNN-F with feedback level ``ind`` ∈ {0, 1, 2}."""
    if ind not in (0, 1, 2):
        raise ValueError(f"ind must be 0, 1 or 2 for the Fashion-MNIST model, got {ind}")
    blocks = fashion_layers(norm != "none")
    encoder = [layer for b in blocks[:ind] for layer in b]
    layers = [layer for b in blocks[ind:] for layer in b]
    return DGM(layers, classes=10, encoder=encoder, sigma2=sigma2, tau2=tau2,
               input_shape=(1, 28, 28), norm=norm)


@register_model(tags=("exact",))
def fashion_cnnf(cycles: int = 5, ind: int = 2, norm: str = "frozen", mode: str = "exact",
                 readout: str = "last", tau2: float = math.inf, seed: int = 0) -> CNNF:
    """The Fashion-MNIST CNN-F (``cycles=0``: the CNN baseline); takes ``pretrained``
    (``zoo.models.hub``): the default weights run CNN-F's heuristics, tag ``exact`` the exact
    engine (their cards set ``mode``).

    ``mode``: a preset of ``inference.PRESETS`` -- "exact" (one-hot feedback, exact h-step,
    joint blocks) or "original" (CNN-F's heuristics: logit feedback, η=0.1 damping and blend).
    """
    return CNNF(fashion_dgm(ind, norm, tau2=tau2), cycles=cycles, options=preset(mode),
                readout=readout, seed=seed)


@register_model
def fashion_cnn(**kwargs) -> CNNF:
    """The Fashion-MNIST CNN baseline: :func:`fashion_cnnf` with 0 feedback cycles."""
    return fashion_cnnf(**{**kwargs, "cycles": 0})


def fashion_pixel_dgm(sigma2: float = 1.0, tau2: float = math.inf, width: int = 1,
                      dense_width: int = 128) -> DGM:
    """A small pixel-level Fashion-MNIST DGM (feedback to the pixels, ind = 0, no norm):
    conv 3×3 1→16w, switch, 2×2 max-pool, conv 3×3 16w→32w, switch, 2×2 max-pool, dense
    1568w→n, switch, head n→10 (w = ``width``, n = ``dense_width``; 206,922 weights at
    w = 1, n = 128; 421,642 at w = 2, n = 128; 813,258 at w = 1, n = 512): its renderings g_0
    are images. The top of the rendering path is g_2 = W_dᵀ(z_3 ⊙ W_hᵀ y), a combination of at
    most n rows of the dense weight W_d (n × 1568w), so n bounds the images the model renders."""
    for name, value in (("width", width), ("dense_width", dense_width)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    c1, c2 = 16 * width, 32 * width
    layers = [L.Conv2d(1, c1, 3, padding=1), L.Switch(c1), L.MaxPool(2),
              L.Conv2d(c1, c2, 3, padding=1), L.Switch(c2), L.MaxPool(2),
              L.Flatten(), L.Dense(49 * c2, dense_width), L.Switch(dense_width)]
    return DGM(layers, classes=10, sigma2=sigma2, tau2=tau2, input_shape=(1, 28, 28))


@register_model(name="fashion_dgm")
def fashion_pixel_cnnf(cycles: int = 0, mode: str = "exact", readout: str = "last",
                       sigma2: float = 1.0, tau2: float = math.inf, width: int = 1,
                       dense_width: int = 128, seed: int = 0) -> CNNF:
    """``fashion_pixel_dgm`` with its inference engine (``cycles=0``: the plain CNN readout),
    registered as ``fashion_dgm`` (fitted by the hybrid objective, CE + λ·generative; its
    renderings g_0 are images); ``mode``: a preset of ``inference.PRESETS``; ``width``: the
    conv channel multiplier; ``dense_width``: the dense layer's units."""
    return CNNF(fashion_pixel_dgm(sigma2, tau2, width, dense_width), cycles=cycles, options=preset(mode),
                readout=readout, seed=seed)
