"""Hook objects for the traversals in ``_traverse``: plain CNN pass, fixed latents, norm policy."""
from __future__ import annotations

from typing import Any

from .layers import Switch


def gate_values(ops, z, like, leak: float):
    """γ(z): 1 where the switch is on, ``leak`` where off (z boolean)."""
    on = ops.to_float(z, like)
    return on if leak == 0.0 else on * (1.0 - leak) + leak


class NormPolicy:
    """How Norm layers act (dgm-math §1.6): "none", "frozen" (scales fixed at the first pass,
    used in both directions) or "original" (RMS recomputed on whatever arrives, CNN-F)."""

    def __init__(self, ops, mode: str, scales: dict | None = None):
        self.ops, self.mode = ops, mode
        self.scales = {} if scales is None else scales

    def __call__(self, path: str, x, direction: str):
        if self.mode == "none":
            return x
        if self.mode == "original":
            return x / self.ops.channel_rms(x)
        if path not in self.scales:  # frozen: fixed on the first forward pass through this Norm
            if direction != "forward":
                raise KeyError(f"frozen norm scale for {path!r} missing; run the plain pass first")
            self.scales[path] = self.ops.channel_rms(x)
        return x / self.scales[path]


class PlainPass:
    """The plain CNN pass (the engine's initial state, §3.6 row 7): ReLU gates z = 1[a > 0],
    max-pool positions t = argmax; records them."""

    def __init__(self, ops, norm: NormPolicy):
        self.ops, self.norm = ops, norm
        self.z: dict = {}
        self.t: dict = {}

    def switch(self, path, layer: Switch, a):
        z = a > 0
        self.z[path] = z
        return a * gate_values(self.ops, z, a, layer.leak)

    def pool(self, path, layer, win):
        t = self.ops.argmax(win, -1)
        self.t[path] = t
        return self.ops.select(win, t)


class FixedLatents:
    """Gated forward / rendering with given (z, t); records the top-down signals when rendering:
    ``ghat[path]`` at switches (ĝ_ℓ, full resolution) and ``gpool[path]`` at pools (g_ℓ)."""

    def __init__(self, ops, z: dict, t: dict, norm: NormPolicy):
        self.ops, self.z, self.t, self.norm = ops, z, t, norm
        self.ghat: dict = {}
        self.gpool: dict = {}

    def switch(self, path, layer, a):
        return a * gate_values(self.ops, self.z[path], a, layer.leak)

    def pool(self, path, layer, win):
        return self.ops.select(win, self.t[path])

    def switch_render(self, path, layer, g):
        self.ghat[path] = g
        return g * gate_values(self.ops, self.z[path], g, layer.leak)

    def pool_render(self, path, layer, g):
        self.gpool[path] = g
        return self.t[path]
