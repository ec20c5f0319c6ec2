"""Dataset recipes for ``dgm train``: how to build the model and load the data of a dataset.

A recipe is registered by name with :func:`register_recipe` from its own module
(``zoo.training.fashion``: ``"fashion-mnist"``; ``zoo.training.cifar``: ``"cifar10"``,
``"cifar10-wrn16"``), which imports this one; ``zoo/training/__init__.py`` imports every recipe
module. The ``dgm train`` parser offers every registered name as its dataset choice.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import numpy as np
import torch

from zoo.models import create_model
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
    arch_fields: tuple[str, ...] = ("cycles", "ind", "norm", "mode", "readout")  # ARCH_FIELDS


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


ARCH_FIELDS = ("cycles", "ind", "norm", "mode", "readout")


def hub_builder(name: str, fields: tuple[str, ...] = ARCH_FIELDS) -> Callable[[Any], CNNF]:
    """A recipe's ``build``: registered model ``name`` (``zoo.models.hub``), untrained, with
    the run's ``fields`` (its ``arch_fields``) and ``seed``."""
    def build(config) -> CNNF:
        return create_model(name, **{k: getattr(config, k) for k in fields}, seed=config.seed)
    return build
