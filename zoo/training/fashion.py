"""The Fashion-MNIST recipes of ``dgm train`` (models of ``zoo.models.fashion``).

* ``fashion-mnist``: the CNN-F (``fashion_cnnf``). Defaults (input units, [-1, 1]): 5000
  held-out validation images; with ``--adversarial``, PGD with ε = 0.2 and step 0.071 against
  the first pass, clean-loss weight 0.1.
* ``fashion-mnist-pixel``: the pixel-level DGM (``fashion_dgm``), its card's ``arch`` holding
  cycles, mode, readout, σ², τ², the width (conv channel multiplier) and the dense width (units).
"""
from __future__ import annotations

from zoo.data import load_fashion_mnist

from .recipes import Recipe, hub_builder, register_recipe

register_recipe(Recipe(
    name="fashion-mnist", build=hub_builder("fashion_cnnf"), load=load_fashion_mnist,
    defaults={"val_size": 5000, "eps": 0.2, "pgd_step_size": 0.071, "clean_weight": 0.1}))

PIXEL_FIELDS = ("cycles", "mode", "readout", "sigma2", "tau2", "width", "dense_width")
register_recipe(Recipe(
    name="fashion-mnist-pixel", build=hub_builder("fashion_dgm", PIXEL_FIELDS),
    load=load_fashion_mnist, defaults={"val_size": 5000}, arch_fields=PIXEL_FIELDS))
