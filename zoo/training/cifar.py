"""The CIFAR-10 recipe of ``dgm train`` (original-cnnf.md §C): WRN CNN-F, crop + flip, PGD-7.

Registers the datasets ``"cifar10"`` (WRN-40-2, the released architecture) and
``"cifar10-wrn16"`` (WRN-16-2, the CPU-sized model) with the shared loop
(``zoo.training.loop``). Their defaults are the released ``run_train_cifar.sh`` recipe: with
``--adversarial``, L∞ PGD-7 against the first pass with ε = 8/255 and step 2/255 in [0, 1]
pixel units (×2 in the [−1, 1] input range); CE on clean (weight 0.05) and adversarial logits
at every pass plus 0.1 × the reconstruction MSE; SGD 0.05, momentum 0.9, weight decay 5e-4,
poly schedule, clip 0.5; batch 256 over 500 epochs (``--epochs 500 --batch-size 256``).
Training batches are augmented by ``zoo.data.random_crop_flip`` (4-px padding, flip).
The feedback level is the loop's ``--ind``; ``ind`` outside 0..n is rejected by
``zoo.models.wrn`` (the released WRN-40-2 uses 5, WRN-16-2's analogue is 1).
``--mode exact`` with cycles > 0 needs a warm start from an accurate CNN (``--cycles 0`` run,
then ``--init-from``): from scratch it stalls at chance (``loop.feedback_warning``, issue 5).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..attacks import pixel_to_input
from ..data import load_cifar10, random_crop_flip
from .recipes import ARCH_FIELDS, Recipe, hub_builder, register_recipe

CIFAR_DEFAULTS: dict[str, Any] = {
    "val_size": 5000,
    "eps": pixel_to_input(8 / 255),
    "pgd_step_size": pixel_to_input(2 / 255),
    "clean_weight": 0.05,
}
"""Recipe defaults (input units): the loop fills the options the command line leaves unset."""


WRN_ARCH_FIELDS = ARCH_FIELDS + ("head",)
"""The WRN factory also takes ``head``: "adjoint" (the exact adjoint of the average pool) or
"nearest" (the original's head feedback, faithful mode)."""


def _load(split: str, data_dir):
    """CIFAR-10 in a fixed pseudo-random order: the JPEG archive is sorted by class, so the
    loop's held-out split and its ``--val-limit`` prefix would otherwise cover only the first
    classes."""
    x, y = load_cifar10(split, data_dir)
    order = np.random.default_rng(0).permutation(len(y))
    return x[order], y[order]


def _augment(x, generator):
    return random_crop_flip(x, 4, generator=generator)


for _name, _model in (("cifar10", "cnnf_wrn_40_2"), ("cifar10-wrn16", "cnnf_wrn_16_2")):
    register_recipe(Recipe(name=_name, build=hub_builder(_model, WRN_ARCH_FIELDS), load=_load,
                           augment=_augment, defaults=dict(CIFAR_DEFAULTS),
                           arch_fields=WRN_ARCH_FIELDS))
