"""The explicit inference state ``(h, y, z, t)`` (dgm-math §4.2): a frozen dataclass of arrays.

Nothing about a state lives on the model: the same input always gives the same output.
``z`` maps each Switch path to a boolean array (N, *unit shape); ``t`` maps each MaxPool path to
an integer array (N, C, H', W') of in-window positions in ``0..k²-1``; ``q`` is the soft class
distribution of the EM variant (§4.4) or None; ``norm_scales`` holds frozen per-channel RMS scales
(§1.6) keyed by Norm path; ``unplaced`` maps a MaxPool path to a boolean array (N, C, H', W') of
windows that hold no position (CNN-F's rule, ``ties="original"``: a window whose feedback was exactly 0
has both AdaPool gates off, so the next rendering places nothing there); empty for the exact
engine.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Mapping

from backends import DGMError

from ._validate import _dtype_kind

Array = Any


@dataclass(frozen=True)
class State:
    h: Array
    y: Array
    z: Mapping[str, Array]
    t: Mapping[str, Array]
    q: Array | None = None
    norm_scales: Mapping[str, Array] = field(default_factory=dict)
    unplaced: Mapping[str, Array] = field(default_factory=dict)

    def replace(self, **changes) -> "State":
        """A new state with ``changes``; shapes and dtypes must match the old values."""
        for name, new in changes.items():
            old = getattr(self, name)
            if isinstance(old, Mapping):
                for key, value in new.items():
                    _check_same(f"{name}[{key!r}]", old.get(key), value)
            elif old is not None and new is not None:
                _check_same(name, old, new)
        return replace(self, **changes)

    @property
    def batch_size(self) -> int:
        return int(self.h.shape[0])


def _check_same(name: str, old, new) -> None:
    if old is None:
        return
    integers = _dtype_kind(old) == _dtype_kind(new) == "integer"  # (positions: any int dtype)
    if tuple(old.shape) != tuple(new.shape) or (old.dtype != new.dtype and not integers):
        raise DGMError(f"State.replace: {name} must keep shape {tuple(old.shape)} and dtype "
                       f"{old.dtype}, got {tuple(new.shape)} {new.dtype}. Build a new state with "
                       f"model.plain_state(params, x) for a different batch.")
