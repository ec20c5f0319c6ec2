"""Analytic multiply-accumulate counts of a DGM's linear maps, per image.

A CNN-F cycle is one rendering (every linear map of ``model.layers`` applied as its adjoint,
same MACs as forward) plus one gated forward pass over ``model.layers``; the plain pass also
runs the fixed encoder. Elementwise work (gates, pools, norms, biases) is not counted: it is
what the engine should make negligible. Training conventions (used for ours and the reference
alike): a training step costs 3× the forward MACs (forward, input- and weight-gradients), an
attack step 2× (forward, input-gradient).
"""
from __future__ import annotations

import math
from typing import Sequence

from dgm import DGM
from dgm import traverse as T
from dgm.layers import Conv2d, Dense, Layer

TRAIN_FACTOR = 3
ATTACK_FACTOR = 2


def linear_macs(layers: Sequence[Layer], shapes: dict) -> int:
    """MACs per image of the Conv2d/Dense maps in ``layers`` (``shapes``: path → input shape)."""
    total = 0
    for path, layer in T.iter_layers(layers):
        if isinstance(layer, Conv2d):
            out = layer.out_shape(shapes[path])
            total += layer.in_channels * layer.kernel_size ** 2 * math.prod(out)
        elif isinstance(layer, Dense):
            total += layer.in_features * layer.out_features
    return total


def cnnf_macs(model: DGM, cycles: int) -> dict[str, int]:
    """Per-image MACs: ``plain`` (encoder + layers + head), ``cycle`` (rendering from the top
    vector Aᵀe_y + gated forward + head), ``total`` = plain + cycles · cycle."""
    head = model.classes * model.top_features
    body = linear_macs(model.layers, model.shapes)
    plain = linear_macs(model.encoder, model.encoder_shapes) + body + head
    cycle = 2 * body + 2 * head
    return {"plain": plain, "cycle": cycle, "total": plain + cycles * cycle}
