"""Training losses of CNN-F (original-cnnf.md §C.1), over the engine's ``Result``.

* clean: cross-entropy at every pass t = 0..C, averaged over the C+1 passes;
* adversarial ("supclean"): Σ_t [λ_c·CE(clean_t) + CE(adv_t)] / (2(C+1)) plus
  λ_r × the mean over cycles of the element-mean MSE between the adversarial batch's rendering
  at level 0 (``Result.renderings[c]``) and the clean batch's first-pass level-0 features
  (``Result.x_obs``). As in the original, the target is not detached.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

from inference import Result


def clean_loss(passes: Sequence[torch.Tensor], y: torch.Tensor) -> torch.Tensor:
    """Mean over passes of the batch-mean cross-entropy; ``passes``: list of (N, K) logits."""
    if not passes:
        raise ValueError("passes must hold at least one (N, K) logits tensor")
    return torch.stack([F.cross_entropy(z, y) for z in passes]).mean()


def adversarial_loss(clean: Result, adv: Result, y: torch.Tensor, *, clean_weight: float,
                     mse_weight: float) -> tuple[torch.Tensor, dict[str, float]]:
    """CNN-F's adversarial-training loss; returns ``(loss, {"ce": ..., "mse": ...})``.

    ``clean``/``adv``: engine results of the clean and PGD batches (same cycles, renderings
    (N, *level0_shape) per cycle); ``y``: (N,) labels.
    """
    if len(clean.logits) != len(adv.logits):
        raise ValueError(f"clean and adv results have {len(clean.logits)} and "
                         f"{len(adv.logits)} passes")
    ce = sum(clean_weight * F.cross_entropy(zc, y) + F.cross_entropy(za, y)
             for zc, za in zip(clean.logits, adv.logits)) / (2 * len(adv.logits))
    mse = (torch.stack([F.mse_loss(g, clean.x_obs) for g in adv.renderings]).mean()
           if adv.renderings else ce.new_zeros(()))
    return ce + mse_weight * mse, {"ce": float(ce.detach()), "mse": float(mse.detach())}
