"""Dataset recipes for ``dgm train``: how to build the model and load the data of a dataset.

A recipe is registered by name with :func:`register_recipe`; the ``dgm train`` parser offers
every registered name as its dataset choice, so CIFAR-10 is added by registering a
``"cifar10"`` recipe (model builder from ``zoo.models.wrn``, ``load_cifar10``, ``random_crop_flip``
as ``augment``) in this module.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import numpy as np
import torch

from zoo.data import load_fashion_mnist
from zoo.models import fashion_cnnf, fashion_pixel_cnnf
from zoo.models.cnnf import CNNF


@dataclass(frozen=True)
class Recipe:
    """How to train on one dataset.

    Attributes:
        name: dataset name (the ``dgm train`` positional choice).
        build: ``(config) -> CNNF``, the model (seeded by ``config.seed``).
        load: ``(split, data_dir) -> (x float32 (N, C, H, W) in [-1, 1], y int64 (N,))``.
        augment: optional ``(x (B, C, H, W), generator) -> x`` applied to training batches.
        defaults: option defaults of this dataset (e.g. ``{"val_size": 5000}``), applied
            where the command line leaves an option unset.
        arch_fields: the config fields that are the registry factory's arguments (written
            to the model card's ``arch``).
    """

    name: str
    build: Callable[[Any], CNNF]
    load: Callable[[str, Optional[str]], tuple[np.ndarray, np.ndarray]]
    augment: Optional[Callable[[torch.Tensor, torch.Generator], torch.Tensor]] = None
    defaults: dict[str, Any] = field(default_factory=dict)
    arch_fields: tuple[str, ...] = ("cycles", "ind", "norm", "mode", "readout")


RECIPES: dict[str, Recipe] = {}


def register_recipe(recipe: Recipe) -> Recipe:
    """Record ``recipe`` under its name (re-registering a name is an error)."""
    if recipe.name in RECIPES:
        raise ValueError(f"recipe {recipe.name!r} is already registered")
    RECIPES[recipe.name] = recipe
    return recipe


def get_recipe(name: str) -> Recipe:
    if name not in RECIPES:
        raise ValueError(f"unknown dataset {name!r}; known: {sorted(RECIPES)}")
    return RECIPES[name]


def _fashion_model(config) -> CNNF:
    return fashion_cnnf(cycles=config.cycles, ind=config.ind, norm=config.norm,
                        mode=config.mode, readout=config.readout, seed=config.seed)


register_recipe(Recipe(
    name="fashion-mnist", build=_fashion_model,
    load=lambda split, data_dir: load_fashion_mnist(split, data_dir),
    defaults={"val_size": 5000, "eps": 0.2, "pgd_step_size": 0.071, "clean_weight": 0.1}))


def _fashion_pixel_model(config) -> CNNF:
    return fashion_pixel_cnnf(cycles=config.cycles, mode=config.mode, readout=config.readout,
                              sigma2=config.sigma2, tau2=config.tau2, seed=config.seed)


register_recipe(Recipe(
    name="fashion-mnist-pixel", build=_fashion_pixel_model,
    load=lambda split, data_dir: load_fashion_mnist(split, data_dir),
    defaults={"val_size": 5000}, arch_fields=("cycles", "mode", "readout", "sigma2", "tau2")))


from . import cifar  # noqa: E402,F401  (registers "cifar10" and "cifar10-wrn16", zoo.training.cifar)
