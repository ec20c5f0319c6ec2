"""Deconvolutional generative models written as probabilistic programs (dgm-math §1).

Requirements: never imports torch (the torch backend is reached through ``backends``).
"""
from backends import DGMError

from . import layers
from .model import DGM, LogJoint
from .state import State
from . import distributions, handlers
from .primitives import factor, sample
from .program import (Program, generative_program, program_data, program_log_joint,
                      sample_b)
from .enumerate import b_normaliser, log_z_g, posterior_b, posterior_g
from .pyro_adapter import pyro_data, to_pyro

__all__ = ["DGM", "DGMError", "LogJoint", "State", "layers",
           "b_normaliser", "distributions", "factor", "generative_program", "handlers", "log_z_g",
           "posterior_b", "posterior_g", "program_data", "program_log_joint", "Program",
           "pyro_data", "sample", "sample_b", "to_pyro"]
