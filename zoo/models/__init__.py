"""Torch models built from a DGM and the inference engine (CNN-F and its CNN baseline)."""
from .cnnf import CNNF
from .fashion import fashion_cnnf, fashion_layers, fashion_pixel_cnnf, fashion_pixel_dgm

__all__ = ["CNNF", "fashion_cnnf", "fashion_layers", "fashion_pixel_cnnf", "fashion_pixel_dgm"]
