"""Image repair over feedback iterations: what the renderings g₀ of each cycle look like.

The rendering of cycle c lives at level 0 of the DGM, i.e. at the encoder's output f(x): for
``ind = 0`` that is pixel space, for ``ind = 2`` (the Fashion-MNIST model) the 32-channel output
of the second conv block. We therefore never pretend to decode pixels: the strip shows the
input and perturbed images in pixels, and f(clean), f(perturbed) and g₀ of each cycle as the
mean over channels of the level-0 map (identical to the image when level 0 is the input).
Repair is measured by the cosine similarity of each map to f(clean), per image.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

import inference
from zoo.models.cnnf import CNNF


@dataclass
class Repair:
    """Attributes (n images, C cycles, level-0 maps (H, W)):
        clean, perturbed: (n, H₀, W₀) input pixels (first channel);
        f_clean, f_perturbed: (n, H, W) channel means of f(x);
        renderings: (C, n, H, W) channel means of g₀ per cycle (on the perturbed input);
        cos_perturbed: (n,) cos(f(perturbed), f(clean));
        cos_renderings: (C, n) cos(g₀ of cycle c, f(clean));
        level0_channels: channels averaged at level 0.
    """
    clean: Tensor
    perturbed: Tensor
    f_clean: Tensor
    f_perturbed: Tensor
    renderings: Tensor
    cos_perturbed: Tensor
    cos_renderings: Tensor
    level0_channels: int


def _cos(a: Tensor, b: Tensor) -> Tensor:
    return torch.nn.functional.cosine_similarity(a.flatten(1), b.flatten(1), dim=1)


@torch.no_grad()
def repair(net: CNNF, x: Tensor, x_adv: Tensor) -> Repair:
    """Renderings of ``net`` (cycles ≥ 1) on ``x_adv`` (N, C, H, W) against the clean ``x``."""
    if net.cycles < 1:
        raise ValueError("repair needs a model with cycles >= 1")
    params = net.params()
    f_clean = net.dgm.encode(params, x)
    res = inference.alternating_map(net.dgm, params, x_adv, cycles=net.cycles,
                                    options=net.options, record="none")
    g = torch.stack(res.renderings)
    return Repair(clean=x[:, 0], perturbed=x_adv[:, 0], f_clean=f_clean.mean(1),
                  f_perturbed=res.x_obs.mean(1), renderings=g.mean(2),
                  cos_perturbed=_cos(res.x_obs, f_clean),
                  cos_renderings=torch.stack([_cos(gc, f_clean) for gc in g]),
                  level0_channels=int(f_clean.shape[1]))
