"""Deconvolutional generative models written as probabilistic programs (dgm-math §1).

Requirements: never imports torch (the torch backend is reached through ``backends``).
"""
from backends import DGMError

from . import layers
from .model import DGM, LogJoint
from .state import State

__all__ = ["DGM", "DGMError", "LogJoint", "State", "layers"]
