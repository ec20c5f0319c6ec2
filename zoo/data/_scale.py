"""Conversion of uint8 pixels to the float32 [-1, 1] range used by the models."""

import numpy as np


def to_signed_unit(pixels: np.ndarray) -> np.ndarray:
    """Map uint8 pixels of any shape to float32 via ``x / 255 * 2 - 1`` (0 -> -1, 255 -> 1)."""
    out = pixels.astype(np.float32)
    out /= 255
    out *= 2
    out -= 1
    return out
