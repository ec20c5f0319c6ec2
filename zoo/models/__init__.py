"""Torch models built from a DGM and the inference engine (CNN-F and its CNN baseline).

Importing this package imports every model file, so the hub (``zoo.models.hub``) knows every
registered model.
"""
from .cnnf import CNNF
from .fashion import (fashion_cnn, fashion_cnnf, fashion_layers, fashion_pixel_cnnf,
                      fashion_pixel_dgm)
from .hub import create_model, list_models, register_model
from .wrn import cnnf_wrn

__all__ = ["CNNF", "cnnf_wrn", "create_model", "fashion_cnn", "fashion_cnnf", "fashion_layers",
           "fashion_pixel_cnnf", "fashion_pixel_dgm", "list_models", "register_model"]
