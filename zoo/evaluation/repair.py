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
        clean, perturbed: (n, C₀, H₀, W₀) input pixels in [−1, 1] (all channels);
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


def _norm(a: Tensor) -> Tensor:
    return torch.linalg.vector_norm(a, dim=tuple(range(1, a.ndim)))


def cosine(a: Tensor, b: Tensor) -> Tensor:
    """Per example (N,): ⟨a, b⟩ / (‖a‖ ‖b‖) over all the other axes (0 where a norm is 0;
    reduced in place, so channels-last maps are not copied)."""
    dot = (a * b).sum(tuple(range(1, a.ndim)))
    return dot / (_norm(a) * _norm(b)).clamp_min(1e-30)


def relative_l2(a: Tensor, ref: Tensor) -> Tensor:
    """Per example (N,): ‖a − ref‖ / ‖ref‖ over all the other axes."""
    return _norm(a - ref) / _norm(ref)


def psnr(a: Tensor, ref: Tensor, data_range: float = 2.0) -> Tensor:
    """Per example (N,): 10·log10(range² / mean((a − ref)²)), ``a`` clipped to the range of
    [-1, 1] images (``data_range`` = 2); +inf where equal."""
    a = a.clamp(-data_range / 2, data_range / 2)
    mse = (a - ref).flatten(1).pow(2).mean(1)
    return 10 * torch.log10(data_range ** 2 / mse)


def _gauss_window(sigma: float = 1.5, radius: int = 5) -> Tensor:
    t = torch.arange(-radius, radius + 1, dtype=torch.float64)
    w = torch.exp(-t ** 2 / (2 * sigma ** 2))
    return w / w.sum()


def ssim(a: Tensor, ref: Tensor, data_range: float = 2.0) -> Tensor:
    """Per example (N,): SSIM (Wang et al. 2004) of (N, C, H, W) images with an 11×11 Gaussian
    window of σ = 1.5, K1 = 0.01, K2 = 0.03, population (co)variances, averaged over the
    window positions that fit inside the image and over channels (scikit-image's
    ``structural_similarity(gaussian_weights=True, use_sample_covariance=False)``); ``a`` is
    clipped to the range first."""
    a = a.clamp(-data_range / 2, data_range / 2).double()
    b = ref.double()
    w = _gauss_window().to(a.device)
    c = a.shape[1]

    def blur(t: Tensor) -> Tensor:
        t = torch.nn.functional.conv2d(t, w.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
        return torch.nn.functional.conv2d(t, w.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)

    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a ** 2
    var_b = blur(b * b) - mu_b ** 2
    cov = blur(a * b) - mu_a * mu_b
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / \
        ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))
    return s.flatten(1).mean(1).to(ref.dtype)


def strip_positions(y: Tensor, n: int) -> Tensor:
    """Positions (ascending) of the ``n`` images a repair strip shows: the first image of each
    class in subset order (classes by first appearance), then the earliest others when there
    are fewer classes than ``n``. A seeded subset kept in index order from a class-sorted
    archive (the CIFAR-10 one) would otherwise show ``n`` images of one class."""
    first: dict[int, int] = {}
    for i, c in enumerate(y.tolist()):
        first.setdefault(int(c), i)
    chosen = set(sorted(first.values())[:n])
    chosen |= set([i for i in range(len(y)) if i not in chosen][:n - len(chosen)])
    return torch.tensor(sorted(chosen), dtype=torch.long)


@torch.no_grad()
def repair(net: CNNF, x: Tensor, x_adv: Tensor) -> Repair:
    """Renderings of ``net`` (cycles ≥ 1) on ``x_adv`` (N, C, H, W) against the clean ``x``."""
    if net.is_cnn:
        raise ValueError("repair needs a model with cycles >= 1")
    params = net.params()
    f_clean = net.dgm.encode(params, x)
    res = inference.alternating_map(net.dgm, params, x_adv, cycles=net.cycles,
                                    options=net.options, record="none")
    g = torch.stack(res.renderings)
    return Repair(clean=x, perturbed=x_adv, f_clean=f_clean.mean(1),
                  f_perturbed=res.x_obs.mean(1), renderings=g.mean(2),
                  cos_perturbed=cosine(res.x_obs, f_clean),
                  cos_renderings=torch.stack([cosine(gc, f_clean) for gc in g]),
                  level0_channels=int(f_clean.shape[1]))
