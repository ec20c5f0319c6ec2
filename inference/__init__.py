"""Alternating-MAP inference for DGMs: exact block steps (AdaReLU = z-step, AdaPool = t-step,
CNN arg-max = y-step), the soft-class variant, guarded steps, and CNN-F's heuristics as options.

Requirements: never imports torch; works on any backend through ``dgm``/``backends``.
"""
from dgm import State

from ._blocks import joint_step, t_step, y_step, z_step
from ._classify import class_map_states, class_scores, evidence_state
from ._engine import alternating_map
from ._options import PRESETS, Options, preset
from ._trajectory import Result, Step, Trajectory


__all__ = ["Options", "PRESETS", "Result", "State", "Step", "Trajectory", "alternating_map",
           "class_map_states", "class_scores", "evidence_state", "joint_step", "preset",
           "t_step", "y_step", "z_step"]
